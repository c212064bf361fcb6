"""Backward of pooling and resampling."""
from __future__ import annotations

import math

from ...core.tensors import TensorSpec
from ..forward.pool import INTERPOLATE_FLOPS, _tuple, adaptive_window_total, grid_sample_flops
from ..registry import Backward, GradCall, Kernels, backward, grad_out, no_backward

# ---- pooling and resampling -----------------------------------------------------------------

@backward("max_pool", "adaptive_max_pool")
def max_pool(grad: GradCall) -> Backward:
    """gy scattered (added) to each window's argmax: 1 FLOP per output element; gx written.
    Saves the input and the argmax indices (int64, one per output element)."""
    call, gy = grad.call, grad_out(grad.call)
    indices = TensorSpec(gy.shape, "int64", 8)
    k = Kernels().add(flops=gy.numel, reads=(gy, indices), writes=(call.t("input"),))
    if len(call.outputs) > 1:          # return_indices=True: the indices are a graph value
        return k.done("input", "out.1")
    return k.done("input", extra_bytes=8 * gy.numel)


@backward("avg_pool")
def avg_pool(grad: GradCall) -> Backward:
    """gy / k added to each of the k window elements: FLOPs = out_numel * prod(kernel) (as the
    forward); saves the input (autograd keeps it, for its shape)."""
    call, gy = grad.call, grad_out(grad.call)
    kernel = _tuple(call.attr("kernel_size"), call.attr("spatial_dims", 2))
    return Kernels().add(flops=gy.numel * math.prod(kernel), reads=(gy,),
                         writes=(call.t("input"),)).done("input")


@backward("adaptive_avg_pool")
def adaptive_avg_pool(grad: GradCall) -> Backward:
    """The exact windows of the forward, walked back: the same FLOPs. Saves the input, except at
    output size 1, which torch computes as a mean (whose backward keeps nothing)."""
    call, gy = grad.call, grad_out(grad.call)
    x = call.t("input")
    spatial = call.attr("spatial_dims", 2)
    windows = math.prod(adaptive_window_total(i, o)
                        for i, o in zip(x.shape[-spatial:], gy.shape[-spatial:]))
    k = Kernels().add(flops=math.prod(x.shape[:-spatial]) * windows, reads=(gy,), writes=(x,))
    return k.done() if all(n == 1 for n in gy.shape[-spatial:]) else k.done("input")


@backward("interpolate")
def interpolate(grad: GradCall) -> Backward:
    """Each output's gradient times each tap's weight, added into the input: taps multiplies and
    taps adds per output element (nearest 1, linear 4, bilinear 8, bicubic 32). Saves nothing."""
    call, gy = grad.call, grad_out(grad.call)
    mode = call.attr("mode", "nearest")
    if mode == "area":
        return adaptive_avg_pool(grad)
    return Kernels().add(flops=gy.numel * (INTERPOLATE_FLOPS[mode] + 1), reads=(gy,),
                         writes=(call.t("input"),)).done()


# A composite of ops that have rules; decomposing it is the fix.
no_backward("lp_pool", "a composite (pow, avg_pool, sign, relu) costmodel records as one call")


@backward("max_unpool")
def max_unpool(grad: GradCall) -> Backward:
    """gy gathered at the indices: 0 FLOPs; reads the indices and one gy element per input
    element, writes the input's gradient. Saves the indices."""
    call = grad.call
    x = call.t("input")
    return Kernels().add(reads=(x, call.t("indices")), writes=(x,)).done("indices")


@backward("grid_sample")
def grid_sample(grad: GradCall) -> Backward:
    """grad-input: each output's gradient times each tap weight, added in (taps + 1 FLOPs per
    output element, as interpolate); grad-grid: per output element and coordinate, the weights'
    derivatives times the taps' values times gy (2 * taps FLOPs; nearest: 0). Saves input and
    grid."""
    call, gy = grad.call, grad_out(grad.call)
    spatial = call.attr("spatial_dims", 2)
    mode = call.attr("mode", "bilinear")
    taps = grid_sample_flops(mode, spatial) + 1
    k = Kernels()
    if grad.wants("input"):
        k.add(flops=gy.numel * taps, reads=(gy, call.t("grid")), writes=(call.t("input"),))
    if grad.wants("grid") and mode != "nearest":
        k.add(flops=gy.numel * 2 * taps * spatial, reads=(gy, call.t("input"), call.t("grid")),
              writes=(call.t("grid"),))
    return k.done("input", "grid")
