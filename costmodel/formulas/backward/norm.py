"""Backward of the normalisation layers: batch, layer, group, instance, RMS norm, normalize."""
from __future__ import annotations

import math

from ...core.tensors import TensorSpec
from ..registry import Backward, GradCall, Kernels, backward, grad_out, no_backward

# ---- normalisation --------------------------------------------------------------------------

def _norm_backward(grad: GradCall, groups: int, training: bool, prep: int = 2) -> Backward:
    """Per element: `prep` to recompute x_hat; 1 for sum(gy) (bias or input); 2 for
    sum(gy * x_hat) (weight or input); grad-input 4
    ((gy - mean gy - x_hat mean(gy x_hat)) * w * rstd) with batch statistics, 1 (gy * w * rstd)
    with running statistics. Saves the input and, with batch statistics, the mean and rstd of
    each of `groups` groups (float32)."""
    call, gy = grad.call, grad_out(grad.call)
    x, w, b = call.t("input"), call.t("weight"), call.t("bias")
    n = x.numel
    wants_x, wants_w, wants_b = grad.wants("input"), grad.wants("weight"), grad.wants("bias")
    stats = TensorSpec((2 * groups,), "float32", 4) if training else None
    k = Kernels()
    reduce = (wants_b or wants_x and training) + 2 * (wants_w or wants_x and training)
    if reduce:   # one pass over x and gy gives sum(gy) and sum(gy * x_hat)
        k.add(flops=n * (prep + reduce), reads=(x, gy, stats), writes=(w if wants_w else None,
                                                                      b if wants_b else None))
    if wants_x:
        k.add(flops=n * (4 if training else 1), reads=(x, gy, w, stats), writes=(x,))
    saved = ("input",) if wants_w or wants_x and training else ()
    return k.done(*saved, extra_bytes=8 * groups if training and saved else 0)


@backward("batch_norm")
def batch_norm(grad: GradCall) -> Backward:
    """Batch statistics in training (per-channel mean and rstd), running statistics otherwise."""
    x = grad.call.t("input")
    return _norm_backward(grad, x.shape[1] if x.ndim > 1 else 1, bool(grad.call.attr("training")))


@backward("layer_norm")
def layer_norm(grad: GradCall) -> Backward:
    """Statistics per row of the normalised shape."""
    x = grad.call.t("input")
    shape = grad.call.attr("normalized_shape", x.shape[-1:])
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
    return _norm_backward(grad, x.numel // max(math.prod(shape), 1), True)


@backward("group_norm")
def group_norm(grad: GradCall) -> Backward:
    """Statistics per (sample, group)."""
    x = grad.call.t("input")
    return _norm_backward(grad, x.shape[0] * grad.call.attr("num_groups", 1), True)


@backward("instance_norm")
def instance_norm(grad: GradCall) -> Backward:
    """Statistics per (sample, channel)."""
    x = grad.call.t("input")
    return _norm_backward(grad, x.shape[0] * (x.shape[1] if x.ndim > 1 else 1), True)


@backward("rms_norm")
def rms_norm(grad: GradCall) -> Backward:
    """As layer norm with no mean: x_hat recomputed with 1 FLOP per element; saves rstd per row."""
    x = grad.call.t("input")
    shape = grad.call.attr("normalized_shape", x.shape[-1:])
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
    groups = x.numel // max(math.prod(shape), 1)
    result = _norm_backward(grad, groups, True, prep=1)
    return Backward(result.cost, result.saved, result.extra_bytes // 2)


@backward("normalize")
def normalize(grad: GradCall) -> Backward:
    """x / ||x||: (gy - y * sum(gy * y)) / ||x||, 5 FLOPs per element; saves input and output."""
    call, gy = grad.call, grad_out(grad.call)
    return Kernels().add(flops=5 * gy.numel, reads=(gy, call.t("input"), call.out),
                         writes=(call.t("input"),)).done("input", "out")


# A composite of ops that have rules; decomposing it is the fix.
no_backward("local_response_norm", "a composite (pow, avg_pool, div) costmodel records as one call")


@backward("weight_norm")
def weight_norm(grad: GradCall) -> Backward:
    """grad-g = (gy . v) / ||v|| per norm (2 FLOPs per element of v, the dot, + 1 per norm);
    grad-v = g / ||v|| (gy - w (gy . v) / ||v||^2): 3 per element of v (+ 2 per norm). Saves v,
    g and the norms (one per element of g, not a graph value)."""
    call, gy = grad.call, grad_out(grad.call)
    v, g = call.t("v"), call.t("g")
    k = Kernels().add(flops=2 * v.numel + g.numel, reads=(gy, v), writes=(g,))
    if grad.wants("v"):
        k.add(flops=3 * v.numel + 2 * g.numel, reads=(gy, v), writes=(v,))
    return k.done("v", "g", extra_bytes=g.numel * g.itemsize)
