"""Meta twins of the user's model: parameters, buffers and constant tensors as meta tensors,
modules as clones, and attribute reads (fx's get_attr). The user's model is only read.

Modules run as throw-away meta clones: a shallow copy whose parameters and buffers are meta
tensors. Memory is a few kilobytes of metadata whatever the batch size.

Hooks: the forward hooks and forward pre-hooks the model carries are part of what its forward
does (transformers 5 collects `hidden_states`, `attentions` and a backbone's `feature_maps` with
forward hooks), so each clone runs its module's hooks, on meta tensors, as the model would. A hook
that is a method of one of the model's modules runs on that module's clone, so it writes nothing
onto the user's model. A hook that fails on meta tensors (one that reads values, say) is skipped
and reported (CM011); backward hooks never run (nothing runs backward).
"""
from __future__ import annotations

import copy
import types
from collections import OrderedDict
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..ops import META
from . import quantized
from .routing import expert_count, is_moe_block

_RUN_HOOKS = ("_forward_hooks", "_forward_pre_hooks")      # run by the clone, wrapped
_HOOK_FLAGS = ("_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks_with_kwargs")            # hook id -> flag: copied as they are
_NO_HOOKS = ("_backward_hooks", "_backward_pre_hooks")      # never run: nothing runs backward

#: The most elements a tensor of known value may have (a real CPU copy is kept and computed).
VALUE_CAP = 1 << 16



#: type -> whether its instances are tensors: `isinstance(v, Tensor)` is slow when it is false
#: (Tensor's metaclass), and the capture asks it about every argument of every call
IS_TENSOR: dict[type, bool] = {}
#: the types IS_TENSOR holds False for (a module's attributes are checked against it at once)
NOT_TENSOR: set[type] = set()


def is_tensor(value: Any) -> bool:
    """isinstance(value, Tensor), answered from a per-type memo (exact: it depends on the type)."""
    kind = type(value)
    try:
        found = IS_TENSOR.get(kind)
    except TypeError:   # a type whose metaclass makes it unhashable
        return isinstance(value, Tensor)
    if found is None:
        found = IS_TENSOR[kind] = isinstance(value, Tensor)
        if not found:
            NOT_TENSOR.add(kind)
    return found


def _tensor_attrs(attrs: dict[str, Any]) -> list[str]:
    """The keys of the tensors among a module's attributes (a type known not to be a tensor is
    skipped without a call: this runs on every attribute of every module of the model)."""
    memo = IS_TENSOR
    try:
        if set(map(type, attrs.values())) <= NOT_TENSOR:   # a few distinct types, never tensors
            return []
        return [k for k, v in attrs.items() if memo.get(type(v)) is not False and is_tensor(v)]
    except TypeError:   # a type whose metaclass makes it unhashable
        return [k for k, v in attrs.items() if isinstance(v, Tensor)]


class Weight(NamedTuple):
    """A parameter, buffer or constant tensor of the user's model, seen through its meta twin
    (a NamedTuple: one is made per parameter on every analysis, twice as fast as a frozen
    dataclass)."""

    name: str
    role: str            # "param", "buffer" or "const"
    key: int             # id() of the user's tensor: equal keys are the same (tied) tensor
    numel: int
    requires_grad: bool


_new_weight = tuple.__new__
_empty_strided = torch.empty_strided


def _known_constant(t: Tensor) -> bool:
    """A buffer or constant whose value the capture keeps: real, small, and an integer, a flag
    or a single number (float arrays are data: positional tables, running statistics)."""
    if t.is_meta or t.is_quantized or t.numel() > VALUE_CAP:
        return False
    return t.numel() == 1 or not (t.is_floating_point() or t.is_complex())


def packed_weights(mod: nn.Module) -> tuple[tuple[Tensor | None, str, int], ...] | None:
    """The weights a dynamically quantized Linear (`torch.ao.quantization.quantize_dynamic`)
    keeps packed, where `parameters()` does not see them: (tensor, name, key) for its weight (the
    int8 values of a qint8 weight) and bias. The keys are fixed by the packed object, so the
    capture and the parameter count agree: id(packed) for the weight, id(packed) + 1 for the bias
    (an id is an address, so no other object has it)."""
    packed = mod._modules.get("_packed_params")   # a plain dict read: most modules have none,
    if packed is None and "_packed_params" not in mod.__dict__:
        return None
    unpack = getattr(packed, "_weight_bias", None)  # and a missed getattr on a module raises
    if unpack is None and "_packed_params" in mod.__dict__:   # a statically quantized conv
        conv = quantized.packed(mod)
        if conv is not None:
            weight, bias, key = conv
            return (weight, "weight", key), (bias, "bias", key + 1)
    if unpack is None or not callable(getattr(mod, "weight", None)):
        return None
    weight, bias = unpack()
    if weight.is_quantized:
        weight = weight.int_repr()
    elif getattr(packed, "dtype", None) == torch.float16:   # stored as float16
        weight = weight.to(torch.float16)
    return (weight, "weight", id(packed)), (bias, "bias", id(packed) + 1)


def _quantized_linear(weights: tuple[Tensor, Tensor | None], x: Tensor) -> Tensor:
    """A dynamically quantized Linear's forward as it runs (quantize x to 8 bits, an 8-bit
    linear, dequantize to x's dtype, add the bias), each step costed with its own bytes."""
    weight, bias = weights
    if weight.dtype == x.dtype:   # float16 dynamic quantization: a plain linear
        return F.linear(x, weight, bias)
    out = F.linear(x.to(weight.dtype), weight).to(x.dtype)
    return out if bias is None else out + bias


def _note(attrs: dict[str, Any], prefix: str, hooked: list[str], backward: list[str]) -> None:
    """Add a module's name (from its `__dict__`) to `hooked` if it has forward hooks or
    pre-hooks, and to `backward` if it has backward hooks."""
    if attrs.get("_forward_hooks") or attrs.get("_forward_pre_hooks"):
        hooked.append(prefix or "(root)")
    if attrs.get("_backward_hooks") or attrs.get("_backward_pre_hooks"):
        backward.append(prefix or "(root)")


class MetaModel:
    """The meta twins and clones of one model, made on first use and kept for the capture."""

    def __init__(self, model: nn.Module, *, training: bool = False) -> None:
        self.model = model
        self.training = training
        self.weights: dict[int, Weight] = {}       # id(meta twin) -> Weight
        self._twins: dict[int, Tensor] = {}         # id(user tensor) -> meta twin
        self._clones: dict[str, nn.Module] = {}
        self.constants: dict[str, Any] = {}          # tensor constants fx stowed while tracing
        self.hooks_ran: set[str] = set()             # modules whose forward hooks ran
        self.hooks_failed: dict[str, str] = {}       # module -> why a hook of it was skipped
        self._clone_of: dict[int, nn.Module] = {}    # id(user module) -> its clone
        self.values: dict[int, tuple[Tensor, Tensor]] = {}   # id(meta) -> (meta, real CPU value)
        #: (qualified name, user module) of every module cloned so far, each once, in the order
        #: of `model.named_modules()` once the root is cloned (the analyses that walk the model
        #: read it instead of walking it again)
        self.walk: list[tuple[str, nn.Module]] = []
        self._walked: set[int] = set()
        #: qualified names of routing.py's MoE blocks (a child named `experts` or `router`),
        #: every path of the root's clone
        self.moe: set[str] = set()
        self.moe_experts: dict[str, int] = {}     # MoE block -> its expert count, where known
        self.quantized = False   # a statically quantized module was cloned (quantized.py)
        #: what analyze() reports of the walked modules, noted while cloning them (one walk):
        #: names with forward hooks, names with backward hooks, and id(parameter) -> (module,
        #: name, numel) of each parameter (tied ones once, packed ones too: `packed_weights`)
        self._hooked: list[str] = []
        self._backward_hooked: list[str] = []
        self._params: dict[int, tuple[str, str, int]] = {}
        #: called with each clone and its qualified name once the clone is made (the eager
        #: capture wraps its forward there, in the same walk)
        self.visit: Callable[[nn.Module, str], None] | None = None

    def twin(self, t: Tensor, name: str, role: str, key: int | None = None) -> Tensor:
        if key is None:
            key = id(t)
        meta = self._twins.get(key)
        if meta is None:
            meta = _empty_strided(t.shape, t.stride(), dtype=t.dtype, device=META)
            self._twins[key] = meta
            # Weight(...) without the NamedTuple's own __new__ (one per parameter and buffer)
            self.weights[id(meta)] = _new_weight(Weight, (name, role, key, t.numel(),
                                                          bool(t.requires_grad)))
            if role != "param" and _known_constant(t):   # a real copy (on the CPU)
                if t.is_cpu:   # a buffer needs no detach (num_batches_tracked: one per BN)
                    copy = t.detach().clone() if t.requires_grad else t.clone()
                else:
                    copy = t.detach().to("cpu", copy=True)
                self.values[id(meta)] = (meta, copy)
        return meta

    def clone(self, qualname: str) -> nn.Module:
        module = self._clones.get(qualname)
        if module is None:
            module = self._clones[qualname] = self._meta_clone(
                self.model.get_submodule(qualname), qualname)
        return module

    def _meta_clone(self, mod: nn.Module, prefix: str) -> nn.Module:
        # runs once per module of the model on every analysis: kept to one pass over each dict
        clone = object.__new__(type(mod))
        source = mod.__dict__
        state = dict(source)
        dot = f"{prefix}." if prefix else ""
        twin = self.twin
        first = id(mod) not in self._walked
        if first:   # the model's modules as named_modules() gives them
            self._walked.add(id(mod))
            self.walk.append((prefix, mod))
            _note(source, prefix, self._hooked, self._backward_hooked)
        params = mod._parameters
        if params:
            state["_parameters"] = twins = {}
            seen = self._params
            for k, v in params.items():
                if v is None:
                    twins[k] = None
                    continue
                twins[k] = twin(v, dot + k, "param")
                if first and id(v) not in seen:
                    seen[id(v)] = (prefix, k, v.numel())
        else:
            state["_parameters"] = {}
        buffers = mod._buffers
        if buffers:
            state["_buffers"] = twins = {}
            for k, v in buffers.items():
                twins[k] = None if v is None else twin(v, dot + k, "buffer")
        else:
            state["_buffers"] = {}
        children = mod._modules
        if children and is_moe_block(children):
            self.moe.add(prefix)
            n = expert_count(children)
            if n:
                self.moe_experts[prefix] = n
        if children:
            state["_modules"] = clones = {}
            for k, v in children.items():
                clones[k] = None if v is None else self._meta_clone(v, dot + k)
        else:
            state["_modules"] = {}
        self._clone_of[id(mod)] = clone
        for name in _RUN_HOOKS:    # the clone's own hook dicts, never the user's
            hooks = source.get(name)
            if hooks:
                state[name] = OrderedDict((key, self._hook(hook, prefix))
                                          for key, hook in hooks.items())
            elif hooks is not None:
                state[name] = OrderedDict()
        for name in _HOOK_FLAGS:
            flags = source.get(name)
            if flags is not None:
                state[name] = OrderedDict(flags) if flags else OrderedDict()
        for name in _NO_HOOKS:
            if name in source:
                state[name] = OrderedDict()
        for k in _tensor_attrs(source):
            state[k] = twin(source[k], dot + k, "const")
        packed = packed_weights(mod)
        weights: tuple = (None, None)
        if packed is not None:   # a dynamically quantized Linear: F.linear on its int8 weight
            if first:
                for t, name, key in packed:
                    if t is not None:
                        self._params[key] = (prefix, name, t.numel())
            weights = tuple(None if t is None else twin(t, dot + name, "param", key)
                            for t, name, key in packed)
            state["forward"] = types.MethodType(_quantized_linear, weights)
        if quantized.is_static(mod):   # statically quantized: quantized.py's meta forward
            self.quantized = True
            forward = quantized.forward(mod, clone, dict(zip(("weight", "bias"), weights)))
            if forward is not None:
                state["forward"] = forward
        state["training"] = self.training
        object.__setattr__(clone, "__dict__", state)   # a new object: nothing else holds it
        if self.visit is not None:
            self.visit(clone, prefix)
        return clone

    def modules(self) -> list[tuple[str, nn.Module]]:
        """`list(model.named_modules())`, from the walk of the root's clone when it was made."""
        return self.walk if "" in self._clones else list(self.model.named_modules())

    def inventory(self) -> tuple[list[str], list[str], dict[int, tuple[str, str, int]]]:
        """Over `modules()`: the names of those with forward hooks (or pre-hooks) and of those
        with backward hooks ("(root)" for the model), and id(parameter) -> (module, name, numel)
        of each parameter of the model, tied ones once, with the packed weights of a dynamically
        quantized Linear (`packed_weights`). Noted while cloning the root, else walked now."""
        if "" in self._clones:
            return self._hooked, self._backward_hooked, self._params
        hooked: list[str] = []
        backward: list[str] = []
        params: dict[int, tuple[str, str, int]] = {}
        for prefix, module in self.modules():
            _note(module.__dict__, prefix, hooked, backward)
            for key, p in module._parameters.items():
                if p is not None and id(p) not in params:
                    params[id(p)] = (prefix, key, p.numel())
            for t, key, ident in packed_weights(module) or ():
                if t is not None:
                    params[ident] = (prefix, key, t.numel())
        return hooked, backward, params

    def _hook(self, hook: Any, qualname: str) -> Any:
        """`hook` as the clone runs it: a method of one of the model's modules is called on that
        module's clone; a hook that raises on meta tensors is skipped and remembered."""
        where = qualname or "(root)"

        def run(*args: Any, **kwargs: Any) -> Any:
            fn = hook
            owner = getattr(hook, "__self__", None)
            if isinstance(hook, types.MethodType) and isinstance(owner, nn.Module):
                clone = self._clone_of.get(id(owner))
                if clone is not None:
                    fn = types.MethodType(hook.__func__, clone)
            try:
                out = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a hook that needs real data: skip it
                text = str(exc).strip().splitlines()
                self.hooks_failed.setdefault(
                    where, f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))
                return None
            self.hooks_ran.add(where)
            return out
        return run

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
