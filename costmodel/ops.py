"""Bindings from torch callables to formulas, with fast output-shape rules.

`RULES` maps each torch callable that costmodel understands (torch.*, torch.nn.functional.*,
Tensor methods) to a `Rule`: the formula to use, the names of its arguments (so formulas read
`groups=` by name, never by position), and optionally a shape rule that makes the output meta
tensor directly. Shape rules exist because many meta kernels are Python decompositions that are
far slower than the arithmetic (a meta hardswish takes ~1 ms, a meta layer_norm ~0.7 ms): for
ops whose output shape is obvious, costmodel computes it instead of running the kernel.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .formulas.matmul import broadcast

META = torch.device("meta")


@dataclass(frozen=True, slots=True)
class Rule:
    op: str                                   # formula name
    params: tuple[str, ...]                   # argument names; "*name" gathers the rest
    shape: Callable[[dict], Any] | None = None  # bound args -> output meta tensor(s), or None
    extra: Callable[[dict, Any], dict] | None = None  # bound args, output -> extra attributes
    inplace: bool = False
    create: bool = False                      # a factory: its tensors must be made on meta
    result: Callable[[dict, Any], Any] | None = None  # what to record as the output, if not `out`

    def bind(self, args: tuple, kwargs: dict) -> dict:
        params = self.params
        if params and params[-1].startswith("*"):
            head = len(params) - 1
            bound = dict(zip(params[:head], args))
            bound[params[-1][1:]] = tuple(args[head:])
        else:
            bound = dict(zip(params, args))
        if kwargs:
            bound.update(kwargs)
        return bound


RULES: dict[Callable, Rule] = {}
RULES_BY_NAME: dict[str, Rule] = {}
RULES_BY_OP: dict[str, Rule] = {}   # custom operators by qualified name: "torchvision::nms"
NAMES: dict[Callable, str] = {}   # the name costmodel prints for each callable, e.g. "F.conv2d"


def _targets(names: str) -> list[tuple[str, str, Callable]]:
    """'torch.add F.relu Tensor.add' -> the callables that exist in this torch version."""
    found = []
    for dotted in names.split():
        owner_name, _, attr = dotted.rpartition(".")
        owner = {"torch": torch, "F": F, "Tensor": Tensor, "operator": operator,
                 "torch.special": torch.special, "torch.linalg": torch.linalg}[owner_name]
        fn = getattr(owner, attr, None)
        if fn is not None:
            found.append((dotted, attr, fn))
    return found


def bind(op: str, names: str, params: tuple[str, ...], **options: Any) -> None:
    """Register `op`'s rule for every callable in `names` (space-separated 'module.attr')."""
    rule = Rule(op, params, **options)
    for dotted, attr, fn in _targets(names):
        if fn in RULES and RULES[fn].op != op:
            raise KeyError(f"{attr} bound to {RULES[fn].op!r} and {op!r}")
        RULES[fn] = rule
        NAMES.setdefault(fn, dotted)
        RULES_BY_NAME.setdefault(attr.strip("_"), rule)
        if attr in ("T", "mT"):  # properties reach __torch_function__ as their __get__
            RULES[fn.__get__] = rule
            NAMES.setdefault(fn.__get__, dotted)


def bind_op(op: str, qualnames: str, params: tuple[str, ...], **options: Any) -> None:
    """Register `op`'s rule for custom operators (`torch.ops.ns.name`) by qualified name, so that
    costmodel needs no import of the library that defines them."""
    for qualname in qualnames.split():
        RULES_BY_OP[qualname] = Rule(op, params, **options)


def _by_op(func: Callable) -> Rule | None:
    qualname = getattr(func, "_qualified_op_name", None) or getattr(
        getattr(func, "_schema", None), "name", None)
    return RULES_BY_OP.get(qualname) if isinstance(qualname, str) else None


_LOOKUPS: dict[Callable, Rule | None] = {}


def lookup(func: Callable) -> Rule | None:
    """The rule for `func`, cached (this runs for every torch call the analysed model makes)."""
    try:
        return _LOOKUPS[func]
    except KeyError:
        rule = _LOOKUPS[func] = RULES.get(func) or _by_op(func) or _by_name(func)
        return rule
    except TypeError:  # an unhashable callable
        return _by_name(func)


def _by_name(func: Callable) -> Rule | None:
    """Unbound in-place (`sigmoid_`) and reflected (`__rmul__`) variants of a known op."""
    name = getattr(func, "__name__", "")
    dunder = name.startswith("__") and name.endswith("__")
    inplace = dunder and name.startswith("__i") or not dunder and name.endswith("_")
    base = name[3:-2] if dunder and name.startswith(("__i", "__r")) else name.strip("_")
    rule = RULES_BY_NAME.get(base)
    if rule is None:
        return None
    if inplace and not rule.inplace:
        rule = Rule(rule.op, rule.params, _first, rule.extra, True, rule.create, rule.result)
    return rule


# ---- fast shape rules -----------------------------------------------------------------------

def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for size in reversed(shape):
        strides.append(acc)
        acc *= max(size, 1)
    return tuple(reversed(strides))


def empty(shape, dtype: torch.dtype, like: Tensor | None = None) -> Tensor:
    """A meta tensor of `shape`, keeping `like`'s memory layout when it has the same dense shape."""
    shape = tuple(shape)
    if like is not None and tuple(like.shape) == shape and (
            like.is_contiguous() or like.dim() == 4 and like.is_contiguous(
                memory_format=torch.channels_last)):
        stride = like.stride()
    else:
        stride = contiguous_strides(shape)
    return torch.empty_strided(shape, stride, dtype=dtype, device=META)


def _first(b: dict) -> Tensor:
    """In place: the output is the input tensor itself."""
    return b["input"]


def _same(b: dict) -> Tensor:
    x = b["input"]
    if b.get("inplace"):
        return x
    return empty(x.shape, b.get("dtype") or x.dtype, x)


def _binary(b: dict) -> Tensor | None:
    a, o = b.get("input"), b.get("other")
    if not isinstance(a, Tensor):
        return None
    if isinstance(o, Tensor):
        if o.dtype != a.dtype or o.dim() == 0 or a.dim() == 0 or a.device != o.device:
            return None  # type promotion and 0-dim rules: let torch decide
        shape = broadcast(tuple(a.shape), tuple(o.shape))
        return empty(shape, a.dtype, a if shape == tuple(a.shape) else o)
    if isinstance(o, bool) or not isinstance(o, (int, float)):
        return None
    if isinstance(o, float) and not a.is_floating_point():
        return None
    return empty(a.shape, a.dtype, a)


def _compare(b: dict) -> Tensor | None:
    out = _binary(b)
    return None if out is None else empty(out.shape, torch.bool)


def _linear(b: dict) -> Tensor | None:
    x, w = b["input"], b["weight"]
    if x.dim() == 0 or w.dim() not in (1, 2) or x.shape[-1] != w.shape[-1] or x.dtype != w.dtype:
        return None   # let torch raise its own error
    shape = tuple(x.shape[:-1]) + ((w.shape[0],) if w.dim() == 2 else ())
    return empty(shape, x.dtype)


def _conv(b: dict) -> Tensor | None:
    """Output of conv1d/2d/3d: (N, Cout, *[(size + 2p - d(k - 1) - 1) // s + 1]). Anything
    unusual (string padding, a shape torch would refuse) goes to torch's own meta kernel, which
    raises the real error; this rule only saves the common case its overhead."""
    x, w = b["input"], b["weight"]
    groups = b.get("groups", 1)
    if not isinstance(x, Tensor) or not isinstance(w, Tensor) or x.dtype != w.dtype:
        return None
    xshape, wshape = x.shape, w.shape
    k = len(wshape) - 2
    if k < 1 or len(xshape) not in (k + 1, k + 2) or type(groups) is not int or groups < 1:
        return None
    if xshape[-k - 1] != wshape[1] * groups or wshape[0] % groups:
        return None
    out = _windows(tuple(xshape[-k:]), tuple(wshape[2:]), b.get("stride", 1), b.get("padding", 0),
                   b.get("dilation", 1))
    if out is None:
        return None
    batched = len(xshape) == k + 2
    shape = ((xshape[0],) if batched else ()) + (wshape[0],) + out
    if batched and k == 2 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last):
        return torch.empty(shape, dtype=x.dtype, device=META).contiguous(
            memory_format=torch.channels_last)
    return empty(shape, x.dtype)


def _windows(sizes: tuple[int, ...], kernel: tuple[int, ...], stride: Any, padding: Any,
             dilation: Any) -> tuple[int, ...] | None:
    """Output sizes of a sliding window (conv, pooling): (size + 2p - d(k - 1) - 1) // s + 1 per
    spatial dim; None for string padding, an empty output and anything else torch should judge."""
    k = len(sizes)
    stride, padding, dilation = _per_dim(stride, k), _per_dim(padding, k), _per_dim(dilation, k)
    if stride is None or padding is None or dilation is None:
        return None
    out = []
    for size, w, s, p, d in zip(sizes, kernel, stride, padding, dilation):
        if w < 1 or s < 1 or d < 1 or p < 0:
            return None
        n = (size + 2 * p - d * (w - 1) - 1) // s + 1
        if n < 1:
            return None
        out.append(n)
    return tuple(out)


def _per_dim(value: Any, k: int) -> tuple[int, ...] | None:
    """stride=2 or stride=(2, 2) as k ints; None for 'same', a wrong length and the like."""
    if type(value) is int:
        return (value,) * k
    if isinstance(value, (tuple, list)) and all(type(v) is int for v in value):
        if len(value) == k:
            return tuple(value)
        if len(value) == 1:
            return (value[0],) * k
    return None


def _matmul(b: dict) -> Tensor | None:
    """torch.matmul of two tensors with at least 2 dims each: broadcast batch dims, then
    (n, k) @ (k, m). Vectors, mixed dtypes and mismatches go to torch (its error, its rules)."""
    a, o = b.get("input"), b.get("other")
    if not isinstance(a, Tensor) or not isinstance(o, Tensor) or a.dtype != o.dtype:
        return None
    ashape, oshape = tuple(a.shape), tuple(o.shape)
    if len(ashape) < 2 or len(oshape) < 2 or ashape[-1] != oshape[-2]:
        return None
    try:
        batch = broadcast(ashape[:-2], oshape[:-2])
    except ValueError:
        return None
    return empty(batch + (ashape[-2], oshape[-1]), a.dtype)


def _sdpa(b: dict) -> Tensor | None:
    q, k, v = b["query"], b["key"], b["value"]
    if q.dim() < 2 or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        return None
    return empty(tuple(q.shape[:-1]) + (v.shape[-1],), q.dtype)


def _embedding(b: dict) -> Tensor:
    idx, w = b["input"], b["weight"]
    return empty(tuple(idx.shape) + (w.shape[-1],), w.dtype)


def _cat(b: dict) -> Tensor | None:
    tensors = [t for t in b["tensors"] if t.dim() != 1 or t.shape[0] != 0]
    if not tensors or len({t.dtype for t in tensors}) != 1 or len({t.dim() for t in tensors}) != 1:
        return None
    dim = b.get("dim", 0)
    dim = dim + tensors[0].dim() if dim < 0 else dim
    shape = list(tensors[0].shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return empty(shape, tensors[0].dtype)


def _adaptive(spatial: int) -> Callable[[dict], Tensor | None]:
    def shape(b: dict) -> Tensor | None:
        if b.get("return_indices"):
            return None
        x, size = b["input"], b["output_size"]
        size = tuple(size) if isinstance(size, (list, tuple)) else (size,) * spatial
        outer = tuple(x.shape[:-spatial])
        return empty(outer + tuple(s if s is not None else x.shape[len(outer) + i]
                                   for i, s in enumerate(size)), x.dtype)
    return shape


def _pool(spatial: int, dilated: bool) -> Callable[[dict], Tensor | None]:
    """max_pool / avg_pool without ceil_mode or indices, on a contiguous input:
    (size + 2p - d(k - 1) - 1) // s + 1 per spatial dim. Anything else goes to torch."""
    def shape(b: dict) -> Tensor | None:
        x = b["input"]
        if b.get("ceil_mode") or b.get("return_indices") or not isinstance(x, Tensor) or \
                len(x.shape) not in (spatial + 1, spatial + 2) or not x.is_contiguous():
            return None
        kernel = _per_dim(b["kernel_size"], spatial)
        padding = _per_dim(b.get("padding", 0), spatial)
        if kernel is None or padding is None or any(2 * p > w for p, w in zip(padding, kernel)):
            return None                    # torch refuses padding over half the window
        stride = b.get("stride")
        out = _windows(tuple(x.shape[-spatial:]), kernel,
                       kernel if stride is None or stride == [] or stride == () else stride,
                       padding, b.get("dilation", 1) if dilated else 1)
        if out is None:
            return None
        return empty(tuple(x.shape[:-spatial]) + out, x.dtype)
    return shape


def _mean_sum(b: dict) -> Tensor | None:
    """sum / mean of a floating tensor over `dim` (an int or a list of ints), with keepdim.
    Integer inputs (type promotion), a dtype argument, dim=None and the like go to torch."""
    x, dim = b["input"], b.get("dim")
    if not isinstance(x, Tensor) or not x.is_floating_point() or b.get("dtype") is not None:
        return None
    ndim = len(x.shape)
    dims = (dim,) if type(dim) is int else tuple(dim) if isinstance(dim, (list, tuple)) and dim \
        and all(type(d) is int for d in dim) else None
    if dims is None or ndim == 0:
        return None
    axes = set()
    for d in dims:
        if not -ndim <= d < ndim:
            return None
        axes.add(d % ndim)
    if len(axes) != len(dims):
        return None
    keep = bool(b.get("keepdim", False))
    shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape) if keep or i not in axes)
    return empty(shape, x.dtype)


def _interpolate(b: dict) -> Tensor | None:
    x = b["input"]
    spatial = x.dim() - 2
    size, scale = b.get("size"), b.get("scale_factor")
    if size is not None:
        size = tuple(size) if isinstance(size, (list, tuple)) else (size,) * spatial
    elif scale is not None:
        scale = tuple(scale) if isinstance(scale, (list, tuple)) else (scale,) * spatial
        size = tuple(math.floor(float(n) * s) for n, s in zip(x.shape[2:], scale))
    else:
        return None
    return empty(tuple(x.shape[:2]) + size, x.dtype)


def _mha(b: dict):
    q, k = b["query"], b["key"]
    batched = q.dim() == 3
    out = empty(q.shape, q.dtype)
    if not b.get("need_weights", True):
        return out, None
    length, src = q.shape[0], k.shape[0]
    heads = b["num_heads"]
    lead = (q.shape[1],) if batched else ()
    mid = () if b.get("average_attn_weights", True) else (heads,)
    return out, empty(lead + mid + (length, src), q.dtype)


# ---- extra attributes -----------------------------------------------------------------------

def _spatial(n: int) -> Callable[[dict, Any], dict]:
    return lambda b, out: {"spatial_dims": n}


def _interp_extra(b: dict, out: Any) -> dict:
    return {"spatial_dims": b["input"].dim() - 2}


def _mha_extra(b: dict, out: Any) -> dict:
    return {"self_attention": b["query"] is b["key"] and b["key"] is b["value"]}


def _base(t: Tensor) -> Tensor:
    return t._base if t._base is not None else t


def _view_extra(b: dict, out: Any) -> dict:
    """A data-movement op is a view when every output aliases an input (or is the input)."""
    ins = [v for v in b.values() if isinstance(v, Tensor)]
    ins += [t for v in b.values() if isinstance(v, (list, tuple)) for t in v if isinstance(t, Tensor)]
    outs = out if isinstance(out, (list, tuple)) else (out,)
    bases = {id(_base(t)) for t in ins}
    ids = {id(t) for t in ins}
    is_view = all(isinstance(o, Tensor) and (id(o) in ids or o._is_view() and id(_base(o)) in bases)
                  for o in outs if o is not None)
    return {"is_view": is_view}


def _always_view(b: dict, out: Any) -> dict:
    return {"is_view": True}


# ---- the table ------------------------------------------------------------------------------

CONV = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
bind("conv", "torch.conv1d torch.conv2d torch.conv3d", CONV, shape=_conv)
bind("conv_transpose", "torch.conv_transpose1d torch.conv_transpose2d torch.conv_transpose3d",
     ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"))

bind("linear", "F.linear", ("input", "weight", "bias"), shape=_linear)
bind("bilinear", "F.bilinear", ("input1", "input2", "weight", "bias"))
bind("matmul", "torch.matmul Tensor.matmul Tensor.__matmul__", ("input", "other"), shape=_matmul)
bind("matmul", "torch.mm Tensor.mm torch.bmm Tensor.bmm torch.mv Tensor.mv torch.dot Tensor.dot "
     "torch.inner", ("input", "other"))
bind("matmul", "Tensor.__rmatmul__", ("other", "input"))
bind("addmm", "torch.addmm Tensor.addmm torch.baddbmm Tensor.baddbmm torch.addmv",
     ("input", "mat1", "mat2", "beta", "alpha"))
bind("einsum", "torch.einsum", ("equation", "*operands"))
bind("sdpa", "F.scaled_dot_product_attention",
     ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"),
     shape=_sdpa)
bind("mha", "F.multi_head_attention_forward",
     ("query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight", "in_proj_bias",
      "bias_k", "bias_v", "add_zero_attn", "dropout_p", "out_proj_weight", "out_proj_bias",
      "training", "key_padding_mask", "need_weights", "attn_mask", "use_separate_proj_weight",
      "q_proj_weight", "k_proj_weight", "v_proj_weight", "static_k", "static_v",
      "average_attn_weights", "is_causal"), shape=_mha, extra=_mha_extra)

bind("batch_norm", "F.batch_norm", ("input", "running_mean", "running_var", "weight", "bias",
                                    "training", "momentum", "eps"), shape=_same)
bind("layer_norm", "F.layer_norm", ("input", "normalized_shape", "weight", "bias", "eps"),
     shape=_same)
bind("group_norm", "F.group_norm", ("input", "num_groups", "weight", "bias", "eps"), shape=_same)
bind("instance_norm", "F.instance_norm", ("input", "running_mean", "running_var", "weight", "bias",
                                          "use_input_stats", "momentum", "eps"), shape=_same)
bind("rms_norm", "F.rms_norm", ("input", "normalized_shape", "weight", "eps"), shape=_same)
bind("normalize", "F.normalize", ("input", "p", "dim", "eps", "out"), shape=_same)
bind("local_response_norm", "F.local_response_norm", ("input", "size", "alpha", "beta", "k"),
     shape=_same)

UNARY = ("input", "inplace")
for _name in ("relu", "relu6", "silu", "hardswish", "hardsigmoid", "mish", "selu", "celu", "elu",
              "logsigmoid", "softsign", "tanhshrink"):
    bind(_name, f"F.{_name}", UNARY, shape=_same)
bind("relu", "torch.relu Tensor.relu", ("input",), shape=_same)
bind("relu", "torch.relu_ Tensor.relu_ F.relu_", ("input",), shape=_first, inplace=True)
bind("leaky_relu", "F.leaky_relu", ("input", "negative_slope", "inplace"), shape=_same)
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
bind("div", "torch.true_divide Tensor.true_divide torch.divide Tensor.divide", BINARY, shape=_binary)
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
    bind(_name, f"torch.{_name} Tensor.{_name} torch.special.{_name}", ("input",))
    bind(_name, f"Tensor.{_name}_ torch.{_name}_", ("input",), shape=_first, inplace=True)
bind("neg", "Tensor.__neg__", ("input",), shape=_same)
bind("abs", "Tensor.__abs__", ("input",), shape=_same)
bind("bitwise_not", "Tensor.__invert__", ("input",))
bind("clamp", "torch.clamp Tensor.clamp torch.clip Tensor.clip", ("input", "min", "max"),
     shape=_same)
bind("clamp", "torch.clamp_ Tensor.clamp_ Tensor.clip_", ("input", "min", "max"), shape=_first,
     inplace=True)
bind("where", "torch.where Tensor.where", ("condition", "input", "other"))
bind("masked_fill", "torch.masked_fill Tensor.masked_fill", ("input", "mask", "value"))
bind("masked_fill", "Tensor.masked_fill_", ("input", "mask", "value"), shape=_first, inplace=True)
bind("lerp", "torch.lerp Tensor.lerp", ("input", "end", "weight"))
bind("addcmul", "torch.addcmul Tensor.addcmul", ("input", "tensor1", "tensor2", "value"))
bind("addcdiv", "torch.addcdiv Tensor.addcdiv", ("input", "tensor1", "tensor2", "value"))
bind("tril", "torch.tril Tensor.tril", ("input", "diagonal"))
bind("triu", "torch.triu Tensor.triu", ("input", "diagonal"))

REDUCE = ("input", "dim", "keepdim")
for _name in ("sum", "mean", "amax", "amin", "max", "min", "prod", "argmax", "argmin", "any", "all",
              "cumsum", "cumprod", "logsumexp", "count_nonzero", "nansum", "nanmean", "median",
              "topk", "sort", "argsort", "var", "std", "var_mean", "std_mean", "norm"):
    bind(_name, f"torch.{_name} Tensor.{_name}", REDUCE,
         shape=_mean_sum if _name in ("sum", "mean") else None)
bind("norm", "torch.linalg.vector_norm torch.linalg.norm", REDUCE)

DROPOUT = ("input", "p", "training", "inplace")
bind("dropout", "F.dropout F.dropout1d F.dropout2d F.dropout3d F.alpha_dropout "
     "F.feature_alpha_dropout", DROPOUT, shape=_same)

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
    bind("adaptive_max_pool", f"F.adaptive_max_pool{_n}d torch.adaptive_max_pool{_n}d",
         ("input", "output_size", "return_indices"), shape=_adaptive(_n), extra=_spatial(_n))
bind("interpolate", "F.interpolate",
     ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor",
      "antialias"), shape=_interpolate, extra=_interp_extra)

bind("embedding", "F.embedding", ("input", "weight", "padding_idx", "max_norm", "norm_type",
                                  "scale_grad_by_freq", "sparse"), shape=_embedding)

MOVE = ("input", "*args")
bind("view", "Tensor.detach Tensor.detach_ torch.detach Tensor.requires_grad_ Tensor.__get__",
     MOVE, extra=_always_view)
bind("copy", "Tensor.view Tensor.view_as Tensor.reshape Tensor.reshape_as torch.reshape "
     "Tensor.flatten torch.flatten Tensor.unflatten torch.unflatten Tensor.permute torch.permute "
     "Tensor.transpose torch.transpose Tensor.t torch.t Tensor.T Tensor.mT Tensor.squeeze "
     "torch.squeeze Tensor.unsqueeze torch.unsqueeze Tensor.expand Tensor.expand_as "
     "torch.broadcast_to Tensor.broadcast_to Tensor.narrow torch.narrow Tensor.select torch.select "
     "Tensor.unbind torch.unbind Tensor.split torch.split Tensor.split_with_sizes Tensor.chunk "
     "torch.chunk Tensor.tensor_split torch.tensor_split Tensor.__getitem__ Tensor.movedim "
     "torch.movedim Tensor.moveaxis torch.moveaxis Tensor.swapaxes torch.swapaxes Tensor.swapdims "
     "Tensor.diagonal torch.diagonal Tensor.as_strided Tensor.unfold Tensor.contiguous "
     "Tensor.clone torch.clone Tensor.repeat Tensor.tile torch.tile Tensor.repeat_interleave "
     "torch.repeat_interleave Tensor.roll torch.roll Tensor.flip torch.flip torch.fliplr "
     "torch.flipud torch.rot90 Tensor.to Tensor.type Tensor.type_as Tensor.float Tensor.half "
     "Tensor.double Tensor.bfloat16 Tensor.int Tensor.long Tensor.bool Tensor.cpu "
     "torch.broadcast_tensors torch.meshgrid torch.atleast_1d torch.atleast_2d torch.atleast_3d "
     "torch.channel_shuffle torch.native_channel_shuffle F.channel_shuffle F.pixel_shuffle "
     "F.pixel_unshuffle torch.pixel_shuffle torch.pixel_unshuffle F.pad torch.constant_pad_nd "
     "F.unfold F.fold torch.masked_select Tensor.masked_select torch.take Tensor.take "
     "Tensor.copy_ Tensor.fill_ Tensor.zero_ Tensor.index_put_ Tensor.index_put",
     MOVE, extra=_view_extra)
bind("copy", "torch.cat torch.concat torch.concatenate", ("tensors", "dim"), shape=_cat,
     extra=_view_extra)
bind("copy", "torch.stack torch.hstack torch.vstack torch.dstack", ("tensors", "dim"),
     extra=_view_extra)
bind("copy", "torch.gather Tensor.gather torch.take_along_dim Tensor.take_along_dim",
     ("input", "dim", "index"), extra=_view_extra)
bind("copy", "torch.index_select Tensor.index_select", ("input", "dim", "index"),
     extra=_view_extra)
bind("copy", "torch.scatter Tensor.scatter Tensor.scatter_ torch.scatter_add Tensor.scatter_add "
     "Tensor.scatter_add_ Tensor.index_add Tensor.index_add_ Tensor.index_copy "
     "Tensor.index_copy_", ("input", "dim", "index", "src"), extra=_view_extra)

bind("create", "torch.zeros torch.ones torch.full torch.empty torch.arange torch.linspace "
     "torch.logspace torch.eye torch.rand torch.randn torch.randint torch.randperm torch.tensor "
     "torch.as_tensor torch.scalar_tensor torch.empty_strided torch.tril_indices "
     "torch.triu_indices", ("*args",), create=True)
bind("create", "torch.zeros_like torch.ones_like torch.full_like torch.empty_like "
     "torch.rand_like torch.randn_like torch.randint_like Tensor.new_zeros Tensor.new_ones "
     "Tensor.new_full Tensor.new_empty Tensor.new_tensor", ("like", "*args"))

# x[index] = value writes into a region of x and returns None: record the region as the output.
bind("copy", "Tensor.__setitem__", ("dest", "index", "value"),
     result=lambda b, out: b["dest"][b["index"]], extra=lambda b, out: {"is_view": False})

# Detection operators (torchvision registers them as torch.ops.torchvision.*).
bind_op("nms", "torchvision::nms", ("boxes", "scores", "iou_threshold"),
        # data-dependent: how many boxes survive depends on the scores; the static upper bound
        # is every box, which the eager capture assumes and reports (CM009)
        shape=lambda b: torch.empty((b["boxes"].shape[0],), dtype=torch.int64, device=META))
bind_op("roi_align", "torchvision::roi_align",
        ("input", "rois", "spatial_scale", "pooled_height", "pooled_width", "sampling_ratio",
         "aligned"))
