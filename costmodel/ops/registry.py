"""What each torch callable means: one `Binding` per callable, looked up once.

`bind()` ties torch callables (torch.*, torch.nn.functional.*, Tensor methods) to an op name, the
key that forward formulas (`formulas/forward/`) and backward rules (`formulas/backward/`) share.
A binding's `Rule` names the call's arguments (so formulas read `groups=` by name, never by
position) and optionally gives a shape rule that makes the output meta tensor directly: many meta
kernels are Python decompositions far slower than the arithmetic (a meta hardswish takes ~1 ms, a
meta layer_norm ~0.7 ms), so for ops whose output shape is obvious costmodel computes it instead.

Facts about a callable that pure code needs (in place, detach, how a copy's gradient flows, sizes
that depend on data) are `OpFlag`s on its binding; the recorder copies them onto each `OpCall`.
`note()` records such facts for callables that have no formula (nonzero, unique).

`lookup(func)` is the one memo: it runs for every torch call an analysed model makes, and returns
the same frozen `Binding` for the same callable, bound or not.
"""
from __future__ import annotations

import contextlib
import operator
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.vocab import OpFlag
from .shape_rules import _first

#: The numpy-style keyword names torch's argument parser accepts for every builtin
#: (torch/csrc/utils/python_arg_parser.cpp: `torch.sum(x, axis=1, keepdims=True)`,
#: `torch.cat(ts, axis=1)`, `torch.add(x1=a, x2=b)`), as the names costmodel binds.
NUMPY_ALIASES = {"axis": "dim", "keepdims": "keepdim", "x": "input", "a": "input", "x1": "input",
                 "x2": "other"}

#: Tensor properties costmodel binds: they reach __torch_function__ as their descriptor's __get__.
PROPERTIES = ("T", "mT", "H", "mH", "real", "imag")

#: (binding, args, kwargs) -> why this call's output size depends on tensor values, or None.
Sizes = Callable[["Binding", tuple, dict], "str | None"]


@dataclass(frozen=True, slots=True)
class Rule:
    op: str                                   # formula name
    params: tuple[str, ...]                   # argument names; "*name" gathers the rest
    shape: Callable[[dict], Any] | None = None  # bound args -> output meta tensor(s), or None
    extra: Callable[[dict, Any], dict] | None = None  # bound args, output -> extra attributes
    inplace: bool = False
    create: bool = False                      # a factory: its tensors must be made on meta
    result: Callable[[dict, Any], Any] | None = None  # what to record as the output, if not `out`
    #: keyword name torch uses -> the bound name (`batch1=` of baddbmm is `mat1`), with the
    #: numpy aliases (`axis=` is `dim`); a keyword that is one of `params` is never renamed
    keywords: dict[str, str] = field(default_factory=lambda: dict(NUMPY_ALIASES))
    spread: bool = False                      # "*name" given one list or tuple: its items
    binder: Callable[[tuple, dict], dict] | None = None   # overloads: binds instead of `params`

    def bind(self, args: tuple, kwargs: dict) -> dict:
        if self.binder is not None:
            return self.binder(args, kwargs)
        params = self.params
        if params and params[-1].startswith("*"):
            head = len(params) - 1
            bound = dict(zip(params[:head], args))
            rest = tuple(args[head:])
            if self.spread and len(rest) == 1 and isinstance(rest[0], (list, tuple)):
                rest = tuple(rest[0])   # torch.einsum(eq, [a, b]) is torch.einsum(eq, a, b)
            bound[params[-1][1:]] = rest
        else:
            bound = dict(zip(params, args))
        if kwargs:
            keywords = self.keywords
            for key, value in kwargs.items():
                if key in keywords and key not in params:
                    key = keywords[key]
                bound[key] = value
        return bound


@dataclass(frozen=True, slots=True)
class Binding:
    """Everything costmodel knows about one torch callable."""

    name: str                                 # the printed name: "F.conv2d", "Tensor.add"
    rule: Rule | None = None                  # None: no formula binds it (an unsupported op)
    flags: frozenset[OpFlag] = frozenset()
    mutates: bool = False                     # OpFlag.MUTATES in flags (read on every torch call)
    sizes: Sizes | None = None                # set iff OpFlag.DATA_DEPENDENT is in flags


BINDINGS: dict[Callable, Binding] = {}    # what bind() and note() registered, by callable
RULES_BY_NAME: dict[str, Rule] = {}       # base name -> rule, for unbound `sigmoid_`, `__rmul__`
RULES_BY_OP: dict[str, Binding] = {}      # custom operators by qualified name: "torchvision::nms"
_MEMO: dict[Callable, Binding] = {}       # lookup()'s memo: every callable seen, bound or not
_OWNERS = {"torch": torch, "F": F, "Tensor": Tensor, "operator": operator,
           "torch.special": torch.special, "torch.linalg": torch.linalg, "torch.fft": torch.fft}


def _targets(names: str) -> list[tuple[str, str, Callable]]:
    """'torch.add F.relu Tensor.add' -> the callables that exist in this torch version."""
    found = []
    for dotted in names.split():
        owner_name, _, attr = dotted.rpartition(".")
        fn = getattr(_OWNERS[owner_name], attr, None)
        if fn is not None:
            found.append((dotted, attr, fn))
    return found


def _check_op(op: Any) -> None:
    if not isinstance(op, str) or not op:
        raise TypeError(f"an op name must be a non-empty str, not {op!r}")


def _binding(name: str, rule: Rule | None, func: Any, flags: Iterable[OpFlag] = (),
             sizes: Sizes | None = None) -> Binding:
    """The binding of `func`, with the flags its names imply (in place, mutates)."""
    found = set(flags)
    fn_name = getattr(func, "__name__", "") or ""
    if fn_name == "__set__" or fn_name.endswith("_") and not fn_name.endswith("__"):
        found.add(OpFlag.MUTATES)    # `unsqueeze_`, `resize_`, an attribute setter (`x.data = y`)
    last = name.rsplit(".", 1)[-1]
    if last.startswith("__i") or last.endswith("_") and not last.endswith("__"):
        found.add(OpFlag.INPLACE)
    if sizes is not None:
        found.add(OpFlag.DATA_DEPENDENT)
    return Binding(name, rule, frozenset(found), OpFlag.MUTATES in found, sizes)


def _register(fn: Callable, binding: Binding) -> None:
    known = BINDINGS.get(fn)
    if known is not None:
        if known.rule is binding.rule and known.name != binding.name:
            return   # one callable under two names in one bind() (F.rrelu_ is torch.rrelu_)
        raise KeyError(f"{binding.name} registered twice ({known.rule and known.rule.op!r} and "
                       f"{binding.rule and binding.rule.op!r})")
    BINDINGS[fn] = binding


def bind(op: str, names: str, params: tuple[str, ...], *, flags: Iterable[OpFlag] = (),
         sizes: Sizes | None = None, keywords: dict[str, str] | None = None,
         **options: Any) -> None:
    """Bind every callable in `names` (space-separated 'module.attr') to `op`, whose arguments are
    `params`; `keywords` maps the keyword names torch uses to names in `params` where they differ
    (`{"batch1": "mat1"}`; the numpy aliases `axis`, `keepdims`, ... are always mapped);
    `options` are the other `Rule` fields. A callable is bound once: a second binding raises
    KeyError."""
    _check_op(op)
    rule = Rule(op, params, keywords={**NUMPY_ALIASES, **(keywords or {})}, **options)
    flags = tuple(flags)
    for dotted, attr, fn in _targets(names):
        _register(fn, _binding(dotted, rule, fn, flags, sizes))
        RULES_BY_NAME.setdefault(attr.strip("_"), rule)
        if attr in PROPERTIES:  # properties reach __torch_function__ as their __get__
            _register(fn.__get__, _binding(dotted, rule, fn.__get__, flags, sizes))
    _MEMO.clear()


def note(names: str, *, flags: Iterable[OpFlag] = (), sizes: Sizes | None = None) -> None:
    """Facts about callables that no formula binds (`torch.nonzero`): flags only, no rule."""
    for _dotted, _attr, fn in _targets(names):
        _register(fn, _binding(printed_name(fn), None, fn, flags, sizes))
    _MEMO.clear()


def bind_op(op: str, qualnames: str, params: tuple[str, ...], *, flags: Iterable[OpFlag] = (),
            sizes: Sizes | None = None, **options: Any) -> None:
    """Bind custom operators (`torch.ops.ns.name`) by qualified name, so that costmodel needs no
    import of the library that defines them."""
    _check_op(op)
    if "keywords" in options:
        options["keywords"] = {**NUMPY_ALIASES, **options["keywords"]}
    for qualname in qualnames.split():
        if qualname in RULES_BY_OP:
            raise KeyError(f"{qualname} registered twice")
        found = set(flags) | ({OpFlag.DATA_DEPENDENT} if sizes is not None else set())
        RULES_BY_OP[qualname] = Binding(qualname, Rule(op, params, **options), frozenset(found),
                                        False, sizes)
    _MEMO.clear()


def lookup(func: Callable) -> Binding:
    """The binding of `func` (rule, printed name, flags), made once per callable: this runs for
    every torch call the analysed model makes."""
    try:
        return _MEMO[func]
    except KeyError:
        found = _MEMO[func] = _resolve(func)
        return found
    except TypeError:  # an unhashable callable: assume it may mutate its argument
        name = printed_name(func)
        return _binding(name, _by_name(func), func, (OpFlag.MUTATES,))


def _resolve(func: Callable) -> Binding:
    known = BINDINGS.get(func)
    if known is not None:
        return known
    name = printed_name(func)
    custom = _by_op(func)
    if custom is not None:
        return _binding(name, custom.rule, func, custom.flags, custom.sizes)
    return _binding(name, _by_name(func), func)


def _by_op(func: Callable) -> Binding | None:
    qualname = getattr(func, "_qualified_op_name", None) or getattr(
        getattr(func, "_schema", None), "name", None)
    return RULES_BY_OP.get(qualname) if isinstance(qualname, str) else None


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
        rule = replace(rule, shape=_first, inplace=True)
    return rule


def printed_name(func: Any) -> str:
    """The name costmodel prints for a callable it has not bound: 'Tensor.add', 'torch.cat'."""
    name = getattr(func, "__name__", None) or repr(func)
    qualname = getattr(func, "__qualname__", "") or ""
    if (getattr(func, "__objclass__", None) is not None
            or qualname.startswith(("TensorBase.", "Tensor."))):
        return "Tensor." + name
    module = getattr(func, "__module__", None) or ""
    for sub in ("fft", "linalg", "special"):   # torch._C._fft.fft_rfft is torch.fft.rfft
        if module == f"torch._C._{sub}" and name.startswith(f"{sub}_"):
            return f"torch.{sub}.{name.removeprefix(sub + '_')}"
    if module.startswith("torch._ops."):   # a custom operator: torch.ops.<namespace>.<name>
        return f"torch.ops.{module.removeprefix('torch._ops.')}.{name}"
    if module.startswith("torch._C") or qualname.startswith("_VariableFunctionsClass"):
        return "torch." + name
    module = {"torch.nn.functional": "F", "_operator": "operator"}.get(module, module)
    return f"{module}.{name}" if module else name


def bound_ops() -> Counter[str]:
    """op name -> how many torch callables (by printed name) and custom operators bind it."""
    names = {(b.rule.op, b.name) for b in BINDINGS.values() if b.rule is not None}
    names |= {(b.rule.op, b.name) for b in RULES_BY_OP.values()}
    return Counter(op for op, _ in names)


@contextlib.contextmanager
def scratch() -> Iterator[None]:
    """Bindings made inside the block are dropped when it ends (tests, the docs' recipe)."""
    saved = dict(BINDINGS), dict(RULES_BY_NAME), dict(RULES_BY_OP)
    try:
        yield
    finally:
        for table, before in zip((BINDINGS, RULES_BY_NAME, RULES_BY_OP), saved):
            table.clear()
            table.update(before)
        _MEMO.clear()
