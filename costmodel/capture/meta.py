"""Meta twins of the user's model: parameters, buffers and constant tensors as meta tensors,
modules as hook-free clones, and attribute reads (fx's get_attr). The user's model is only read.

Leaf modules run as throw-away meta clones: a shallow copy whose parameters and buffers are meta
tensors, with no hooks. Memory is a few kilobytes of metadata whatever the batch size.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..ops import META

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


class MetaModel:
    """The meta twins and clones of one model, made on first use and kept for the capture."""

    def __init__(self, model: nn.Module, *, training: bool = False) -> None:
        self.model = model
        self.training = training
        self.weights: dict[int, Weight] = {}       # id(meta twin) -> Weight
        self._twins: dict[int, Tensor] = {}         # id(user tensor) -> meta twin
        self._clones: dict[str, nn.Module] = {}
        self.constants: dict[str, Any] = {}          # tensor constants fx stowed while tracing

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
