"""Element-wise ops, activations, softmax, reductions and dropout.

Convention (docs/conventions.md): every element-wise op or activation is 1 FLOP per output element,
whatever its internal arithmetic (exp, erf, a clamp). costmodel counts op applications, not
micro-ops, so that ReLU, Add and a bias add all weigh the same, as in the ShuffleNet V2 paper.
Softmax and log-softmax state their count below. MAC reads each input once (a broadcast operand
only once) and writes each output once; in-place ops write their input.
"""
from __future__ import annotations

from ...core.cost import Cost
from ...core.vocab import Category
from ..registry import OpCall, formula, io_mac, params_of, simple_cost

#: softmax per element: max, subtract, exp, sum, divide.
SOFTMAX_FLOPS = 5

ACTIVATIONS = (
    "relu", "relu6", "leaky_relu", "gelu", "silu", "hardswish", "hardsigmoid", "sigmoid", "tanh",
    "elu", "selu", "celu", "mish", "softplus", "softsign", "hardtanh", "logsigmoid", "prelu",
    "rrelu", "threshold", "hardshrink", "softshrink", "tanhshrink", "glu",
)

ELEMENTWISE = (
    # arithmetic
    "add", "sub", "rsub", "mul", "div", "floor_divide", "remainder", "fmod", "pow", "neg", "abs",
    "reciprocal", "sqrt", "rsqrt", "square", "exp", "exp2", "expm1", "log", "log2", "log10",
    "log1p", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh",
    "acosh", "atanh", "erf", "erfc", "erfinv", "sign", "sgn", "floor", "ceil", "round", "trunc",
    "frac", "clamp", "maximum", "minimum", "fmax", "fmin", "lerp", "addcmul", "addcdiv", "hypot",
    "logaddexp", "xlogy", "nan_to_num", "copysign", "logit", "heaviside",
    # comparison and logic
    "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor", "logical_not",
    "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "isnan", "isinf", "isfinite",
    "where", "masked_fill", "tril", "triu",
)

REDUCTIONS = ("sum", "mean", "amax", "amin", "max", "min", "prod", "argmax", "argmin", "any",
              "all", "cumsum", "cumprod", "logsumexp", "count_nonzero", "nansum", "nanmean",
              "median", "topk", "sort", "argsort")


def _per_element(k: int):
    def per_element(call: OpCall) -> Cost:
        return simple_cost(call, flops=k * call.out.numel)
    per_element.__doc__ = f"FLOPs = {k} per output element; MAC = inputs read + output written."
    return per_element


formula(*ACTIVATIONS, category=Category.ACTIVATION)(_per_element(1))
formula(*ELEMENTWISE, category=Category.ELEMENTWISE)(_per_element(1))


@formula(*REDUCTIONS, category=Category.REDUCTION)
def reduction(call: OpCall) -> Cost:
    """FLOPs = 1 per input element reduced (a compare or an add); MAC = input + output."""
    x = call.t("input")
    return simple_cost(call, flops=x.numel if x is not None else 0)


@formula("var", "std", "var_mean", "std_mean", "norm", category=Category.REDUCTION)
def variance(call: OpCall) -> Cost:
    """FLOPs = 3 per input element (sum, then square and accumulate the deviation)."""
    return simple_cost(call, flops=3 * call.t("input").numel)


@formula("softmax", "log_softmax", category=Category.SOFTMAX)
def softmax(call: OpCall) -> Cost:
    """FLOPs = 5 per element (max, subtract, exp, sum, divide or log); MAC = input + output."""
    return simple_cost(call, flops=SOFTMAX_FLOPS * call.out.numel)


@formula("dropout", category=Category.DROPOUT)
def dropout(call: OpCall) -> Cost:
    """Identity at inference (0 everything). In training: 1 FLOP per element (mask and scale)."""
    if not call.attr("training", False) or call.attr("p", 0.5) == 0:
        return Cost()
    mac, mac_bytes = io_mac(call)
    mask = call.out.numel                  # the mask is written, at the activation's dtype
    return Cost(0, call.out.numel, params_of(*call.inputs()), mac + mask,
                mac_bytes + mask * call.out.itemsize)
