"""Backward of the convolutions: standard, grouped, depthwise and transposed."""
from __future__ import annotations

import math

from ..registry import Backward, GradCall, backward
from .contraction import _weighted


@backward("conv")
def conv(grad: GradCall) -> Backward:
    """grad-input (a transposed conv) = forward MAdds; grad-weight = forward MAdds; bias: gy summed.

    Saves the input for grad-weight (and the weight for grad-input)."""
    call = grad.call
    madds = call.out.numel * math.prod(call.t("weight").shape[1:])
    return _weighted(grad, madds, "input", "weight", "bias")


@backward("conv_transpose")
def conv_transpose(grad: GradCall) -> Backward:
    """grad-input (a conv) = forward MAdds; grad-weight = forward MAdds; bias: gy summed."""
    call = grad.call
    madds = call.t("input").numel * math.prod(call.t("weight").shape[1:])
    return _weighted(grad, madds, "input", "weight", "bias")
