"""Bindings of element-wise ops, activations, softmax, reductions and dropout."""
from __future__ import annotations

from ..core.vocab import OpFlag
from .registry import Binding, bind
from .shape_rules import (
    _binary,
    _clamp,
    _compare,
    _first,
    _histc,
    _mean_sum,
    _outer,
    _quantize,
    _same,
)

UNARY = ("input", "inplace")
for _name in ("relu", "relu6", "silu", "hardswish", "hardsigmoid", "mish", "selu", "celu", "elu",
              "logsigmoid", "softsign", "tanhshrink"):
    bind(_name, f"F.{_name}", UNARY, shape=_same)
bind("relu", "torch.relu Tensor.relu", ("input",), shape=_same)
bind("relu", "torch.relu_ Tensor.relu_ F.relu_", ("input",), shape=_first, inplace=True)
bind("leaky_relu", "F.leaky_relu", ("input", "negative_slope", "inplace"), shape=_same)
bind("rrelu", "F.rrelu", ("input", "lower", "upper", "training", "inplace"), shape=_same)
bind("rrelu", "torch.rrelu", ("input", "lower", "upper", "training", "generator"), shape=_same)
bind("rrelu", "torch.rrelu_ F.rrelu_", ("input", "lower", "upper", "training", "generator"),
     shape=_first, inplace=True)
bind("hardtanh", "F.hardtanh", ("input", "min_val", "max_val", "inplace"), shape=_same)
bind("gelu", "F.gelu", ("input", "approximate"), shape=_same)
bind("softplus", "F.softplus", ("input", "beta", "threshold"), shape=_same)
bind("prelu", "F.prelu", ("input", "weight"), shape=_same)
bind("glu", "F.glu", ("input", "dim"))
bind("threshold", "F.threshold", ("input", "threshold", "value", "inplace"), shape=_same)
bind("hardshrink", "F.hardshrink", ("input", "lambd"), shape=_same)
bind("softshrink", "F.softshrink", ("input", "lambd"), shape=_same)
bind("sigmoid", "torch.sigmoid Tensor.sigmoid F.sigmoid", ("input",), shape=_same)
bind("sigmoid", "torch.sigmoid_ Tensor.sigmoid_", ("input",), shape=_first, inplace=True)
bind("tanh", "torch.tanh Tensor.tanh F.tanh", ("input",), shape=_same)
bind("tanh", "torch.tanh_ Tensor.tanh_", ("input",), shape=_first, inplace=True)
bind("softmax", "F.softmax torch.softmax Tensor.softmax F.softmin",
     ("input", "dim", "_stacklevel", "dtype"), shape=_same)
bind("log_softmax", "F.log_softmax torch.log_softmax Tensor.log_softmax",
     ("input", "dim", "_stacklevel", "dtype"), shape=_same)

BINARY = ("input", "other", "alpha")
for _name, _dunder in (("add", "add radd"), ("sub", "sub"), ("rsub", "rsub"), ("mul", "mul rmul"),
                       ("div", "truediv rtruediv"), ("floor_divide", "floordiv rfloordiv"),
                       ("remainder", "mod rmod"), ("pow", "pow rpow"), ("eq", "eq"), ("ne", "ne"),
                       ("lt", "lt"), ("le", "le"), ("gt", "gt"), ("ge", "ge"),
                       ("bitwise_and", "and rand"), ("bitwise_or", "or ror"),
                       ("bitwise_xor", "xor rxor")):
    methods = " ".join(f"Tensor.__{d}__" for d in _dunder.split())
    shape = _compare if _name in ("eq", "ne", "lt", "le", "gt", "ge") else _binary
    bind(_name, f"torch.{_name} Tensor.{_name} {methods}", BINARY, shape=shape)
    inplace_methods = " ".join(f"Tensor.__i{d}__" for d in _dunder.split() if not d.startswith("r"))
    bind(_name, f"Tensor.{_name}_ {inplace_methods}", BINARY, shape=_first, inplace=True)
for _name, _alias in (("gt", "greater"), ("ge", "greater_equal"), ("lt", "less"),
                      ("le", "less_equal"), ("ne", "not_equal")):   # numpy-style names
    bind(_name, f"torch.{_alias} Tensor.{_alias}", BINARY, shape=_compare)
    bind(_name, f"Tensor.{_alias}_", BINARY, shape=_first, inplace=True)
bind("div", "torch.true_divide Tensor.true_divide torch.divide Tensor.divide", BINARY,
     shape=_binary)
bind("mul", "torch.multiply Tensor.multiply", BINARY, shape=_binary)
bind("sub", "torch.subtract Tensor.subtract", BINARY, shape=_binary)
for _name in ("maximum", "minimum", "fmax", "fmin", "atan2", "hypot", "logaddexp", "xlogy",
              "copysign", "fmod", "heaviside"):
    bind(_name, f"torch.{_name} Tensor.{_name}", BINARY, shape=_binary)
for _name in ("logical_and", "logical_or", "logical_xor"):
    bind(_name, f"torch.{_name} Tensor.{_name}", BINARY, shape=_compare)
for _name in ("neg", "abs", "reciprocal", "sqrt", "rsqrt", "square", "exp", "exp2", "expm1", "log",
              "log2", "log10", "log1p", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
              "asinh", "acosh", "atanh", "erf", "erfc", "erfinv", "sign", "sgn", "floor", "ceil",
              "round", "trunc", "frac", "logical_not", "bitwise_not", "isnan", "isinf", "isfinite",
              "nan_to_num", "logit"):
    method = "" if _name in ("neg", "abs") else f"Tensor.{_name}"   # below, with __neg__, __abs__
    bind(_name, f"torch.{_name} {method} torch.special.{_name}", ("input",))
    bind(_name, f"Tensor.{_name}_ torch.{_name}_", ("input",), shape=_first, inplace=True)
bind("neg", "Tensor.neg Tensor.__neg__", ("input",), shape=_same)
bind("abs", "Tensor.abs Tensor.__abs__", ("input",), shape=_same)
bind("bitwise_not", "Tensor.__invert__", ("input",))
bind("clamp", "torch.clamp Tensor.clamp torch.clip Tensor.clip", ("input", "min", "max"),
     shape=_clamp)
bind("clamp", "torch.clamp_min Tensor.clamp_min", ("input", "min"), shape=_clamp)
bind("clamp", "torch.clamp_max Tensor.clamp_max", ("input", "max"), shape=_clamp)
bind("clamp", "torch.clamp_min_ Tensor.clamp_min_", ("input", "min"), shape=_first, inplace=True)
bind("clamp", "torch.clamp_max_ Tensor.clamp_max_", ("input", "max"), shape=_first, inplace=True)
bind("outer", "torch.outer Tensor.outer torch.ger Tensor.ger", ("input", "vec2"), shape=_outer)
bind("polar", "torch.polar", ("abs", "angle"))
bind("histc", "torch.histc Tensor.histc", ("input", "bins", "min", "max"), shape=_histc)
bind("quantize", "torch.quantize_per_tensor", ("input", "scale", "zero_point", "dtype"),
     shape=_quantize)
bind("quantize", "torch.quantize_per_channel", ("input", "scales", "zero_points", "axis",
                                                 "dtype"), shape=_quantize)
bind("quantize", "torch.quantize_per_tensor_dynamic", ("input", "dtype", "reduce_range"),
     shape=_quantize)
bind("quantize", "Tensor.dequantize torch.dequantize", ("input",), shape=_quantize)
bind("multinomial", "torch.multinomial Tensor.multinomial",
     ("input", "num_samples", "replacement", "generator"))
bind("bucketize", "torch.bucketize", ("input", "boundaries", "out_int32", "right"))
bind("bucketize", "torch.searchsorted", ("boundaries", "input", "out_int32", "right", "side",
                                         "sorter"), keywords={"sorted_sequence": "boundaries"})
bind("clamp", "torch.clamp_ Tensor.clamp_ Tensor.clip_", ("input", "min", "max"), shape=_first,
     inplace=True)


def _where_sizes(b: Binding, args: tuple, kwargs: dict) -> str | None:
    """torch.where(condition), with one argument, is nonzero: its size depends on the data."""
    if len(args) + len(kwargs) == 1:
        return "torch.where(condition) keeps a number of elements that depends on the data"
    return None


bind("where", "torch.where", ("condition", "input", "other"), sizes=_where_sizes)
bind("where", "Tensor.where", ("condition", "input", "other"))
bind("masked_fill", "torch.masked_fill Tensor.masked_fill", ("input", "mask", "value"))
bind("masked_fill", "Tensor.masked_fill_", ("input", "mask", "value"), shape=_first, inplace=True)
bind("lerp", "torch.lerp Tensor.lerp", ("input", "end", "weight"))
bind("addcmul", "torch.addcmul Tensor.addcmul", ("input", "tensor1", "tensor2", "value"))
bind("addcdiv", "torch.addcdiv Tensor.addcdiv", ("input", "tensor1", "tensor2", "value"))
bind("diff", "torch.diff Tensor.diff", ("input", "n", "dim", "prepend", "append"))
bind("tril", "torch.tril Tensor.tril", ("input", "diagonal"))
bind("triu", "torch.triu Tensor.triu", ("input", "diagonal"))

REDUCE = ("input", "dim", "keepdim")
for _name in ("sum", "mean", "amax", "amin", "max", "min", "prod", "argmax", "argmin", "any", "all",
              "cumsum", "cumprod", "logsumexp", "count_nonzero", "nansum", "nanmean", "median",
              "topk", "sort", "argsort", "var", "std", "var_mean", "std_mean", "norm"):
    bind(_name, f"torch.{_name} Tensor.{_name}", REDUCE,
         shape=_mean_sum if _name in ("sum", "mean") else None,
         flags=(OpFlag.CAPS_SIZES,) if _name == "topk" else ())   # a top-k can cap a size
bind("norm", "torch.linalg.vector_norm torch.linalg.norm", REDUCE)

DROPOUT = ("input", "p", "training", "inplace")
bind("dropout", "F.dropout F.dropout1d F.dropout2d F.dropout3d F.alpha_dropout "
     "F.feature_alpha_dropout", DROPOUT, shape=_same)
