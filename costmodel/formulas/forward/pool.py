"""Pooling (max, average, adaptive) and resampling (interpolate / upsample).

Pooling counts 1 FLOP per window element per output (a compare or an add; average pooling's final
divide is the window's last add's partner and is included: k elements = k-1 adds + 1 divide).
Adaptive pooling counts the exact window of every output position.
"""
from __future__ import annotations

import math

from ...core.cost import Cost
from ...core.vocab import Category
from ..registry import OpCall, formula, simple_cost


def _tuple(value, n: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(value) if len(value) == n else tuple(value) * n
    return (value,) * n


@formula("max_pool", "avg_pool", "lp_pool", category=Category.POOL)
def pool(call: OpCall) -> Cost:
    """FLOPs = out_numel * prod(kernel_size); MAC = input + output."""
    spatial = call.attr("spatial_dims", 2)
    kernel = _tuple(call.attr("kernel_size"), spatial)
    return simple_cost(call, flops=call.out.numel * math.prod(kernel))


def adaptive_window_total(size_in: int, size_out: int) -> int:
    """Sum over output positions i of the adaptive window [floor(i*n/m), ceil((i+1)*n/m))."""
    return sum(-(-((i + 1) * size_in) // size_out) - (i * size_in) // size_out
               for i in range(size_out))


@formula("adaptive_avg_pool", "adaptive_max_pool", category=Category.POOL)
def adaptive_pool(call: OpCall) -> Cost:
    """FLOPs = outer dims * prod over spatial dims of the summed window sizes (exact)."""
    x, out = call.t("input"), call.out
    spatial = call.attr("spatial_dims", 2)
    outer = math.prod(x.shape[:-spatial])
    windows = math.prod(adaptive_window_total(i, o)
                        for i, o in zip(x.shape[-spatial:], out.shape[-spatial:]))
    return simple_cost(call, flops=outer * windows)


#: FLOPs per output element of each interpolation mode: a 2^d-tap weighted sum is 2^d multiplies
#: and 2^d - 1 adds; bicubic is 4^d taps.
INTERPOLATE_FLOPS = {"nearest": 0, "nearest-exact": 0, "linear": 3, "bilinear": 7,
                     "trilinear": 15, "bicubic": 31}


@formula("interpolate", category=Category.RESAMPLE)
def interpolate(call: OpCall) -> Cost:
    """FLOPs = out_numel * taps cost of the mode (nearest 0, bilinear 7, bicubic 31, ...)."""
    mode = call.attr("mode", "nearest")
    if mode == "area":  # area is adaptive average pooling
        return adaptive_pool(call)
    return simple_cost(call, flops=call.out.numel * INTERPOLATE_FLOPS[mode])


@formula("max_unpool", category=Category.POOL)
def max_unpool(call: OpCall) -> Cost:
    """0 FLOPs: zeros written, each input value put at its index. MAC = input + indices read +
    output written."""
    return simple_cost(call)


def grid_sample_flops(mode: str, spatial: int) -> int:
    """FLOPs per output element of grid_sample's weighted sum: as interpolate's taps (bilinear on
    a 3-D input is trilinear)."""
    if mode == "bilinear":
        return INTERPOLATE_FLOPS["bilinear" if spatial == 2 else "trilinear"]
    return INTERPOLATE_FLOPS[mode]


@formula("grid_sample", category=Category.RESAMPLE)
def grid_sample(call: OpCall) -> Cost:
    """FLOPs = out_numel * taps cost (nearest 0, bilinear 7, trilinear 15, bicubic 31), plus the
    unnormalised coordinates, 2 FLOPs (a multiply and an add) per coordinate of each grid point,
    computed once for all channels: 2 * grid_numel."""
    spatial = call.attr("spatial_dims", 2)
    taps = grid_sample_flops(call.attr("mode", "bilinear"), spatial)
    return simple_cost(call, flops=call.out.numel * taps + 2 * call.t("grid").numel)
