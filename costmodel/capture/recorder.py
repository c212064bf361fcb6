"""Shapes: run the traced graph on meta tensors and record every torch op each node calls.

Nothing real executes. Each graph node runs on meta tensors under a TorchFunctionMode that
records the torch-level calls it makes (F.conv2d, Tensor.add, ...) as `OpCall`s, using the
bindings in `ops`. Leaf modules run as throw-away meta clones: a shallow copy whose parameters and
buffers are meta tensors, with no hooks, so the user's module is only ever read. Memory is a few
kilobytes of metadata whatever the batch size or resolution.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, fx, nn
from torch.overrides import TorchFunctionMode

from ..errors import ShapeError
from ..core.calls import OpCall, Recorded
from ..ops import META, Binding, lookup
from ..core.tensors import ITEMSIZE, TensorSpec

_DTYPES = {getattr(torch, name): name for name in ITEMSIZE if hasattr(torch, name)}
_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks_with_kwargs")


@dataclass(frozen=True, slots=True)
class Weight:
    """A parameter, buffer or constant tensor of the user's model, seen through its meta twin."""

    name: str
    role: str            # "param", "buffer" or "const"
    key: int             # id() of the user's tensor: equal keys are the same (tied) tensor
    numel: int
    requires_grad: bool


@dataclass(slots=True)
class NodeRecord:
    calls: list[Recorded] = field(default_factory=list)
    outputs: tuple[TensorSpec, ...] = ()
    unrecorded: bool = False                # made new tensors through no visible torch op


def callable_name(func: Any) -> str:
    """The name costmodel prints for a torch callable: 'F.conv2d', 'Tensor.add', 'torch.cat'."""
    return lookup(func).name


class _Recorder(TorchFunctionMode):
    def __init__(self, interp: Interpreter) -> None:
        super().__init__()
        self.interp = interp
        self.calls: list[Recorded] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        binding = lookup(func)
        if args and binding.mutates:
            self.interp.forget(args[0])
        rule = binding.rule
        if rule is None:
            out = func(*args, **kwargs)
            if _new_tensors(out, args, kwargs):
                self.calls.append(self.interp.record(binding, dict(enumerate(args), **kwargs), out))
            return out
        if rule.create and kwargs.get("device") != META:
            kwargs = {**kwargs, "device": META}
        bound = rule.bind(args, kwargs)
        out = rule.shape(bound) if rule.shape is not None else None
        if out is None:
            out = func(*args, **kwargs)
        recorded = out if rule.result is None else rule.result(bound, out)
        if _has_tensor(recorded):
            self.calls.append(self.interp.record(binding, bound, recorded))
        return out


def _has_tensor(value: Any) -> bool:
    if isinstance(value, Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, Tensor) for v in value)
    return False


def _tensors(value: Any) -> list[Tensor]:
    """Every tensor in `value` (nested lists, tuples and dict values), in order."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, (list, tuple)):
        return []
    found = []
    for v in value:
        if isinstance(v, Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple, dict)):
            found += _tensors(v)
    return found


def _new_tensors(out: Any, args: tuple, kwargs: dict) -> bool:
    outs = _tensors(out)
    if not outs:
        return False
    known = {id(t) for t in _tensors(args)}
    if kwargs:
        known.update(id(t) for t in _tensors(kwargs))
    return any(id(t) not in known for t in outs)


class Interpreter:
    """Runs an fx graph of `model` on meta tensors, one NodeRecord per node."""

    def __init__(self, model: nn.Module, *, training: bool = False,
                 float_dtype: str | None = None) -> None:
        self.model = model
        self.training = training
        self.float_dtype = float_dtype
        self.weights: dict[int, Weight] = {}       # id(meta twin) -> Weight
        self._twins: dict[int, Tensor] = {}         # id(user tensor) -> meta twin
        self._clones: dict[str, nn.Module] = {}
        self._recorder = _Recorder(self)
        self._dtype_cache: dict[torch.dtype, tuple[str, int]] = {}
        self._specs: dict[int, tuple[Tensor, TensorSpec]] = {}   # id -> (tensor, its spec)
        self.constants: dict[str, Any] = {}          # tensor constants fx stowed while tracing

    # ---- meta twins of the user's tensors and modules ---------------------------------------
    def twin(self, t: Tensor, name: str, role: str) -> Tensor:
        meta = self._twins.get(id(t))
        if meta is None:
            meta = torch.empty_strided(tuple(t.shape), t.stride(), dtype=t.dtype, device=META)
            self._twins[id(t)] = meta
            self.weights[id(meta)] = Weight(name, role, id(t), t.numel(), bool(t.requires_grad))
        return meta

    def clone(self, qualname: str) -> nn.Module:
        module = self._clones.get(qualname)
        if module is None:
            module = self._clones[qualname] = self._meta_clone(
                self.model.get_submodule(qualname), qualname)
        return module

    def _meta_clone(self, mod: nn.Module, prefix: str) -> nn.Module:
        clone = object.__new__(type(mod))
        state = dict(mod.__dict__)
        dot = f"{prefix}." if prefix else ""
        twin = self.twin
        state["_parameters"] = {k: None if v is None else twin(v, dot + k, "param")
                                for k, v in mod._parameters.items()}
        state["_buffers"] = {k: None if v is None else twin(v, dot + k, "buffer")
                             for k, v in mod._buffers.items()}
        state["_modules"] = {k: None if v is None else self._meta_clone(v, dot + k)
                             for k, v in mod._modules.items()}
        for name in _HOOK_DICTS:   # the clone's own (empty) hook dicts, never the user's
            if name in state:
                state[name] = OrderedDict()
        for k, v in mod.__dict__.items():
            if isinstance(v, Tensor):
                state[k] = twin(v, dot + k, "const")
        state["training"] = self.training
        clone.__dict__.update(state)
        return clone

    def attr(self, target: str) -> Any:
        if target in self.constants:   # a tensor constant torch.fx stowed while tracing
            return self.twin(self.constants[target], target, "const")
        owner: Any = self.model
        *path, last = target.split(".")
        for part in path:
            owner = getattr(owner, part)
        value = getattr(owner, last)
        if isinstance(value, Tensor):
            role = "param" if isinstance(value, nn.Parameter) else (
                "buffer" if last in getattr(owner, "_buffers", {}) else "const")
            return self.twin(value, target, role)
        if isinstance(value, nn.Module):
            return self.clone(target)
        return copy.copy(value)

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
        for key, value in bound.items():
            if type(key) is not str:
                key = str(key)
            if isinstance(value, Tensor):
                tensors[key] = spec(value)
                self._param(value, params)
            elif isinstance(value, (list, tuple)) and any(isinstance(v, Tensor) for v in value):
                tensors[key] = tuple(spec(v) for v in value if isinstance(v, Tensor))
                for v in value:
                    if isinstance(v, Tensor):
                        self._param(v, params)
            else:
                attrs[key] = value
        if rule is not None and rule.extra is not None:
            attrs.update(rule.extra(bound, out))
        outputs = (spec(out),) if isinstance(out, Tensor) else tuple(spec(t) for t in _tensors(out))
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

    # ---- the graph walk ---------------------------------------------------------------------
    def run(self, graph: fx.Graph, inputs: dict[str, Any],
            module_of: dict[fx.Node, str]) -> dict[fx.Node, NodeRecord]:
        env: dict[fx.Node, Any] = {}
        records: dict[fx.Node, NodeRecord] = {}
        recorder = self._recorder
        self.constants = getattr(graph, "constants", {})
        for node in graph.nodes:
            op = node.op
            if op == "placeholder":
                name = node.target.lstrip("*")
                if name in inputs:
                    env[node] = inputs[name]
                elif node.args:
                    env[node] = node.args[0]
                else:
                    raise ShapeError(f"no input given for forward argument '{name}'")
                records[node] = NodeRecord(outputs=tuple(self.spec(t) for t in _tensors(env[node])))
                continue
            if op == "get_attr":
                env[node] = self.attr(node.target)
                records[node] = NodeRecord()
                continue
            if op == "output":
                env[node] = fx.node.map_arg(node.args[0], env.__getitem__)
                records[node] = NodeRecord()
                continue
            args = fx.node.map_arg(node.args, env.__getitem__)
            kwargs = fx.node.map_arg(node.kwargs, env.__getitem__)
            if op == "call_module":
                fn = self.clone(node.target).forward
            elif op == "call_function":
                fn = node.target
            else:
                fn = getattr(args[0], node.target)
                args = args[1:]
            recorder.calls = []
            try:
                with recorder:
                    value = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - becomes one clear message
                shapes = ", ".join("x".join(map(str, t.shape)) or "scalar"
                                   for t in _tensors((args, kwargs))) or "no tensors"
                where = module_of.get(node) or "(top level)"
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ShapeError(
                    f"shape propagation failed at node '{node.name}' ({_describe(node)}) in module "
                    f"'{where}' with input shapes [{shapes}]: {type(exc).__name__}: {first}"
                ) from exc
            env[node] = value
            outs = _tensors(value)
            record = NodeRecord(recorder.calls, tuple(self.spec(t) for t in outs))
            if not recorder.calls and outs and _new_tensors(value, args, kwargs):
                record.unrecorded = True
            records[node] = record
        return records


def _describe(node: fx.Node) -> str:
    if node.op == "call_module":
        return f"call_module {node.target}"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    return callable_name(node.target)
