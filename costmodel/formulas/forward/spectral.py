"""Discrete Fourier transforms (`torch.fft.*`).

The FLOP convention (the radix-2 Cooley-Tukey count that FFTW's and most papers' "mflops" use):
a complex transform of length N takes 5 N log2 N real FLOPs; a transform with real input or real
output (rfft, irfft, hfft, ihfft) about half, 2.5 N log2 N. A multi-dimensional transform over
lengths N_1..N_d is d passes of 1-D transforms, and sum_i (M / N_i) * 5 N_i log2 N_i =
5 M log2 M with M = N_1 * ... * N_d, so one formula covers them all:

    FLOPs = ceil(c * B * M * log2 M),  c = 5 (complex) or 2.5 (real input or output),

with B the number of independent transforms (the elements of the dims not transformed) and N the
logical length of the signal (`n` / `s`, or the input's length; for irfft / hfft the output's).
Lengths that are not powers of two are counted with the same formula (FFT libraries run them at
the same order through mixed-radix or Bluestein algorithms). No MAdds: an FFT is not one of the
contraction ops the MAdds count. MAC = input read + output written, each at its own dtype
(complex64 elements are 8 bytes).
"""
from __future__ import annotations

import math

from ...core.cost import Cost
from ...core.vocab import Category
from ..registry import OpCall, formula, simple_cost

#: real FLOPs per N log2 N of one transform, by op
PER_N_LOG_N = {"fft": 5.0, "rfft": 2.5, "irfft": 2.5}


def fft_flops(op: str, lengths: tuple[int, ...], batch: int) -> int:
    """c * B * M * log2 M, rounded up (see the module docstring)."""
    m = math.prod(lengths)
    return math.ceil(PER_N_LOG_N[op] * batch * m * math.log2(m)) if m > 1 else 0


@formula("fft", "rfft", "irfft", category=Category.SPECTRAL)
def fft(call: OpCall) -> Cost:
    """FLOPs = ceil(c * B * M * log2 M), c = 5 for a complex transform, 2.5 for a real input or
    output; M = the product of the transformed logical lengths, B = transforms; MAC = input +
    output."""
    lengths = call.attr("fft_lengths")
    if lengths is None:
        raise ValueError("an FFT call whose transformed dims costmodel could not read")
    return simple_cost(call, flops=fft_flops(call.op, lengths, call.attr("fft_batch", 1)))
