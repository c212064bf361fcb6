"""Annotate: a Cost (or a Diagnostic) for every node of the graph, from the formula registry.

Writes `cost`, `category`, `status` and `reason` onto each graph Node, and returns the report's
layer records. Tied parameters are counted once: at the first op that reads them.
"""
from __future__ import annotations

from ..core.cost import ZERO, total
from ..core.graph import CostGraph, Node
from ..core.report import CallCost, Diagnostic, Layer
from ..core.vocab import COMPUTE, Category, Code, NodeStatus, Severity
from ..formulas import FORMULAS


def _dominant(calls: list[CallCost]) -> CallCost:
    return max(calls, key=lambda c: (c.cost.madds, c.cost.flops, c.cost.mac))


def _set(node: Node, cost, category, status, reason: str) -> None:
    node.cost, node.category, node.status, node.reason = cost, category, status, reason


def annotate(g: CostGraph) -> tuple[list[Layer], list[Diagnostic]]:
    layers: list[Layer] = []
    diagnostics: list[Diagnostic] = []
    seen_params: set[int] = set()
    formulas = FORMULAS
    for node in g:   # execution order
        name = node.name
        if node.kind not in COMPUTE:
            _set(node, ZERO, None, NodeStatus.IGNORED, str(node.kind))
            continue
        calls: list[CallCost] = []
        unsupported: list[str] = []
        for rec in node.calls:
            call = rec.call
            entry = formulas.get(call.op) if rec.supported else None
            failed = None if entry is not None else rec.name
            if entry is not None:
                try:   # cost_of(call), with the entry found once
                    cost, category = entry.formula(call), entry.categorize(call)
                except Exception as exc:  # noqa: BLE001 - a formula bug must not hide the rest
                    failed = f"{rec.name} (formula error: {type(exc).__name__}: {exc})"
            if failed is None:
                if rec.params:
                    repeated = sum(n for key, n in rec.params if key in seen_params)
                    if repeated:
                        cost = cost.replace(params=cost.params - repeated)
                    seen_params.update(key for key, _ in rec.params)
                calls.append(CallCost(call.op, rec.name, category, cost))
            else:
                unsupported.append(failed)
                calls.append(CallCost(rec.name, rec.name, Category.UNSUPPORTED, ZERO, False))
        if node.unrecorded:
            unsupported.append(node.target)
        outputs = node.outputs
        if not calls and not outputs:
            _set(node, ZERO, None, NodeStatus.IGNORED,
                 "computes no tensors (Python arithmetic on sizes)")
            continue
        if len(calls) == 1:
            head = calls[0]
            cost = head.cost
        elif calls:
            head = _dominant(calls)
            cost = total(c.cost for c in calls)
        else:   # a layer that returns its input (nn.Identity): a third of some models' nodes
            head, cost = None, ZERO
        reason = ""
        if unsupported:
            status = NodeStatus.UNSUPPORTED
            for op in unsupported:
                diagnostics.append(Diagnostic(
                    Code.UNRECORDED_OP if op == node.target and node.unrecorded
                    else Code.UNSUPPORTED_OP, Severity.WARNING,
                    f"no formula for {op} (node '{name}'); its cost is not counted and the totals "
                    f"are partial", node=name, module=node.module, op=op))
        elif cost is ZERO or cost == ZERO:
            status = NodeStatus.IGNORED
            reason = _reason(calls)
        else:
            status = NodeStatus.COSTED
        if unsupported and (head is None or head.cost == ZERO):
            category = Category.UNSUPPORTED
        else:
            category = head.category if head else Category.DATA_MOVEMENT
        op = (unsupported[0] if category is Category.UNSUPPORTED
              else head.op if head else "identity")
        if op == "hardtanh" and _is_relu6(node):
            op = "relu6"   # nn.ReLU6 and F.relu6 run F.hardtanh(x, 0, 6): say what the user wrote
        # by position (name, module, target, op, category, status, inputs, outputs, dtype, cost,
        # calls, reason): 12 keywords take half a microsecond longer to match, once per layer
        layer = Layer(name, node.module, node.target, op, category, status,
                      tuple([s.shape for s in node.inputs]), tuple([s.shape for s in outputs]),
                      outputs[0].dtype if outputs else "", cost, tuple(calls), reason)
        node.cost, node.category, node.status, node.reason = cost, category, status, reason
        node.call_costs = layer.calls
        layers.append(layer)
    return layers, diagnostics


def _reason(calls: list[CallCost]) -> str:
    if not calls:
        return "returns an existing tensor: no computation"
    categories = {c.category for c in calls}
    if categories == {Category.DROPOUT}:
        return "dropout is the identity at inference"
    if categories <= {Category.DATA_MOVEMENT, Category.DROPOUT}:
        return "a view: no data moves"
    return "costs nothing"


def _is_relu6(node) -> bool:
    """Every hardtanh call of the node clamps to [0, 6]: ReLU6."""
    calls = [rec.call for rec in node.calls if rec.call.op == "hardtanh"]
    return bool(calls) and all(float(c.attrs.get("min_val", -1.0)) == 0.0
                               and float(c.attrs.get("max_val", 1.0)) == 6.0 for c in calls)
