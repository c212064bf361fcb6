"""Bindings of pooling and resampling."""
from __future__ import annotations

from typing import Any, Callable

from .registry import bind
from .shape_rules import (
    _adaptive,
    _grid_sample,
    _interpolate,
    _pool,
    _pool_with_indices,
    _unpool,
    _with_indices,
)


def _spatial(n: int) -> Callable[[dict, Any], dict]:
    return lambda b, out: {"spatial_dims": n}


def _interp_extra(b: dict, out: Any) -> dict:
    return {"spatial_dims": b["input"].dim() - 2}


for _n in (1, 2, 3):
    bind("max_pool", f"F.max_pool{_n}d torch.max_pool{_n}d",
         ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
         shape=_pool(_n, dilated=True), extra=_spatial(_n))
    bind("avg_pool", f"F.avg_pool{_n}d torch.avg_pool{_n}d",
         ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
          "divisor_override"), shape=_pool(_n, dilated=False), extra=_spatial(_n))
    bind("lp_pool", f"F.lp_pool{_n}d", ("input", "norm_type", "kernel_size", "stride", "ceil_mode"),
         extra=_spatial(_n))
    bind("adaptive_avg_pool", f"F.adaptive_avg_pool{_n}d torch.adaptive_avg_pool{_n}d",
         ("input", "output_size"), shape=_adaptive(_n), extra=_spatial(_n))
    bind("adaptive_max_pool", f"F.adaptive_max_pool{_n}d",
         ("input", "output_size", "return_indices"), shape=_adaptive(_n), extra=_spatial(_n))
    bind("adaptive_max_pool", f"torch.adaptive_max_pool{_n}d",   # always (values, indices)
         ("input", "output_size"), shape=_with_indices(_adaptive(_n)), extra=_spatial(_n))
    bind("max_pool", f"F.max_pool{_n}d_with_indices",   # F.max_pool{n}d(return_indices=True)
         ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
         shape=_pool_with_indices(_n), extra=_spatial(_n))
    bind("max_unpool", f"F.max_unpool{_n}d",
         ("input", "indices", "kernel_size", "stride", "padding", "output_size"),
         shape=_unpool(_n), extra=_spatial(_n))
bind("grid_sample", "F.grid_sample", ("input", "grid", "mode", "padding_mode", "align_corners"),
     shape=_grid_sample, extra=_interp_extra)
bind("interpolate", "F.interpolate",
     ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor",
      "antialias"), shape=_interpolate, extra=_interp_extra)
