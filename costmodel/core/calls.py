"""What a formula sees of one op call, and what the capture recorded about it. Pure Python."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from .tensors import TensorSpec
from .vocab import OpFlag


@dataclass(frozen=True)
class OpCall:
    """One call of an op: its tensors by argument name, its outputs, its other arguments, and
    the facts the capture knows about the torch callable (`OpFlag`s: in place, detach, how a
    copy's gradient flows), copied from its binding in `ops/`."""

    op: str
    tensors: Mapping[str, Any] = field(default_factory=dict)   # name -> TensorSpec | tuple | None
    outputs: tuple[TensorSpec, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)
    flags: frozenset[OpFlag] = frozenset()

    def __init__(self, op: str, tensors: Mapping[str, Any] | None = None,
                 outputs: tuple[TensorSpec, ...] = (), attrs: Mapping[str, Any] | None = None,
                 flags: frozenset[OpFlag] = frozenset()) -> None:
        # the dataclass's own __init__ (a fresh dict for each missing mapping), with the fields
        # written straight into __dict__ as CallCost's: one OpCall per recorded torch call
        self.__dict__.update(op=op, tensors={} if tensors is None else tensors, outputs=outputs,
                             attrs={} if attrs is None else attrs, flags=flags)

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

    @property
    def in_place(self) -> bool:
        """Whether it writes its first argument rather than a new tensor (`relu_`,
        `F.relu(x, inplace=True)`, `__iadd__`)."""
        return OpFlag.INPLACE in self.flags or bool(self.attrs.get("inplace"))

    def attr(self, name: str, default: Any = None) -> Any:
        value = self.attrs.get(name, default)
        return default if value is None else value


@dataclass(slots=True)
class Recorded:
    """One torch-level call made by a graph node: the OpCall, the torch callable's printed name,
    whether costmodel has a binding for it, and the (weight key, numel) of each parameter read."""

    call: OpCall
    name: str                               # the torch callable, e.g. "F.conv2d"
    supported: bool
    params: tuple[tuple[int, int], ...] = ()
