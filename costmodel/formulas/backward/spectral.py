"""Backward of the discrete Fourier transforms: the gradient of a DFT is the adjoint DFT of the
same lengths (an ifft for an fft, an irfft-like transform for an rfft, ...)."""
from __future__ import annotations

from ..forward.spectral import fft_flops
from ..registry import Backward, GradCall, Kernels, backward, grad_out


@backward("fft", "rfft", "irfft")
def fft(grad: GradCall) -> Backward:
    """grad-input = the adjoint transform of gy: the forward's FLOPs; reads gy, writes the input's
    gradient. Saves nothing (a linear map)."""
    call = grad.call
    lengths = call.attr("fft_lengths")
    if lengths is None:
        raise ValueError("an FFT call whose transformed dims costmodel could not read")
    return Kernels().add(flops=fft_flops(call.op, lengths, call.attr("fft_batch", 1)),
                         reads=(grad_out(call),),
                         writes=[spec for _, spec in grad.grad_inputs()]).done()
