"""Convolutions: standard, grouped, depthwise, dilated, strided, padded and transposed, in 1d/2d/3d.

The kernel size and the channels per group come from the weight's shape, so stride, padding and
dilation need no formula of their own: they only change the output map, which the spec carries.
"""
from __future__ import annotations

import math

from ...core.cost import Cost
from ...core.vocab import Category
from ..registry import OpCall, formula, io_mac, params_of


def conv_category(call: OpCall) -> Category:
    groups = call.attr("groups", 1)
    if call.op == "conv_transpose":
        return Category.TRANSPOSED_CONV
    if groups == 1:
        return Category.CONV
    # weight is (C_out, C_in/g, *k): one input channel per group is depthwise.
    return Category.DEPTHWISE_CONV if call.t("weight").shape[1] == 1 else Category.GROUP_CONV


@formula("conv", category=conv_category)
def conv(call: OpCall) -> Cost:
    """MAdds = out_numel * (C_in / g) * prod(kernel)   (MobileNet: Dk*Dk*M*N*DF*DF, divided by g).

    weight is (C_out, C_in/g, *kernel); FLOPs add 1 per output element for the bias.
    MAC = input + weight (+ bias) + output, e.g. hw(c1+c2) + c1*c2 for a 1x1 conv (ShuffleNet V2).
    """
    weight, bias, out = call.t("weight"), call.t("bias"), call.out
    madds = out.numel * math.prod(weight.shape[1:])
    flops = 2 * madds + (out.numel if bias is not None else 0)
    mac, mac_bytes = io_mac(call)
    return Cost(madds, flops, params_of(weight, bias), mac, mac_bytes)


@formula("conv_transpose", category=conv_category)
def conv_transpose(call: OpCall) -> Cost:
    """MAdds = in_numel * (C_out / g) * prod(kernel): every input element scatters into a kernel.

    weight is (C_in, C_out/g, *kernel). Same convention as PyTorch's FlopCounterMode.
    """
    x, weight, bias, out = call.t("input"), call.t("weight"), call.t("bias"), call.out
    madds = x.numel * math.prod(weight.shape[1:])
    flops = 2 * madds + (out.numel if bias is not None else 0)
    mac, mac_bytes = io_mac(call)
    return Cost(madds, flops, params_of(weight, bias), mac, mac_bytes)
