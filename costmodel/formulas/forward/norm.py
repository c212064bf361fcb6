"""Normalisation layers: batch, layer, group, instance, RMS and local response norm.

Per element (docs/conventions.md, "FLOPs"):
- statistics (mean and variance from sum x and sum x^2): 3
- normalise, (x - mean) * rstd: 2
- affine: 1 for the weight, 1 for the bias
Batch norm at inference uses running statistics folded into one scale and shift: 2 per element.
"""
from __future__ import annotations

from ...core.cost import Cost
from ...core.vocab import Category
from ..registry import OpCall, formula, simple_cost

STATS, NORMALIZE = 3, 2


def _affine(call: OpCall) -> int:
    return int(call.t("weight") is not None) + int(call.t("bias") is not None)


@formula("batch_norm", category=Category.NORM)
def batch_norm(call: OpCall) -> Cost:
    """Inference: 2 FLOPs per element (folded scale and shift). Training: 3 + 2 + affine per
    element."""
    n = call.out.numel
    if call.attr("training", False):
        return simple_cost(call, flops=n * (STATS + NORMALIZE + _affine(call)))
    return simple_cost(call, flops=2 * n)


@formula("layer_norm", "group_norm", "instance_norm", category=Category.NORM)
def stats_norm(call: OpCall) -> Cost:
    """FLOPs = (3 statistics + 2 normalise + 1 per affine tensor) per element."""
    return simple_cost(call, flops=call.out.numel * (STATS + NORMALIZE + _affine(call)))


@formula("rms_norm", category=Category.NORM)
def rms_norm(call: OpCall) -> Cost:
    """FLOPs = (2 for sum x^2 + 1 scale + 1 per weight) per element."""
    return simple_cost(call, flops=call.out.numel * (3 + _affine(call)))


@formula("local_response_norm", category=Category.NORM)
def local_response_norm(call: OpCall) -> Cost:
    """FLOPs = (size squares-and-adds over neighbouring channels + 3 for k + alpha*s, pow,
    divide)."""
    return simple_cost(call, flops=call.out.numel * (2 * call.attr("size", 5) + 3))


@formula("normalize", category=Category.NORM)
def normalize(call: OpCall) -> Cost:
    """F.normalize (x / max(||x||_p, eps)): FLOPs = 3 per element (square, accumulate, divide)."""
    return simple_cost(call, flops=3 * call.out.numel)
