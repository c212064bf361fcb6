"""Element-wise ops, activations, softmax, reductions and dropout.

Convention (docs/conventions.md): every element-wise op or activation is 1 FLOP per output element,
whatever its internal arithmetic (exp, erf, a clamp). costmodel counts op applications, not
micro-ops, so that ReLU, Add and a bias add all weigh the same, as in the ShuffleNet V2 paper.
Softmax and log-softmax state their count below. MAC reads each input once (a broadcast operand
only once) and writes each output once; in-place ops write their input.
"""
from __future__ import annotations

import math

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
              "median", "topk", "sort", "argsort", "histc")


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


@formula("outer", category=Category.ELEMENTWISE)
def outer(call: OpCall) -> Cost:
    """torch.outer(a, b) = a[:, None] * b[None, :]: n * m multiplies and no adds, so FLOPs =
    n * m and MAdds = 0 (as an einsum pair that sums nothing)."""
    return simple_cost(call, flops=call.out.numel)


def diff_steps(call: OpCall, extra: int = 0) -> int:
    """Element count summed over torch.diff's n passes along `dim`: pass k (1..n) turns L - k + 1
    elements into L - k, with L the input's length plus prepend's and append's. `extra` = 0 counts
    each pass's outputs (the forward's subtractions), 1 its inputs (the backward's)."""
    x, n = call.t("input"), call.attr("n", 1)
    axis = call.attr("dim", -1) % len(x.shape)
    rest = math.prod(s for i, s in enumerate(x.shape) if i != axis)
    length = call.out.shape[axis] + n
    return rest * sum(max(length - k + extra, 0) for k in range(1, n + 1))


@formula("diff", category=Category.ELEMENTWISE)
def diff(call: OpCall) -> Cost:
    """torch.diff: out[i] = x[i + 1] - x[i] along `dim`, n times over, on x with prepend and append
    joined: FLOPs = rest * sum over k = 1..n of (L - k), L the joined length and rest the product
    of the other dims (1 subtraction per element each pass written); MAC = inputs + output."""
    return simple_cost(call, flops=diff_steps(call))


@formula("polar", category=Category.ELEMENTWISE)
def polar(call: OpCall) -> Cost:
    """abs * (cos(angle) + i sin(angle)): one element-wise op, 1 FLOP per complex output element
    (the convention above); MAC = abs + angle read + the complex output written."""
    return simple_cost(call, flops=call.out.numel)


@formula("bucketize", category=Category.ELEMENTWISE)
def bucketize(call: OpCall) -> Cost:
    """torch.bucketize / torch.searchsorted: a binary search of each input element among the n
    sorted boundaries (the last dimension of an N-d sorted sequence): FLOPs = ceil(log2(n + 1))
    comparisons per input element; MAC = input + boundaries read + the indices written."""
    x, bounds = call.t("input"), call.t("boundaries")
    n = bounds.shape[-1] if bounds is not None and bounds.shape else 1
    steps = max(1, math.ceil(math.log2(n + 1)))
    numel = x.numel if x is not None else call.out.numel   # a scalar input is a number here
    return simple_cost(call, flops=steps * numel)


@formula("multinomial", category=Category.ELEMENTWISE)
def multinomial(call: OpCall) -> Cost:
    """torch.multinomial(weights, k): the running sum of each row's n weights, then a binary search
    per sample: FLOPs = weights.numel + samples * ceil(log2(n)); MAC = weights read + the sample
    indices written."""
    w, out = call.t("input"), call.out
    n = w.shape[-1] if w.shape else 1
    return simple_cost(call, flops=w.numel + out.numel * max(1, math.ceil(math.log2(max(n, 1)))))


@formula("quantize", category=Category.ELEMENTWISE)
def quantize(call: OpCall) -> Cost:
    """quantize_per_tensor / _per_channel (round(x / scale) + zero_point, clamped) and
    dequantize ((q - zero_point) * scale): one element-wise op, 1 FLOP per element (the
    convention above); MAC = input read + output written, each at its own width (float32 4 bytes,
    a quantized element 1)."""
    return simple_cost(call, flops=call.out.numel)
