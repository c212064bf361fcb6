"""The formula registry: one pure function per op, keyed by the op's name.

A formula sees only an `OpCall`: tensor specs and named attributes. It never sees torch.fx,
networkx or an nn.Module, so every formula can be tested with plain arithmetic. Each returns a
`Cost` with MAdds, FLOPs, params and MAC together, so adding an op touches one function in one file.

Conventions (docs/conventions.md has the full table):
- MAdds: multiply-adds of contraction ops only. FLOPs = 2 * MAdds + every other arithmetic op.
- MAC (ShuffleNet V2): every input and weight read plus every output written, once per op.
  A broadcast input is read once (its stored elements), not once per output.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

from ..core.calls import OpCall
from ..core.cost import Cost
from ..core.tensors import TensorSpec
from ..core.vocab import Category

Formula = Callable[[OpCall], Cost]
Categorize = Callable[[OpCall], Category]


@dataclass(frozen=True)
class Entry:
    name: str
    formula: Formula
    categorize: Categorize
    category: Category | None = None    # the category, when it does not depend on the call


FORMULAS: dict[str, Entry] = {}


def _check_names(kind: str, names: tuple, table: Mapping[str, Any]) -> None:
    """Op names are non-empty strs, each registered once (checked before anything registers)."""
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{kind} names must be non-empty strs, not {name!r}")
        if name in table:
            raise KeyError(f"{kind} {name!r} registered twice")


def formula(*names: str, category: Category | Categorize) -> Callable[[Formula], Formula]:
    """Register `fn` as the formula of each op in `names`. Duplicate names are a bug: refuse
    them."""
    static = category if isinstance(category, Category) else None
    categorize = category if static is None else (lambda call, _c=static: _c)

    def register(fn: Formula) -> Formula:
        for name in names:  # check every name first: a refused registration registers nothing
            if name in FORMULAS:
                raise KeyError(f"formula {name!r} registered twice "
                               f"({FORMULAS[name].formula.__qualname__} and {fn.__qualname__})")
        _check_names("formula", names, FORMULAS)
        for name in names:
            FORMULAS[name] = Entry(name, fn, categorize, static)
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


def io_mac(call: OpCall, reads: int | None = None, read_bytes: int | None = None
           ) -> tuple[int, int]:
    """MAC of `call`: every input read once plus every output written once, in elements and
    bytes."""
    if reads is None:
        reads = read_bytes = 0
        for s in call.inputs():
            n = s.stored if s.stored >= 0 else math.prod(s.shape)   # s.reads
            reads += n
            read_bytes += n * s.itemsize
    writes = write_bytes = 0
    for o in call.outputs:
        n = math.prod(o.shape)   # o.numel
        writes += n
        write_bytes += n * o.itemsize
    return reads + writes, read_bytes + write_bytes


def simple_cost(call: OpCall, *, madds: int = 0, flops: int = 0) -> Cost:
    """A Cost whose MAC is `io_mac(call)` and whose params are its parameter inputs."""
    reads = read_bytes = params = 0   # io_mac and params_of in one pass: every op runs this
    for s in call.inputs():
        numel = math.prod(s.shape)
        n = s.stored if s.stored >= 0 else numel   # s.reads
        reads += n
        read_bytes += n * s.itemsize
        if s.role == "param":
            params += numel
    writes = write_bytes = 0
    for o in call.outputs:
        n = math.prod(o.shape)   # o.numel
        writes += n
        write_bytes += n * o.itemsize
    return Cost(madds, flops, params, reads + writes, read_bytes + write_bytes)


# ---- backward rules ----------------------------------------------------------------------
# Backward formulas: what each op's gradient costs, keyed by the same op names as FORMULAS.
#
# A backward formula sees a `GradCall`: the forward `OpCall` plus the names of the tensor arguments
# that need a gradient (an element of a tuple argument is "name.i"). It returns a `Backward`: the
# Cost of computing those gradients from the output's gradient `gy`, and the tensors autograd keeps
# for it (`saved`: argument names, or "out" / "out.i" for outputs; `extra_bytes` for what is not a
# graph value: dropout masks, pooling indices, norm statistics, attention log-sum-exp).
#
# Conventions (docs/training.md):
# - Contractions: each gradient is one contraction of the same size as the forward: grad-input of
#   conv/linear/matmul costs the forward MAdds, grad-weight the same again. Only arguments in
#   `needs` are computed: no grad-input for the model's input, no grad-weight for a frozen weight.
#   A bias gradient sums `gy`: 1 FLOP per output element.
# - Element-wise ops count applications, as in the forward: the gradient of an input is 2 FLOPs per
#   element (the local derivative, then its product with `gy`), 1 for piecewise-linear ops (a select
#   or a scale), 0 for add (the same `gy` is handed on, nothing is read or written). An input that
#   was broadcast gets its gradient summed back: +1 FLOP per output element.
# - MAC: each gradient kernel reads `gy` and the saved tensors it uses and writes the gradient once,
#   at the forward tensor's dtype; kernels are summed like nn.MultiheadAttention's forward.
# - params are 0: a backward pass reads parameters but adds none.



@dataclass(frozen=True)
class GradCall:
    """A forward call seen from its backward pass."""

    call: OpCall
    needs: frozenset[str]        # tensor arguments that need a gradient ("tensors.1" in a tuple)

    def wants(self, name: str) -> bool:
        return name in self.needs or any(n.startswith(name + ".") for n in self.needs)

    def grad_inputs(self) -> Iterator[tuple[str, TensorSpec]]:
        """(name, spec) of every input that needs a gradient, in argument order."""
        for name, value in self.call.tensors.items():
            if isinstance(value, TensorSpec):
                if name in self.needs:
                    yield name, value
            elif isinstance(value, tuple):
                for i, v in enumerate(value):
                    if f"{name}.{i}" in self.needs:
                        yield f"{name}.{i}", v

    def spec(self, name: str) -> TensorSpec | None:
        """The tensor argument `name` ("input", "tensors.1", "out", "out.1")."""
        if name == "out" or name.startswith("out."):
            i = int(name[4:] or 0)
            return self.call.outputs[i] if i < len(self.call.outputs) else None
        head, _, index = name.partition(".")
        value = self.call.tensors.get(head)
        if isinstance(value, tuple):
            return value[int(index)] if index and int(index) < len(value) else None
        return value if isinstance(value, TensorSpec) else None


@dataclass(frozen=True)
class Backward:
    cost: Cost
    saved: tuple[str, ...] = ()   # arguments (or "out", "out.i") autograd keeps for this backward
    extra_bytes: int = 0          # kept tensors that are not graph values (masks, indices, stats)


BackwardFormula = Callable[[GradCall], Backward]
BACKWARD: dict[str, BackwardFormula] = {}

#: Ops with a forward formula and, so far, no backward rule, each with its reason (registered by
#: `no_backward()` in `backward/<family>.py`). In train mode they make the totals partial with a
#: CM010 diagnostic.
NO_BACKWARD: dict[str, str] = {}


def backward(*names: str) -> Callable[[BackwardFormula], BackwardFormula]:
    """Register `fn` as the backward formula of each op in `names`; refuse duplicates."""
    def register(fn: BackwardFormula) -> BackwardFormula:
        for name in names:
            if name in BACKWARD:
                raise KeyError(f"backward formula {name!r} registered twice "
                               f"({BACKWARD[name].__qualname__} and {fn.__qualname__})")
        _check_names("backward formula", names, BACKWARD)
        _check_names("backward formula", names, NO_BACKWARD)
        for name in names:
            BACKWARD[name] = fn
        return fn
    return register


def no_backward(name: str, reason: str) -> None:
    """Say that op `name` has, so far, no backward rule, and why (an explicit "ignored" entry)."""
    _check_names("backward formula", (name,), BACKWARD)
    _check_names("no-backward entry", (name,), NO_BACKWARD)
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"no_backward({name!r}) needs a reason")
    NO_BACKWARD[name] = reason


def backward_of(grad: GradCall) -> Backward:
    """The backward cost of `grad`. Raises KeyError when the op has no backward formula."""
    if not grad.needs:
        return Backward(Cost())
    return BACKWARD[grad.call.op](grad)


class Kernels:
    """Sums the gradient kernels of one op: MAdds, FLOPs and each kernel's reads and writes."""

    def __init__(self) -> None:
        self.madds = self.flops = self.mac = self.mac_bytes = 0

    def add(self, madds: int = 0, flops: int = 0, reads: Iterable[TensorSpec | None] = (),
            writes: Iterable[TensorSpec | None] = ()) -> Kernels:
        self.madds += madds
        self.flops += flops
        for s in reads:
            if s is not None:
                self.mac += s.reads
                self.mac_bytes += s.reads * s.itemsize
        for s in writes:   # a gradient is written dense, at the forward tensor's dtype
            if s is not None:
                self.mac += s.numel
                self.mac_bytes += s.numel * s.itemsize
        return self

    def done(self, *saved: str, extra_bytes: int = 0) -> Backward:
        return Backward(Cost(self.madds, self.flops, 0, self.mac, self.mac_bytes),
                        tuple(dict.fromkeys(saved)), extra_bytes)


def grad_out(call: OpCall) -> TensorSpec:
    """The gradient of the (first) output: dense, at the output's dtype."""
    out = call.outputs[0]
    return TensorSpec(out.shape, out.dtype, out.itemsize, -1, "activation")


def tensor_args(call: OpCall) -> list[tuple[str, TensorSpec]]:
    """(name, spec) of every tensor argument, tuple elements as "name.i"."""
    found = []
    for name, value in call.tensors.items():
        if isinstance(value, TensorSpec):
            found.append((name, value))
        elif isinstance(value, tuple):
            found += [(f"{name}.{i}", v) for i, v in enumerate(value)]
    return found




# ---- coverage ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CoverageRow:
    """One op of the coverage table (docs render it; tests check it)."""

    op: str
    family: str                 # the file name in ops/, formulas/forward/, formulas/backward/
    category: str               # "varies" when the formula decides per call (conv: depthwise...)
    callables: int              # torch callables (and custom operators) bound to the op
    backward: bool              # has a backward rule (else its NO_BACKWARD reason says why)
    no_backward: str = ""


def coverage(bound: Mapping[str, int]) -> list[CoverageRow]:
    """One row per forward formula, sorted by family and op. `bound`: op -> number of callables
    bound to it (`costmodel.ops.bound_ops()`; formulas cannot import torch)."""
    rows = [CoverageRow(name, entry.formula.__module__.rsplit(".", 1)[-1],
                        str(entry.category) if entry.category is not None else "varies",
                        bound.get(name, 0), name in BACKWARD, NO_BACKWARD.get(name, ""))
            for name, entry in FORMULAS.items()]
    return sorted(rows, key=lambda r: (r.family, r.op))


def coverage_problems(bound: Iterable[str], formulas: Iterable[str] = (),
                      backward: Iterable[str] = (), no_backward: Mapping[str, str] | None = None
                      ) -> list[str]:
    """What breaks the one-home-per-op rule, as sentences (empty: none). Defaults: the real
    registries; pass doctored copies to test the check itself."""
    bound, formulas = set(bound), set(formulas or FORMULAS)
    backward = set(backward or BACKWARD)
    no_backward = NO_BACKWARD if no_backward is None else no_backward
    problems = [f"{op}: bound, but has no forward formula" for op in sorted(bound - formulas)]
    problems += [f"{op}: a forward formula that no torch callable is bound to"
                 for op in sorted(formulas - bound)]
    problems += [f"{op}: neither a backward rule nor a NO_BACKWARD entry with its reason"
                 for op in sorted(formulas - backward - set(no_backward))]
    problems += [f"{op}: a backward rule and a NO_BACKWARD entry"
                 for op in sorted(backward & set(no_backward))]
    problems += [f"{op}: a backward rule with no forward formula"
                 for op in sorted(backward - formulas)]
    problems += [f"{op}: a NO_BACKWARD entry with an empty reason"
                 for op, why in sorted(no_backward.items()) if not why.strip()]
    return problems


@contextlib.contextmanager
def scratch() -> Iterator[None]:
    """Formulas, backward rules and NO_BACKWARD entries registered inside the block are dropped
    when it ends (tests, the recipe in `costmodel.formulas`)."""
    saved = dict(FORMULAS), dict(BACKWARD), dict(NO_BACKWARD)
    try:
        yield
    finally:
        for table, before in zip((FORMULAS, BACKWARD, NO_BACKWARD), saved):
            table.clear()
            table.update(before)
