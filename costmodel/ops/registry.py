"""Bindings from torch callables to formulas, with fast output-shape rules.

`RULES` maps each torch callable that costmodel understands (torch.*, torch.nn.functional.*,
Tensor methods) to a `Rule`: the formula to use, the names of its arguments (so formulas read
`groups=` by name, never by position), and optionally a shape rule that makes the output meta
tensor directly. Shape rules exist because many meta kernels are Python decompositions that are
far slower than the arithmetic (a meta hardswish takes ~1 ms, a meta layer_norm ~0.7 ms): for
ops whose output shape is obvious, costmodel computes it instead of running the kernel.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .shape_rules import META, _first


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
