"""Training cost: the backward pass of every recorded op, and the activation memory it keeps.

Runs after `annotate` on the same graph (analyze(..., mode="train") traces with training flags on,
so dropout is active and batch norm uses batch statistics in the forward costs it already has).

Which tensors need a gradient ("requires grad"), per tensor value, not per node:
- the model's inputs do not; a parameter does iff its `requires_grad` is True; buffers and
  constants never do;
- an op's floating-point output does iff any of its tensor inputs does (detach stops it; integer
  and boolean outputs never do);
- a gradient is only computed for values that reach the model's outputs (the loss is taken to be
  a function of every floating-point output): dead branches cost nothing.
Each node's inputs are exact values: the capture records which output of which node each one
is (`Node.sources`), for the eager and the fx capture alike. Within a node that makes several
torch calls (a torch.nn leaf such as TransformerEncoderLayer), a call's arguments are matched to
earlier calls of the node, then to the node's inputs in argument order, by shape and dtype.

Each op that needs a gradient for some input is costed by its rule in `formulas/backward/`,
given exactly which inputs need one (no grad-input for the model's input, no grad-weight for a
frozen weight). A value read by k ops that each send it a gradient gets k - 1 gradient additions
(1 FLOP per element each; MAC 2 reads + 1 write per element), charged to the op that made it.

Activation memory saved for backward: the union, over ops whose backward runs, of the activation
tensors their rule says autograd keeps (conv/linear/matmul: the input for grad-weight; ReLU: its
output; batch norm: its input; ...), plus what is not a graph value (dropout masks, max-pool
indices, norm statistics, attention log-sum-exp). Each tensor counts once: views and in-place
results are the same storage as the tensor they come from. Parameters are not counted (they are
in memory anyway); the model's input is, when an op keeps it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Collection, Iterator

from ..core.cost import ZERO, Cost, total
from ..core.graph import CostGraph, Node
from ..core.report import Diagnostic, Report, Totals, TrainTotals
from ..core.tensors import TensorSpec
from ..core.vocab import COMPUTE, Code, NodeKind, NodeStatus, OpFlag, Severity, Status
from ..formulas import BACKWARD, FORMULAS, NO_BACKWARD, GradCall, backward_of

_FLOATING = ("float", "bfloat", "complex")


@dataclass(slots=True)
class _Slot:
    """One tensor value of the forward."""

    spec: TensorSpec
    grad: bool                             # requires grad
    root: int                              # the slot whose storage this is (views, in-place)
    producer: tuple[str, int] | None       # (node, call index); index -1: the node, no call
    live: bool = False                     # its gradient is computed (it reaches an output)
    uses: int = 0                          # ops that send it a gradient


@dataclass(slots=True)
class _Step:
    node: str
    index: int
    rec: object                            # shapes.Recorded
    args: list[tuple[str, TensorSpec, int | None, bool]]   # name, spec, slot (activations), grad
    outs: list[int]


@dataclass
class BackwardPass:
    """What `backward_pass` found: per node, the backward cost of each of its recorded calls."""

    calls: dict[str, list[Cost]] = field(default_factory=dict)
    extra: dict[str, Cost] = field(default_factory=dict)          # gradient accumulation, no call
    saved_bytes: dict[str, int] = field(default_factory=dict)     # per node, first keeper counts
    saved: list[tuple[str, str, int]] = field(default_factory=list)  # node, what, bytes
    missing: list[tuple[str, str, bool]] = field(default_factory=list)  # node, op, forward known
    activation_bytes: int = 0
    trainable_params: int = 0


def _floating(spec: TensorSpec) -> bool:
    return spec.dtype.startswith(_FLOATING)


def _flat(tensors) -> Iterator[tuple[str, TensorSpec]]:
    for name, value in tensors.items():
        if isinstance(value, TensorSpec):
            yield name, value
        elif isinstance(value, tuple):
            for i, v in enumerate(value):
                if isinstance(v, TensorSpec):
                    yield f"{name}.{i}", v


def _take(pool: list[tuple[TensorSpec, int]], spec: TensorSpec, used: set[int],
          in_order: bool = False) -> int | None:
    """The most recent value in `pool` with this spec (the first, when `pool` is in argument
    order), preferring one not yet used here."""
    fallback = None
    for s, sid in (pool if in_order else reversed(pool)):
        if s == spec:
            if sid not in used:
                return sid
            fallback = sid if fallback is None else fallback
    return fallback


class _Tracker:
    def __init__(self, g: CostGraph, trainable: Collection[int]) -> None:
        self.g = g
        self.trainable = trainable
        self.slots: list[_Slot] = []
        self.steps: list[_Step] = []
        self.node_out: dict[str, list[int]] = {}
        self.seeds: list[int] = []
        self.orphans: dict[str, list[int]] = {}   # node -> its outputs that matched no call
        self.has_output = False

    def new(self, spec: TensorSpec, grad: bool, producer, root: int | None = None) -> int:
        sid = len(self.slots)
        self.slots.append(_Slot(spec, grad and _floating(spec), sid if root is None else root,
                                producer))
        return sid

    def forward(self) -> None:
        node_out = self.node_out
        for node in self.g:
            pool = [(s, node_out[src[0]][src[1]]) for s, src in zip(node.inputs, node.sources)
                    if src is not None and src[1] < len(node_out.get(src[0], ()))]
            kind = node.kind
            if kind is NodeKind.PLACEHOLDER:
                node_out[node.name] = [self.new(s, False, None) for s in node.outputs]
            elif kind is NodeKind.OUTPUT:
                self.has_output = True
                self.seeds += [sid for _, sid in pool]
            elif kind in COMPUTE:
                self.node(node, pool)

    def node(self, node: Node, pool: list[tuple[TensorSpec, int]]) -> None:
        """`pool` is the node's own inputs, in argument order, with their slots."""
        name = node.name
        upstream = any(self.slots[sid].grad for _, sid in pool)
        local: list[tuple[TensorSpec, int]] = []
        for index, rec in enumerate(node.calls):
            keys = iter(rec.params)
            args: list[tuple[str, TensorSpec, int | None, bool]] = []
            used: set[int] = set()
            for arg, spec in _flat(rec.call.tensors):
                if spec.role == "param":
                    key = next(keys, (None, 0))[0]
                    args.append((arg, spec, None, key in self.trainable))
                elif spec.role != "activation":
                    args.append((arg, spec, None, False))
                else:
                    sid = _take(local, spec, used)
                    if sid is None:
                        sid = _take(pool, spec, used, True)
                    if sid is None:        # made outside any recorded call: assume the worst
                        sid = self.new(spec, upstream, (name, -1))
                    used.add(sid)
                    args.append((arg, spec, sid, self.slots[sid].grad))
            grad = OpFlag.DETACH not in rec.call.flags and any(a[3] for a in args)
            first = next((a[2] for a in args if a[2] is not None), None)
            view = rec.call.op == "view" or bool(rec.call.attrs.get("is_view")) or (
                rec.call.op == "dropout" and (not rec.call.attrs.get("training")
                                              or rec.call.attrs.get("p") == 0))   # the identity
            outs = []
            for k, spec in enumerate(rec.call.outputs):
                alias = first is not None and (view or k == 0 and rec.call.in_place)
                outs.append(self.new(spec, grad, (name, index),
                                     self.slots[first].root if alias else None))
            local += zip(rec.call.outputs, outs)
            self.steps.append(_Step(name, index, rec, args, outs))
        outs, taken = [], set()
        made = any(self.slots[sid].grad for _, sid in local)
        for spec in node.outputs:
            sid = _take(local, spec, taken)
            if sid is None:
                sid = _take(pool, spec, taken)
            if sid is None:
                sid = self.new(spec, upstream or made, (name, -1))
                self.orphans.setdefault(name, []).append(sid)
            taken.add(sid)
            outs.append(sid)
        self.node_out[name] = outs


def backward_pass(g: CostGraph, trainable: Collection[int]) -> BackwardPass:
    """The backward cost of every node of an annotated graph (see the module docstring)."""
    t = _Tracker(g, trainable)
    t.forward()
    slots = t.slots
    for sid in (t.seeds if t.has_output else range(len(slots))):
        slots[sid].live = True
    result = BackwardPass()
    for node in g:
        result.calls[node.name] = [ZERO] * len(node.calls)
    kept: list[tuple[_Step, list[tuple[str, int]], int]] = []   # step, (arg, slot), extra bytes
    for step in reversed(t.steps):
        live = any(slots[s].live and slots[s].grad for s in step.outs) or any(
            slots[s].live for s in t.orphans.get(step.node, ()))
        if not live:
            continue
        needs = frozenset(arg for arg, _, sid, grad in step.args
                          if grad and (sid is None or slots[sid].grad))
        if not needs:
            continue
        for sid in {sid for _, _, sid, grad in step.args if grad and sid is not None}:
            slots[sid].live = True
            slots[sid].uses += 1
        call = step.rec.call
        known = step.rec.supported and call.op in FORMULAS
        if not known or call.op not in BACKWARD:
            result.missing.append((step.node, call.op if known else step.rec.name, known))
            continue
        try:
            back = backward_of(GradCall(call, needs))
        except Exception as exc:  # noqa: BLE001 - a formula bug must not hide the rest
            result.missing.append((step.node, f"{call.op} (backward formula error: "
                                              f"{type(exc).__name__}: {exc})", True))
            continue
        result.calls[step.node][step.index] = back.cost
        by_name = {arg: sid for arg, _, sid, _ in step.args}
        overwritten = step.rec.call.in_place and next(
            (arg for arg, _, sid, _ in step.args if sid is not None), None)
        found = []
        for arg in back.saved:
            if arg == "out" or arg.startswith("out."):
                i = int(arg[4:] or 0)
                sid = step.outs[i] if i < len(step.outs) else None
            else:
                sid = by_name.get(arg)
                if sid is not None and arg == overwritten:   # autograd keeps a copy of what an
                    sid = -1 - sid                           # in-place op overwrites
            if sid is not None:
                found.append((arg, sid))
        kept.append((step, found, back.extra_bytes))
    roots: set[int] = set()
    for step, found, extra in reversed(kept):   # forward order: the first op to keep a tensor
        op = step.rec.call.op
        fresh = extra
        if extra:
            result.saved.append((step.node, f"{op}: masks, indices or statistics", extra))
        for arg, sid in found:
            root = slots[sid].root if sid >= 0 else sid
            if root not in roots:
                roots.add(root)
                spec = slots[root if root >= 0 else -1 - root].spec
                size = spec.reads * spec.itemsize
                result.saved.append((step.node, f"{op}: {arg}", size))
                fresh += size
        result.saved_bytes[step.node] = result.saved_bytes.get(step.node, 0) + fresh
        result.activation_bytes += fresh
    for slot in slots:   # gradients of a value read by several ops are added together
        if slot.uses > 1 and slot.producer is not None:
            n, isz = (slot.uses - 1) * slot.spec.numel, slot.spec.itemsize
            add = Cost(0, n, 0, 3 * n, 3 * n * isz)
            node, index = slot.producer
            if index >= 0:
                result.calls[node][index] += add
            else:
                result.extra[node] = result.extra.get(node, ZERO) + add
    return result


def with_backward(report: Report, trainable: Collection[int],
                  trainable_params: int) -> Report:
    """`report` (analysed with training flags on) with backward costs: layers carry `backward`
    and `activation_bytes`, `cost` becomes forward + backward, and so do `totals`;
    `report.train` keeps forward, backward and activation memory apart."""
    found = backward_pass(report.graph, trainable)
    layers = []
    for layer in report.layers:
        per_call = found.calls.get(layer.name, [])
        extra = found.extra.get(layer.name, ZERO)
        back = total(per_call) + extra
        calls = tuple(replace(c, cost=c.cost + b, backward=b)
                      for c, b in zip(layer.calls, per_call))
        status = layer.status
        if status is NodeStatus.IGNORED and back != ZERO:
            status = NodeStatus.COSTED
        if any(node == layer.name for node, _, _ in found.missing):
            status = NodeStatus.UNSUPPORTED
        layers.append(replace(layer, cost=layer.cost + back, calls=calls, backward=back,
                              status=status,
                              reason="" if status is NodeStatus.COSTED else layer.reason,
                              activation_bytes=found.saved_bytes.get(layer.name, 0)))
    diagnostics = list(report.diagnostics)
    missing_ops = []
    for node, op, known in found.missing:
        missing_ops.append(f"{op} (backward)")
        if known:   # an op with no forward formula already has its CM001/CM002
            why = NO_BACKWARD.get(op, "no rule in costmodel/formulas/backward/")
            diagnostics.append(Diagnostic(
                Code.NO_BACKWARD, Severity.WARNING,
                f"no backward formula for {op} (node '{node}': {why}); its backward is not "
                f"counted and the training totals are partial", node=node,
                module=report.graph.nodes[node].module, op=op))
    forward = report.totals.cost
    backward = total(layer.backward for layer in layers) if layers else ZERO
    missing = tuple(sorted(set(missing_ops)))
    status = (Status.PARTIAL if missing or report.totals.status is Status.PARTIAL
              else Status.COMPLETE)
    both = forward + backward
    t = report.totals
    totals = Totals(both.madds, both.flops, t.params, both.mac, both.mac_bytes, status,
                    t.params_unused, tuple(sorted(set(t.unsupported) | set(missing))))
    train = TrainTotals(forward, backward, found.activation_bytes, trainable_params, status,
                        missing)
    return replace(report, layers=tuple(layers), totals=totals, diagnostics=tuple(diagnostics),
                   train=train)
