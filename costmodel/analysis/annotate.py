"""Annotate: a Cost (or a Diagnostic) for every node of the graph, from the formula registry.

Writes `cost`, `category`, `status` and `reason` onto each networkx node, and returns the report's
layer records. Tied parameters are counted once: at the first op that reads them.
"""
from __future__ import annotations

import networkx as nx

from ..core.cost import ZERO, total
from ..formulas import FORMULAS, cost_of
from ..core.report import CallCost, Diagnostic, Layer
from ..core.vocab import Category, Code, NodeStatus, Severity

_COMPUTE = ("call_module", "call_function", "call_method")


def _dominant(calls: list[CallCost]) -> CallCost:
    return max(calls, key=lambda c: (c.cost.madds, c.cost.flops, c.cost.mac))


def annotate(g: nx.DiGraph) -> tuple[list[Layer], list[Diagnostic]]:
    layers: list[Layer] = []
    diagnostics: list[Diagnostic] = []
    seen_params: set[int] = set()
    for name, data in g.nodes(data=True):   # insertion order is graph (execution) order
        if data["kind"] not in _COMPUTE:
            data.update(cost=ZERO, category=None, status=NodeStatus.IGNORED, reason=data["kind"])
            continue
        calls: list[CallCost] = []
        unsupported: list[str] = []
        for rec in data["calls"]:
            call = rec.call
            failed = None if rec.supported and call.op in FORMULAS else rec.name
            if failed is None:
                try:
                    cost, category = cost_of(call)
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
        if data["unrecorded"]:
            unsupported.append(data["target"])
        outputs = data["outputs"]
        if not calls and not outputs:
            data.update(cost=ZERO, category=None, status=NodeStatus.IGNORED,
                        reason="computes no tensors (Python arithmetic on sizes)")
            continue
        if len(calls) == 1:
            head = calls[0]
            cost = head.cost
        else:
            head = _dominant(calls) if calls else None
            cost = total(c.cost for c in calls)
        reason = ""
        if unsupported:
            status = NodeStatus.UNSUPPORTED
            for op in unsupported:
                diagnostics.append(Diagnostic(
                    Code.UNRECORDED_OP if op == data["target"] and data["unrecorded"]
                    else Code.UNSUPPORTED_OP, Severity.WARNING,
                    f"no formula for {op} (node '{name}'); its cost is not counted and the totals "
                    f"are partial", node=name, module=data["module"], op=op))
        elif cost == ZERO:
            status = NodeStatus.IGNORED
            reason = _reason(calls)
        else:
            status = NodeStatus.COSTED
        category = Category.UNSUPPORTED if unsupported and (head is None or head.cost == ZERO) else (
            head.category if head else Category.DATA_MOVEMENT)
        layer = Layer(
            name=name, module=data["module"], target=data["target"],
            op=(unsupported[0] if category is Category.UNSUPPORTED else head.op if head else "identity"),
            category=category, status=status,
            inputs=tuple([s.shape for s in data["inputs"]]),
            outputs=tuple([s.shape for s in outputs]),
            dtype=outputs[0].dtype if outputs else "",
            cost=cost, calls=tuple(calls), reason=reason)
        data.update(cost=cost, category=category, status=status, reason=reason)
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
