"""The recorder: a TorchFunctionMode that records every torch call a capture makes.

Nothing real executes. Each graph node runs on meta tensors (meta.py) under `_Recorder`, which
records the torch-level calls it makes (F.conv2d, Tensor.add, ...) as `OpCall`s, using the
bindings in `ops`. `Recording` holds the spec cache (one TensorSpec per tensor) and turns a call
into a `Recorded`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..core.calls import OpCall, Recorded
from ..core.tensors import ITEMSIZE, TensorSpec
from ..ops import META, Binding, lookup
from .meta import IS_TENSOR, MetaModel, Weight, is_tensor  # noqa: F401 - Weight: a spec's role
from .quantized import integer_fallback

_DTYPES = {getattr(torch, name): name for name in ITEMSIZE if hasattr(torch, name)}
_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction


def callable_name(func: Any) -> str:
    """The name costmodel prints for a torch callable: 'F.conv2d', 'Tensor.add', 'torch.cat'."""
    return lookup(func).name


class _Recorder(TorchFunctionMode):
    def __init__(self, recording: Recording) -> None:
        super().__init__()
        self.recording = recording
        self.calls: list[Recorded] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        binding = lookup(func)
        if args and binding.mutates:
            self.recording.forget(args[0])
        rule = binding.rule
        if rule is None:
            out = func(*args, **kwargs)
            if _new_tensors(out, args, kwargs):
                self.calls.append(
                    self.recording.record(binding, dict(enumerate(args), **kwargs), out))
            return out
        if rule.create and kwargs.get("device") != META:
            kwargs = {**kwargs, "device": META}
        bound = rule.bind(args, kwargs)
        if rule.op == "quantize":   # quantized tensors from here on (capture/quantized.py)
            self.recording.meta.quantized = True
        out = rule.shape(bound) if rule.shape is not None else None
        if out is None:
            try:
                out = func(*args, **kwargs)
            except RuntimeError:   # an integer (quantized) tensor a meta kernel refuses
                out = integer_fallback(func, args, kwargs) if self.recording.meta.quantized \
                    else None
                if out is None:
                    raise
        recorded = out if rule.result is None else rule.result(bound, out)
        if _has_tensor(recorded):
            self.calls.append(self.recording.record(binding, bound, recorded))
        return out


#: containers `_tensors` looks into; anything else (numbers, strings, None, dtypes, ...) is a leaf
_PLAIN = (list, tuple, dict)
#: the leaves torch calls take most (sizes, flags, dims, dtypes): skipped at once
_LEAVES = frozenset({int, float, bool, complex, str, type(None), slice, type(...), torch.dtype,
                     torch.device, torch.memory_format, torch.layout})


def _has_tensor(value: Any) -> bool:
    if is_tensor(value):
        return True
    if isinstance(value, (list, tuple)):
        return any(is_tensor(v) for v in value)
    return False


def _any_tensor(values: list | tuple) -> bool:
    """any(is_tensor(v) for v in values), skipping the common leaves (sizes, flags) at once."""
    leaves = _LEAVES
    try:
        for v in values:
            if type(v) not in leaves and is_tensor(v):
                return True
        return False
    except TypeError:   # a type whose metaclass makes it unhashable
        return any(is_tensor(v) for v in values)


def _tensors(value: Any) -> list[Tensor]:
    """Every tensor in `value` (nested lists, tuples and dict values), in order."""
    if type(value) is Tensor:   # most outputs: one plain tensor
        return [value]
    try:
        return _tensors_in(value)
    except TypeError:   # an unhashable type met in the memo: ask isinstance for everything
        return _tensors_slow(value)


def _tensors_slow(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        value = value.values()
    elif hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif not isinstance(value, (list, tuple)):
        return []
    found = []
    for v in value:
        if isinstance(v, Tensor):
            found.append(v)
        elif isinstance(v, _PLAIN) or hasattr(type(v), "__dataclass_fields__"):
            found += _tensors_slow(v)
    return found


def _tensors_in(value: Any) -> list[Tensor]:
    memo = IS_TENSOR
    kind = type(value)
    tensor = memo.get(kind)
    if tensor is None:
        tensor = is_tensor(value)
    if tensor:
        return [value]
    if kind is dict:
        value = value.values()
    elif kind is not list and kind is not tuple:
        if isinstance(value, dict):
            value = value.values()
        elif hasattr(kind, "__dataclass_fields__") and not isinstance(value, type):
            value = [getattr(value, f.name) for f in dataclasses.fields(value)]   # a dataclass
        elif not isinstance(value, (list, tuple)):
            return []
    found = []
    leaves = _LEAVES
    for v in value:
        kind = type(v)
        if kind in leaves:
            continue
        tensor = memo.get(kind)
        if tensor is None:
            tensor = is_tensor(v)
        if tensor:
            found.append(v)
        elif kind is tuple or kind is list or kind is dict:
            if v:
                found += _tensors_in(v)
        elif isinstance(v, _PLAIN) or hasattr(kind, "__dataclass_fields__"):
            found += _tensors_in(v)
    return found


def _new_tensors(out: Any, args: tuple, kwargs: dict) -> bool:
    outs = _tensors(out)
    if not outs:
        return False
    known = {id(t) for t in _tensors(args)}
    if kwargs:
        known.update(id(t) for t in _tensors(kwargs))
    return any(id(t) not in known for t in outs)


class Recording:
    """The spec cache and the call records of one capture, over the meta twins of `model`."""

    def __init__(self, model: nn.Module, *, training: bool = False,
                 float_dtype: str | None = None) -> None:
        self.meta = MetaModel(model, training=training)
        self.weights = self.meta.weights            # id(meta twin) -> Weight
        self.values = self.meta.values              # id(meta) -> (meta, real value): eager.py
        self.float_dtype = float_dtype
        self._dtype_cache: dict[torch.dtype, tuple[str, int]] = {}
        self._specs: dict[int, tuple[Tensor, TensorSpec]] = {}   # id -> (tensor, its spec)

    # ---- specs and records ------------------------------------------------------------------
    def spec(self, t: Tensor) -> TensorSpec:
        """The TensorSpec of `t`, cached per tensor: a spec is read once when the tensor is made
        and again by every op that reads it. The cache holds the tensor, so ids stay unique;
        `forget` drops a tensor whose metadata an in-place op (`unsqueeze_`, `resize_`) changes."""
        entry = self._specs.get(id(t))
        if entry is not None:
            return entry[1]
        with _NO_TORCH_FUNCTION():   # metadata reads would else go through the recorder
            dtype = t.dtype
            info = self._dtype_cache.get(dtype)
            if info is None:
                name = _DTYPES.get(dtype, str(dtype).removeprefix("torch."))
                if self.float_dtype is not None and dtype.is_floating_point:
                    name = self.float_dtype
                info = self._dtype_cache[dtype] = (name, ITEMSIZE.get(name, t.element_size()))
            shape = tuple(t.shape)
            stride = t.stride()
        stored = -1
        if 0 in stride:
            stored = 1
            for size, st in zip(shape, stride):
                if st != 0:
                    stored *= size
        weight = self.weights.get(id(t))
        role = weight.role if weight is not None else "activation"
        result = TensorSpec(shape, info[0], info[1], stored, role)
        self._specs[id(t)] = (t, result)
        return result

    def forget(self, t: Any) -> None:
        self._specs.pop(id(t), None)

    def record(self, binding: Binding, bound: dict, out: Any) -> Recorded:
        rule = binding.rule
        tensors: dict[str, Any] = {}
        attrs: dict[str, Any] = {}
        params: list[tuple[int, int]] = []
        spec = self.spec
        weights = self.weights
        memo = IS_TENSOR
        leaves = _LEAVES
        for key, value in bound.items():
            if type(key) is not str:
                key = str(key)
            kind = type(value)
            if kind in leaves:   # a number, flag or dtype: most attributes
                attrs[key] = value
                continue
            tensor = memo.get(kind)
            if tensor is None:
                tensor = is_tensor(value)
            if tensor:
                tensors[key] = spec(value)
                weight = weights.get(id(value))
                if weight is not None and weight.role == "param":
                    params.append((weight.key, weight.numel))
            elif (kind is tuple or kind is list or isinstance(value, (list, tuple))) and \
                    _any_tensor(value):
                tensors[key] = tuple(spec(v) for v in value if is_tensor(v))
                for v in value:
                    if is_tensor(v):
                        self._param(v, params)
            else:
                attrs[key] = value
        if rule is not None and rule.extra is not None:
            attrs.update(rule.extra(bound, out))
        outputs = (spec(out),) if is_tensor(out) else tuple(spec(t) for t in _tensors(out))
        name = binding.name
        op = rule.op if rule is not None else name
        if op == "copy" and attrs.get("is_view"):
            op = "view"
        return Recorded(OpCall(op, tensors, outputs, attrs, binding.flags), name, rule is not None,
                        tuple(params))

    def _param(self, t: Tensor, params: list) -> None:
        weight = self.weights.get(id(t))
        if weight is not None and weight.role == "param":
            params.append((weight.key, weight.numel))
