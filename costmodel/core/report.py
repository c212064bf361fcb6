"""The Report: frozen records of one analysis, with roll-ups and a versioned JSON form.

Pure Python: renderers, the CLI's budget check and their tests use this without importing torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .cost import METRICS, Cost, total
from .vocab import CaptureKind, Category, Code, Mode, NodeStatus, Severity, Status

SCHEMA_VERSION = "1.2"   # 1.1: mode="train" adds "train", layer "backward"; 1.2: "dtype"


class _CostFields:
    """`.madds`, `.flops`, `.params`, `.mac`, `.mac_bytes` read from `.cost`."""

    cost: Cost
    madds = property(lambda self: self.cost.madds)
    flops = property(lambda self: self.cost.flops)
    params = property(lambda self: self.cost.params)
    mac = property(lambda self: self.cost.mac)
    mac_bytes = property(lambda self: self.cost.mac_bytes)


@dataclass(frozen=True)
class Diagnostic:
    """A finding with a stable code: an unsupported op, an assumption, an unused parameter..."""

    code: Code
    severity: Severity
    message: str
    node: str | None = None
    module: str | None = None
    op: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": str(self.code), "severity": str(self.severity), "message": self.message,
                "node": self.node, "module": self.module, "op": self.op}


@dataclass(frozen=True)
class CallCost:
    """One torch-level call inside a layer (a layer such as nn.MultiheadAttention makes several)."""

    op: str
    target: str
    category: Category
    cost: Cost
    supported: bool = True
    backward: Cost | None = None             # mode="train": the part of `cost` that is backward

    def __init__(self, op: str, target: str, category: Category, cost: Cost,
                 supported: bool = True, backward: Cost | None = None) -> None:
        # the dataclass's own __init__, but with the fields written straight into __dict__: a
        # frozen dataclass calls object.__setattr__ once per field, and an analysis makes one
        # CallCost per torch call (tests/test_report.py checks it matches the fields)
        self.__dict__.update(op=op, target=target, category=category, cost=cost,
                             supported=supported, backward=backward)


@dataclass(frozen=True)
class Layer(_CostFields):
    """One graph node that computes tensors, with its cost."""

    name: str                                # graph node name
    module: str                              # qualified module path; "" at the top level
    target: str                              # "Conv2d", "torch.add", "Tensor.view", ...
    op: str                                  # formula of the dominant call ("conv", "add", ...)
    category: Category
    status: NodeStatus
    inputs: tuple[tuple[int, ...], ...]
    outputs: tuple[tuple[int, ...], ...]
    dtype: str
    cost: Cost
    calls: tuple[CallCost, ...] = ()
    reason: str = ""                         # why an ignored layer costs nothing
    backward: Cost | None = None             # mode="train": the part of `cost` that is backward
    activation_bytes: int = 0                # mode="train": tensors first kept for backward here

    def __init__(self, name: str, module: str, target: str, op: str, category: Category,
                 status: NodeStatus, inputs: tuple[tuple[int, ...], ...],
                 outputs: tuple[tuple[int, ...], ...], dtype: str, cost: Cost,
                 calls: tuple[CallCost, ...] = (), reason: str = "",
                 backward: Cost | None = None, activation_bytes: int = 0) -> None:
        # as CallCost's: one Layer per graph node, twice as fast as the frozen dataclass's own
        self.__dict__.update(name=name, module=module, target=target, op=op, category=category,
                             status=status, inputs=inputs, outputs=outputs, dtype=dtype,
                             cost=cost, calls=calls, reason=reason, backward=backward,
                             activation_bytes=activation_bytes)

    @property
    def forward(self) -> Cost:
        """The forward part of `cost` (all of it outside mode="train")."""
        if self.backward is None:
            return self.cost
        return Cost(*(getattr(self.cost, m) - getattr(self.backward, m) for m in METRICS))

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "module": self.module, "target": self.target, "op": self.op,
               "category": str(self.category), "status": str(self.status),
               "inputs": [list(s) for s in self.inputs], "outputs": [list(s) for s in self.outputs],
               "dtype": self.dtype, **self.cost.as_dict()}
        if self.reason:
            out["reason"] = self.reason
        if len(self.calls) > 1:
            out["calls"] = [{"op": c.op, "target": c.target, "category": str(c.category),
                             "supported": c.supported, **c.cost.as_dict(),
                             **({"backward": c.backward.as_dict()} if c.backward else {})}
                            for c in self.calls]
        if self.backward is not None:
            out["backward"] = self.backward.as_dict()
            out["activation_bytes"] = self.activation_bytes
        return out


@dataclass(frozen=True)
class Totals:
    """Model totals. `status` is `partial` when some op has no formula: the totals are then lower
    bounds and `unsupported` names what is missing. `params` counts every distinct parameter of
    the model, including `params_unused` ones that the traced forward never reads."""

    madds: int
    flops: int
    params: int
    mac: int
    mac_bytes: int
    status: Status = Status.COMPLETE
    params_unused: int = 0
    unsupported: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status == Status.COMPLETE and self.unsupported:
            raise ValueError(f"totals cannot be complete with unsupported ops: "
                             f"{', '.join(self.unsupported)}")

    @property
    def cost(self) -> Cost:
        return Cost(self.madds, self.flops, self.params, self.mac, self.mac_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {**{m: getattr(self, m) for m in METRICS}, "status": str(self.status),
                "params_unused": self.params_unused, "unsupported": list(self.unsupported)}


@dataclass(frozen=True)
class TrainTotals:
    """mode="train": forward and backward apart (`Report.totals` is their sum), and the activation
    memory autograd keeps for the backward pass (bytes; docs/training.md)."""

    forward: Cost
    backward: Cost
    activation_bytes: int
    trainable_params: int                    # parameter elements with requires_grad=True
    status: Status = Status.COMPLETE
    missing: tuple[str, ...] = ()            # ops whose backward has no formula

    def __post_init__(self) -> None:
        if self.status == Status.COMPLETE and self.missing:
            raise ValueError(f"training totals cannot be complete with missing backward "
                             f"formulas: {', '.join(self.missing)}")

    @property
    def total(self) -> Cost:
        return self.forward + self.backward

    def to_dict(self) -> dict[str, Any]:
        return {"forward": self.forward.as_dict(), "backward": self.backward.as_dict(),
                "total": self.total.as_dict(), "activation_bytes": self.activation_bytes,
                "trainable_params": self.trainable_params, "status": str(self.status),
                "missing": list(self.missing)}


@dataclass(frozen=True)
class InputInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    assumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "assumed": self.assumed}


@dataclass(frozen=True)
class Row(_CostFields):
    """One row of a roll-up: a module (by_module) or a category (by_operator)."""

    key: str
    depth: int
    count: int
    cost: Cost

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "depth": self.depth, "count": self.count, **self.cost.as_dict()}


@dataclass(frozen=True, repr=False)
class Report:
    """The result of costmodel.analyze(): layers, totals and diagnostics, plus the annotated cost
    graph (`graph`, a core.graph.CostGraph; None for a report read back from JSON).

    The data model computes no analysis. `guidelines` reads the G1-G4 findings from the graph's
    analysis context (analysis/context.py, which analyze() attaches to the graph; each analysis
    is computed once per graph). `str(report)` (the full text report), `_repr_html_()` and
    `plot()` import and call the pure renderers in render/ on first use; `repr(report)` is one
    cheap line."""

    model: str
    inputs: tuple[InputInfo, ...]
    mode: str
    layers: tuple[Layer, ...]
    totals: Totals
    diagnostics: tuple[Diagnostic, ...]
    capture: str = CaptureKind.FX
    graph: Any = field(default=None, compare=False, repr=False)   # core.graph.CostGraph
    schema_version: str = SCHEMA_VERSION
    train: TrainTotals | None = None        # mode="train" only
    dtype: str | None = None                # analyze(dtype=...): the dtype MAC bytes count at

    # ---- roll-ups -------------------------------------------------------------------------
    def by_module(self, depth: int | None = None) -> list[Row]:
        """Every module prefix down to `depth` (None: all), in graph order, with the cost of every
        layer under it. Top-level functions (flatten, add in forward) roll up under ''."""
        groups: dict[str, list[Cost]] = {}
        for layer in self.layers:
            parts = layer.module.split(".") if layer.module else []
            limit = len(parts) if depth is None else min(depth, len(parts))
            keys = [""] + [".".join(parts[:i]) for i in range(1, limit + 1)]
            for key in keys:
                groups.setdefault(key, []).append(layer.cost)
        rows = [Row(key, key.count(".") + 1 if key else 0, len(costs), total(costs))
                for key, costs in groups.items()]
        order = {key: i for i, key in enumerate(groups)}
        # tree order: a parent right before its children, children in first-use order
        return sorted(rows, key=lambda r: _tree_key(r.key, order))

    def by_operator(self) -> list[Row]:
        """One row per op category, most MAC first."""
        groups: dict[str, list[Cost]] = {}
        for layer in self.layers:
            calls = layer.calls or (CallCost(layer.op, layer.target, layer.category, layer.cost),)
            for call in calls:
                groups.setdefault(str(call.category), []).append(call.cost)
        rows = [Row(key, 0, len(costs), total(costs)) for key, costs in groups.items()]
        return sorted(rows, key=lambda r: -r.cost.mac)

    def unsupported(self, module: str = "") -> dict[str, int]:
        """Ops with no formula under `module` ('' = the whole model, else a module path and
        everything below it), with how many calls of each: the part of the model the totals do
        not count, as data (fvcore's `unsupported_ops`)."""
        found: dict[str, int] = {}
        for layer in self.layers:
            if module and layer.module != module and not layer.module.startswith(module + "."):
                continue
            if layer.status is not NodeStatus.UNSUPPORTED:
                continue
            missing = [c.target for c in layer.calls if not c.supported] or [layer.op]
            for op in missing:
                found[op] = found.get(op, 0) + 1
        return found

    @property
    def assumed_input(self) -> bool:
        return any(i.assumed for i in self.inputs)

    @property
    def guidelines(self) -> tuple[Diagnostic, ...]:
        """ShuffleNet V2 guideline findings (G1-G4) with the default thresholds and device
        profile, computed once by the graph's analysis context; costmodel.guidelines.check()
        takes others. Empty without a graph."""
        context = getattr(self.graph, "context", None)
        return context.guidelines() if context is not None else ()

    # ---- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "model": self.model, "mode": self.mode,
                "capture": self.capture, "inputs": [i.to_dict() for i in self.inputs],
                "totals": self.totals.to_dict(),
                "layers": [layer.to_dict() for layer in self.layers],
                "diagnostics": [d.to_dict() for d in self.diagnostics], "dtype": self.dtype,
                **({"train": self.train.to_dict()} if self.train is not None else {})}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """A report read back from `to_dict()` / `--format json` (without its graph). Accepts
        any schema of the same major version; fields it does not know are ignored."""
        version = str(data.get("schema_version", ""))
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise ValueError(f"report schema {version or '(none)'} is not readable by costmodel "
                             f"(schema {SCHEMA_VERSION})")
        t = data["totals"]
        totals = Totals(*(int(t[m]) for m in METRICS), status=_enum(Status, t.get("status")),
                        params_unused=int(t.get("params_unused", 0)),
                        unsupported=tuple(t.get("unsupported", ())))
        layers = tuple(Layer(
            name=d["name"], module=d.get("module", ""), target=d.get("target", ""),
            op=d.get("op", ""), category=_enum(Category, d.get("category")),
            status=_enum(NodeStatus, d.get("status")),
            inputs=tuple(tuple(s) for s in d.get("inputs", ())),
            outputs=tuple(tuple(s) for s in d.get("outputs", ())), dtype=d.get("dtype", ""),
            cost=Cost(*(int(d.get(m, 0)) for m in METRICS)), reason=d.get("reason", ""),
            backward=_cost(d.get("backward")), activation_bytes=int(d.get("activation_bytes", 0)))
            for d in data.get("layers", ()))
        diagnostics = tuple(Diagnostic(
            _enum(Code, d.get("code")), _enum(Severity, d.get("severity")), d.get("message", ""),
            d.get("node"), d.get("module"), d.get("op")) for d in data.get("diagnostics", ()))
        inputs = tuple(InputInfo(i["name"], tuple(i["shape"]), i.get("dtype", "float32"),
                                 bool(i.get("assumed", False))) for i in data.get("inputs", ()))
        tr = data.get("train")
        train = None if tr is None else TrainTotals(
            _cost(tr["forward"]), _cost(tr["backward"]), int(tr.get("activation_bytes", 0)),
            int(tr.get("trainable_params", 0)), _enum(Status, tr.get("status", "complete")),
            tuple(tr.get("missing", ())))
        return cls(data.get("model", "?"), inputs, _enum(Mode, data.get("mode", Mode.EVAL)), layers,
                   totals, diagnostics, _enum(CaptureKind, data.get("capture", CaptureKind.FX)),
                   train=train, dtype=data.get("dtype"))

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))

    def __str__(self) -> str:
        from ..render.text import render
        return render(self)

    def __repr__(self) -> str:
        t = self.totals
        inputs = ", ".join(f"{i.name}={'x'.join(map(str, i.shape))}:{i.dtype}" for i in self.inputs)
        return (f"<Report {self.model} [{inputs}] mode={self.mode}: MAdds={t.madds:,} "
                f"FLOPs={t.flops:,} params={t.params:,} MAC={t.mac:,} {t.status}>")

    def _repr_html_(self) -> str:
        from ..render.html import render
        return render(self)

    # ---- notebooks (optional extras: plotly, pandas) ----------------------------------------
    def plot(self, kind: str = "layers", *, metric: str = "mac", profile: Any = None) -> Any:
        """A plotly Figure to keep editing: "layers" (MAdds and MAC per layer), "modules"
        (treemap of `metric`), "operators", "roofline" or "graph" (the last two on `profile`).
        Needs plotly: pip install "costmodel[html]"."""
        from ..render.figures import plot
        return plot(self, kind, metric=metric, profile=profile)

    def to_dataframe(self) -> Any:
        """One pandas row per layer: name, module, target, op, category, status, inputs,
        outputs, dtype and the five metrics. Needs pandas: pip install "costmodel[pandas]"."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("report.to_dataframe() needs pandas: "
                              "pip install \"costmodel[pandas]\"") from None
        columns = ("name", "module", "target", "op", "category", "status", "inputs", "outputs",
                   "dtype", *METRICS)
        return pd.DataFrame(
            [(layer.name, layer.module, layer.target, layer.op, str(layer.category),
              str(layer.status), layer.inputs, layer.outputs, layer.dtype,
              *(getattr(layer, m) for m in METRICS)) for layer in self.layers],
            columns=list(columns))


def _cost(d: dict[str, Any] | None) -> Cost | None:
    return None if d is None else Cost(*(int(d.get(m, 0)) for m in METRICS))


def _enum(kind: type, value: Any) -> Any:
    """The enum member for `value`, or the plain string when a newer costmodel wrote it."""
    try:
        return kind(value)
    except ValueError:
        return value


def _tree_key(key: str, order: dict[str, int]) -> tuple[int, ...]:
    parts = key.split(".") if key else []
    return (0,) + tuple(order[".".join(parts[:i])] for i in range(1, len(parts) + 1))
