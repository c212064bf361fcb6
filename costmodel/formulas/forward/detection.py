"""Detection operators: non-maximum suppression and RoI Align (torchvision's custom ops).

How many boxes nms keeps depends on the data; the engine passes the static upper bound (every box
kept) and marks it (CM009). The formulas below are worst cases of the same kind.
"""
from __future__ import annotations

import math

from ...core.cost import Cost
from ...core.vocab import Category
from ..registry import OpCall, formula, simple_cost

#: one IoU of two boxes: 4 max/min and 2 subtractions for the overlap, 2 clamps, 1 multiply for
#: its area, 2 add/subtract for the union, 1 divide, 1 compare with the threshold.
IOU_FLOPS = 13


@formula("nms", category=Category.REDUCTION)
def nms(call: OpCall) -> Cost:
    """Worst case, N boxes: sort N*ceil(log2 N) compares + areas 3N + IoU of all N(N-1)/2 pairs."""
    n = call.t("boxes").shape[0]
    sort = n * math.ceil(math.log2(n)) if n > 1 else 0
    return simple_cost(call, flops=sort + 3 * n + IOU_FLOPS * (n * (n - 1) // 2))


@formula("roi_align", category=Category.RESAMPLE)
def roi_align(call: OpCall) -> Cost:
    """Each output averages s*s bilinear samples (s = sampling_ratio): per sample 7 FLOPs (4-tap
    weighted sum) + 1 add, then 1 divide: FLOPs = out_numel * (8*s*s + 1); MAC = input + rois +
    output (a bound: only the sampled pixels are read). sampling_ratio <= 0 samples a number
    that depends on each box's size: no static formula."""
    s = call.attr("sampling_ratio", 0)
    if s <= 0:
        raise ValueError("sampling_ratio <= 0 takes a box-size-dependent number of samples")
    return simple_cost(call, flops=call.out.numel * (8 * s * s + 1))
