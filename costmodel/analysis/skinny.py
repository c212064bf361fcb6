"""Skinny linear layers: how fast a linear with few rows (a decode step's batch, a batch-1 MLP)
streams its weights, measured by calibration on a grid of rows x input width.

A linear over M rows with a K x N weight does 2 M K N FLOPs on K N weights. When M is small its
time is the time to read the weights, but not at the streaming bandwidth of a plain copy: BLAS
runs such a product as a matrix-vector kernel (M = 1) or as a small-M GEMM whose speed per weight
byte depends on M and on K (the length of each dot product). On a 1-thread x86 CPU with MKL, a
1 x 256 input reads a 256-wide weight at about a third of the copy bandwidth, and 4 rows are
slower per weight byte than 1. Calibration (`measure`) times F.linear over cold weights (cycled
past the last-level cache) at every (M, K) of ROWS x WIDTHS, after the fixed cost per op; the
estimate reads a linear's weight time as weight bytes / the bandwidth interpolated in (log M,
log K) (`bandwidth`), clamped to the grid's widths, in place of the profile's weight bandwidth by
size (square matrices, one row); a linear with more rows than the grid's largest keeps that.

`bandwidth` is pure Python; `measure` imports torch when called.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .profiles import interp

#: rows (M) and input widths (K) calibration measures
ROWS = (1, 2, 4, 8, 16)
WIDTHS = (128, 256, 512, 1024, 2048, 4096)
#: bytes of distinct weights each measurement cycles through (past most last-level caches)
COLD_BYTES = 48 * 2 ** 20
#: passes over the grid, the fastest of each cell kept (a burst of other work slows one pass)
PASSES = 2


def key(rows: int, width: int) -> str:
    return f"{rows}x{width}"


def _grid(table: Mapping[str, float]) -> tuple[list[int], list[int]]:
    pairs = [tuple(int(v) for v in k.split("x")) for k in table]
    return sorted({m for m, _ in pairs}), sorted({k for _, k in pairs})


def bandwidth(table: Mapping[str, float], rows: int, width: int) -> float | None:
    """Weight bytes per second of a linear over `rows` rows with input width `width`: the
    table's value, bilinear in (log rows, log width) on the log of the bandwidths
    (profiles.interp), clamped to the grid; None when the table is empty or `rows` exceeds its
    largest rows."""
    if not table:
        return None
    ms, ks = _grid(table)
    if rows > ms[-1] or rows < 1:
        return None
    per_row = [interp(ks, [math.log(table[key(m, k)]) for k in ks], width) for m in ms]
    return math.exp(interp(ms, per_row, rows))


def linear_shape(node: Any) -> tuple[int, int] | None:
    """(rows, input width) of a graph node that is one linear call on a parameter weight."""
    calls = node.calls
    if len(calls) != 1 or calls[0].call.op != "linear":
        return None
    x, w = calls[0].call.t("input"), calls[0].call.t("weight")
    if x is None or w is None or w.role != "param" or not x.shape or not x.shape[-1]:
        return None
    return x.numel // x.shape[-1], x.shape[-1]


def measure(budget: float, fixed: float = 0.0) -> dict[str, float]:
    """Weight bytes per second of F.linear at each (rows, width) of ROWS x WIDTHS, over 1024-wide
    outputs and COLD_BYTES of distinct weights cycled, the best of several timed passes
    (calibrate.py's timer), after `fixed` seconds per op (the estimate counts those apart);
    `budget` seconds in all."""
    import torch
    import torch.nn.functional as F

    from .measure import _best_seconds

    out = dict.fromkeys((key(m, k) for m in ROWS for k in WIDTHS), 0.0)
    share = budget / (len(ROWS) * len(WIDTHS) * PASSES)
    with torch.no_grad():
        for _ in range(PASSES):
            for width in WIDTHS:
                n = 1024
                weights = [torch.randn(n, width)
                           for _ in range(max(1, COLD_BYTES // (4 * n * width)))]
                each = weights[0].nbytes
                for rows in ROWS:
                    x = torch.randn(rows, width)

                    def run(x=x, weights=weights):
                        for w in weights:
                            F.linear(x, w)
                    t = _best_seconds(run, share) / len(weights)
                    cell = key(rows, width)
                    out[cell] = max(out[cell], each / max(t - fixed, t / 2))
                weights.clear()
    return monotone(out)


def monotone(table: dict[str, float]) -> dict[str, float]:
    """More rows never stream the same weights faster per byte (they only add work): a cell
    slower than a cell with more rows at its width was disturbed, and takes that cell's value
    (a lower bound on its own)."""
    ms, ks = _grid(table)
    out = dict(table)
    for k in ks:
        floor = 0.0
        for m in reversed(ms):
            floor = max(floor, out[key(m, k)])
            out[key(m, k)] = floor
    return out
