"""The formula registry: one pure function per op, keyed by the op's name.

A formula sees only an `OpCall`: tensor specs and named attributes. It never sees torch.fx,
networkx or an nn.Module, so every formula can be tested with plain arithmetic. Each returns a
`Cost` with MAdds, FLOPs, params and MAC together, so adding an op touches one function in one file.

Conventions (the README has the full table):
- MAdds: multiply-adds of contraction ops only. FLOPs = 2 * MAdds + every other arithmetic op.
- MAC (ShuffleNet V2): every input and weight read plus every output written, once per op.
  A broadcast input is read once (its stored elements), not once per output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from ..cost import Cost
from ..specs import TensorSpec
from ..vocab import Category

@dataclass(frozen=True)
class OpCall:
    """One call of an op: its tensors by argument name, its outputs, and its other arguments."""

    op: str
    tensors: Mapping[str, Any] = field(default_factory=dict)   # name -> TensorSpec | tuple | None
    outputs: tuple[TensorSpec, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def t(self, name: str) -> TensorSpec | None:
        value = self.tensors.get(name)
        return value if isinstance(value, TensorSpec) or value is None else None

    def inputs(self) -> Iterator[TensorSpec]:
        """Every input tensor spec, flattened, in argument order."""
        for value in self.tensors.values():
            if isinstance(value, TensorSpec):
                yield value
            elif isinstance(value, tuple):
                yield from (v for v in value if isinstance(v, TensorSpec))

    @property
    def out(self) -> TensorSpec:
        return self.outputs[0]

    def attr(self, name: str, default: Any = None) -> Any:
        value = self.attrs.get(name, default)
        return default if value is None else value


Formula = Callable[[OpCall], Cost]
Categorize = Callable[[OpCall], Category]


@dataclass(frozen=True)
class Entry:
    name: str
    formula: Formula
    categorize: Categorize


FORMULAS: dict[str, Entry] = {}


def formula(*names: str, category: Category | Categorize) -> Callable[[Formula], Formula]:
    """Register `fn` as the formula of each op in `names`. Duplicate names are a bug: refuse them."""
    categorize = category if callable(category) else (lambda call, _c=category: _c)

    def register(fn: Formula) -> Formula:
        for name in names:  # check every name first: a refused registration registers nothing
            if name in FORMULAS:
                raise KeyError(f"formula {name!r} registered twice "
                               f"({FORMULAS[name].formula.__qualname__} and {fn.__qualname__})")
        for name in names:
            FORMULAS[name] = Entry(name, fn, categorize)
        return fn

    return register


def cost_of(call: OpCall) -> tuple[Cost, Category]:
    """The cost and category of `call`. Raises KeyError when no formula is registered."""
    entry = FORMULAS[call.op]
    return entry.formula(call), entry.categorize(call)


# ---- helpers shared by the formula files -----------------------------------------------------

def params_of(*specs: TensorSpec | None) -> int:
    """Parameter elements among `specs` (the engine later removes tied duplicates)."""
    return sum(s.numel for s in specs if s is not None and s.role == "param")


def io_mac(call: OpCall, reads: int | None = None, read_bytes: int | None = None) -> tuple[int, int]:
    """MAC of `call`: every input read once plus every output written once, in elements and bytes."""
    if reads is None:
        reads = read_bytes = 0
        for s in call.inputs():
            reads += s.reads
            read_bytes += s.reads * s.itemsize
    writes = sum(o.numel for o in call.outputs)
    write_bytes = sum(o.numel * o.itemsize for o in call.outputs)
    return reads + writes, read_bytes + write_bytes


def simple_cost(call: OpCall, *, madds: int = 0, flops: int = 0) -> Cost:
    """A Cost whose MAC is `io_mac(call)` and whose params are its parameter inputs."""
    mac, mac_bytes = io_mac(call)
    return Cost(madds, flops, params_of(*call.inputs()), mac, mac_bytes)


# Import the formula files so that their decorators fill FORMULAS.
from . import conv, detection, elementwise, matmul, movement, norm, pool  # noqa: E402,F401
