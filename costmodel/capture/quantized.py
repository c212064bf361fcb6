"""Statically quantized modules (eager-mode quantization: `torch.ao.quantization.convert`,
torchvision's `quantize=True` models) as their meta clones run them.

Their kernels (`quantized::conv2d_relu`, `quantized::linear`, `quantized::add`, ...) have no meta
kernel, and a meta tensor cannot be quantized. So the clone of each such module gets a forward
that does what the kernel does, on the integer representation of the quantized tensors: a
quint8 / qint8 activation is a uint8 / int8 meta tensor of the same shape (one byte per element,
as the kernel reads and writes it), a weight is its int8 values (`weight().int_repr()`), and the
bias stays as the module keeps it (float32, 4 bytes, as wide as the int32 the kernel adds).

- `Quantize`: `torch.quantize_per_tensor` (ops: the uint8 / int8 meta tensor; reads the float
  input, writes one byte per element). `DeQuantize`: `x.dequantize()` (float32).
- quantized `Conv1d/2d/3d`, `ConvTranspose1d/2d/3d`, `ConvReLU*`, `ConvAdd2d`,
  `ConvAddReLU2d`: `F.convNd` / `F.conv_transposeNd` on the int8 weight (+ `relu`, + the added
  tensor), so the MAdds are the float conv's.
- quantized `Linear`, `LinearReLU`: `F.linear` on the int8 weight (+ `relu`).
- `QFunctional.add / add_relu / mul / cat / add_scalar / mul_scalar / matmul`: the same torch
  call on the integer tensors.
- quantized activations (`Hardswish`, `ReLU6`, `ELU`, `LeakyReLU`, `Sigmoid`, `Softmax`) and
  `Dropout`: their float functional on the integer tensor (Dropout: the input).

Float layers that run on quantized tensors in the real model (max and average pooling,
`Hardsigmoid`, `flatten`, `mean`) receive the integer meta tensors; where torch's meta kernel
refuses an integer dtype (mean, average pooling), the recorder computes the shape in float32 and
gives the output the input's integer dtype (`integer_fallback`), as the quantized kernel does.
The scale and zero point are read by no formula: rescaling is part of each kernel's epilogue.
"""
from __future__ import annotations

import contextlib
import types
import weakref
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..ops.shape_rules import INT_OF

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_TRANSPOSED = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_ACTIVATIONS = {"Hardswish": F.hardswish, "ReLU6": F.relu6, "ELU": F.elu,
                "LeakyReLU": F.leaky_relu, "Sigmoid": torch.sigmoid}
_FUNCTIONAL = {
    "add": lambda x, y: torch.add(x, y),
    "add_relu": lambda x, y: F.relu(torch.add(x, y)),
    "add_scalar": lambda x, y: torch.add(x, y),
    "mul": lambda x, y: torch.mul(x, y),
    "mul_scalar": lambda x, y: torch.mul(x, y),
    "cat": lambda x, dim=0: torch.cat(x, dim=dim),
    "matmul": lambda x, y: torch.matmul(x, y),
}


def int_dtype(dtype: torch.dtype) -> torch.dtype:
    """The integer dtype a quantized dtype is stored as (quint8 -> uint8)."""
    return INT_OF.get(dtype, dtype)


def is_static(mod: nn.Module) -> bool:
    """A statically quantized module (not a dynamically quantized one, which meta.py handles);
    kept per class (the clone asks it of every module)."""
    kind = type(mod)
    try:
        found = _STATIC.get(kind)
    except TypeError:   # a class whose metaclass makes it unhashable
        found = None
    if found is None:
        module = kind.__module__
        found = module.startswith(("torch.ao.nn.quantized.modules",
                                   "torch.ao.nn.intrinsic.quantized.modules")) and \
            not module.startswith("torch.ao.nn.quantized.dynamic")
        with contextlib.suppress(TypeError):
            _STATIC[kind] = found
    return found


_STATIC: dict[type, bool] = {}


def packed(mod: nn.Module) -> tuple[Tensor, Tensor | None, int] | None:
    """A statically quantized conv's weight and bias as meta tensors (the weight in its integer
    dtype: int8 for qint8) and the key of its packed parameters (`parameters()` does not see
    them), or None. Unpacking costs about a millisecond per conv, so it is kept per packed
    object (a capture reads it twice: the clone and the parameter count)."""
    params = mod.__dict__.get("_packed_params")
    if params is None or isinstance(params, nn.Module) or not callable(
            getattr(mod, "_weight_bias", None)) or not callable(getattr(mod, "weight", None)):
        return None
    kept = _UNPACKED.get(id(params))
    if kept is None or kept[0]() is not params:
        if len(_UNPACKED) > 4096:
            _UNPACKED.clear()
        weight, bias = mod._weight_bias()
        kept = _UNPACKED[id(params)] = (weakref.ref(params), _meta(weight), _meta(bias))
    return kept[1], kept[2], id(params)


#: id(packed parameters) -> (a weak reference to them, their weight and bias as meta tensors):
#: the user's weights are never kept alive by costmodel (packed objects define no `==`, so no
#: WeakKeyDictionary)
_UNPACKED: dict[int, tuple[Any, Tensor, Tensor | None]] = {}


def _meta(t: Tensor | None) -> Tensor | None:
    if t is None:
        return None
    return torch.empty_strided(tuple(t.shape), t.stride(), dtype=int_dtype(t.dtype),
                               device="meta")


def _conv(mod: nn.Module, weights: tuple[Tensor, Tensor | None], x: Tensor,
          extra: Tensor | None = None) -> Tensor:
    weight, bias = weights
    padding = mod.padding
    if mod.padding_mode != "zeros":
        x = F.pad(x, mod._reversed_padding_repeated_twice, mode=mod.padding_mode)
        padding = 0
    if mod.transposed:
        out = _TRANSPOSED[weight.ndim - 2](x, weight, bias, mod.stride, padding,
                                           mod.output_padding, mod.groups, mod.dilation)
    else:
        out = _CONV[weight.ndim - 2](x, weight, bias, mod.stride, padding, mod.dilation,
                                     mod.groups)
    name = type(mod).__name__
    if name.startswith("ConvAdd"):
        out = torch.add(out, extra)
    return F.relu(out) if "ReLU" in name else out


def _linear(mod: nn.Module, weights: tuple[Tensor, Tensor | None], x: Tensor) -> Tensor:
    out = F.linear(x, weights[0], weights[1])
    return F.relu(out) if type(mod).__name__ == "LinearReLU" else out


def forward(mod: nn.Module, clone: nn.Module, twins: dict[str, Any]) -> Any:
    """The forward the meta clone of the statically quantized `mod` runs (see the module
    docstring), or None where the module's own forward runs. `twins`: the meta twins of its
    packed weight and bias ('weight', 'bias'), where it has packed weights."""
    name = type(mod).__name__
    if name == "Quantize":
        return lambda x: torch.quantize_per_tensor(x, mod.scale, mod.zero_point, mod.dtype)
    if name == "DeQuantize":
        return lambda x: x.dequantize()
    if name in ("QFunctional", "FloatFunctional", "FXFloatFunctional"):
        for method, fn in _FUNCTIONAL.items():
            clone.__dict__[method] = fn
        return None
    if name == "Dropout":
        return lambda x: x
    if name in _ACTIVATIONS:
        return _ACTIVATIONS[name]
    if name == "Softmax":
        return lambda x: torch.softmax(x, mod.dim)
    weights = (twins.get("weight"), twins.get("bias"))
    if weights[0] is None:
        return None
    if hasattr(mod, "groups") and hasattr(mod, "transposed"):
        return types.MethodType(lambda self, *a: _conv(mod, weights, *a), clone)
    if "Linear" in name:
        return types.MethodType(lambda self, x: _linear(mod, weights, x), clone)
    return None


def integer_fallback(func: Any, args: tuple, kwargs: dict) -> Any:
    """`func` on integer (quantized) meta tensors whose meta kernel refuses integers (mean,
    average pooling, a conv with a float bias): its shapes computed in float32, its tensor
    outputs in the dtype of the first integer input, or None where no integer meta tensor is
    among the arguments."""
    dtype = None

    def floated(value: Any) -> Any:
        nonlocal dtype
        if isinstance(value, Tensor):
            if value.is_meta and not (value.is_floating_point() or value.is_complex()) and \
                    value.dtype != torch.bool and value.element_size() == 1:
                dtype = dtype or value.dtype
                return value.to(torch.float32)
            return value
        if isinstance(value, (list, tuple)):
            return type(value)(floated(v) for v in value)
        if isinstance(value, dict):
            return {k: floated(v) for k, v in value.items()}
        return value
    with torch._C.DisableTorchFunction():
        args, kwargs = floated(args), floated(kwargs)
        if dtype is None:
            return None
        out = func(*args, **kwargs)
        return _as(out, dtype)


def _as(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return type(value)(_as(v, dtype) for v in value)
    return value
