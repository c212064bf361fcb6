"""Loss functions: element-wise terms, then a reduction.

Convention (as for every element-wise op, README "FLOPs"): 1 FLOP per application of an
element-wise operation, so a loss costs `per` FLOPs for each element of its input, where `per`
is the number of operations its formula applies to one element, written out below; a `weight`
multiplies once more per term. reduction='mean' or 'sum' adds 1 FLOP per term summed (the mean's
single divide is ignored); reduction='none' (or the old `reduce=False`) sums nothing. MAC: inputs
read once, output written once.
"""
from __future__ import annotations

from ...core.cost import Cost
from ...core.vocab import Category
from ..registry import OpCall, formula, simple_cost
from .pointwise import SOFTMAX_FLOPS

#: FLOPs per input element of each element-wise loss, before the reduction:
#: mse (x - t)^2: sub, square; l1 |x - t|: sub, abs; smooth_l1 / huber: sub, abs, compare, the
#: chosen branch (0.5 d^2 / beta or |d| - 0.5 beta); binary_cross_entropy
#: -(t log x + (1 - t) log(1 - x)): log, 1 - x, log, mul, 1 - t, mul, add, neg;
#: binary_cross_entropy_with_logits (1 - t) x + log(1 + exp(-x)): 1 - t, mul, neg, exp, add, log,
#: add (pos_weight p: (p - 1) t + 1 times the log term, 3 more); kl_div t (log t - x) (or
#: exp(t) (t - x) with log_target): 3.
PER_ELEMENT = {"mse_loss": 2, "l1_loss": 2, "smooth_l1_loss": 4, "binary_cross_entropy": 8,
               "binary_cross_entropy_with_logits": 7, "kl_div": 3}


def reduces(call: OpCall) -> bool:
    """Whether the loss sums its terms: reduction != 'none' (old spelling: reduce=False)."""
    if call.attr("reduce") is False:
        return False
    return call.attr("reduction", "mean") != "none"


@formula(*PER_ELEMENT, category=Category.REDUCTION)
def elementwise_loss(call: OpCall) -> Cost:
    """FLOPs = n * (PER_ELEMENT[op] + [weight] + [pos_weight: 3]) + [reduced: n], with n the
    input's elements."""
    n = call.t("input").numel
    per = PER_ELEMENT[call.op] + (call.t("weight") is not None)
    per += 3 * (call.t("pos_weight") is not None)
    return simple_cost(call, flops=n * per + (n if reduces(call) else 0))


def class_rows(call: OpCall) -> tuple[int, int]:
    """(positions, classes) of a class-scored input: (N, C, d1, ...) or (C,)."""
    shape = call.t("input").shape
    classes = shape[1] if len(shape) >= 2 else shape[0]
    return call.t("input").numel // max(classes, 1), classes


@formula("nll_loss", category=Category.REDUCTION)
def nll_loss(call: OpCall) -> Cost:
    """-w[t] x[t] per position (the input is log-probabilities): 1 FLOP per position (the
    negated pick), + 1 with a class weight, + 1 when reduced."""
    rows, _ = class_rows(call)
    per = 1 + (call.t("weight") is not None) + reduces(call)
    return simple_cost(call, flops=rows * per)


@formula("cross_entropy", category=Category.REDUCTION)
def cross_entropy(call: OpCall) -> Cost:
    """log_softmax over the classes (5 FLOPs per input element, as `softmax`), then nll_loss
    (1 per position, + 1 with a class weight, + 1 when reduced). Class-probability targets (a
    float target of the input's shape): -sum_c t_c logp_c, 2 per element (+ 1 with weight).
    label_smoothing > 0 also sums every class's logp: 1 per element + 2 per position (mix)."""
    n = call.t("input").numel
    rows, _ = class_rows(call)
    target = call.t("target")
    weighted = call.t("weight") is not None
    flops = SOFTMAX_FLOPS * n
    if target is not None and target.shape == call.t("input").shape:
        flops += n * (2 + weighted)
    else:
        flops += rows * (1 + weighted)
    if (call.attr("label_smoothing") or 0.0) > 0:
        flops += n + 2 * rows
    flops += rows if reduces(call) else 0
    return simple_cost(call, flops=flops)
