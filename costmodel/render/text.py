"""Plain-text report: the per-layer table, the module roll-up, totals and diagnostics."""
from __future__ import annotations

from tabulate import tabulate

from ..core.cost import METRIC_LABELS
from ..core.report import Report
from ..core.tensors import format_input, format_shape
from ..core.vocab import NodeStatus
from .units import human, percent

HEADERS = ("layer", "module", "op", "output", *METRIC_LABELS.values())


def select_layers(report: Report, top: int | None = None, sort: str | None = None) -> list:
    """The layers to show: sorted by `sort` (largest first, stable), then the first `top`."""
    layers = list(report.layers)
    if sort:
        layers.sort(key=lambda layer: -getattr(layer, sort))
    return layers if top is None else layers[:top]


def layer_rows(report: Report, top: int | None = None, sort: str | None = None) -> list[tuple]:
    rows = []
    for layer in select_layers(report, top, sort):
        op = layer.op if layer.status is not NodeStatus.UNSUPPORTED else f"{layer.op} (unsupported)"
        rows.append((layer.name, layer.module or "-", op,
                     ", ".join(format_shape(s) for s in layer.outputs[:2]),
                     human(layer.madds), human(layer.flops), human(layer.params), human(layer.mac),
                     human(layer.mac_bytes, binary=True)))
    return rows


def totals_block(report: Report) -> str:
    t = report.totals
    lines = [
        f"MAdds     {human(t.madds):>10}   multiply-adds of conv / linear / matmul / attention",
        f"FLOPs     {human(t.flops):>10}   2 x MAdds + every other arithmetic op",
        f"params    {human(t.params):>10}   distinct parameter elements"
        + (f" ({human(t.params_unused)} never read)" if t.params_unused else ""),
        f"MAC       {human(t.mac):>10}   memory access cost: elements read + written per op",
        f"MAC bytes {human(t.mac_bytes, binary=True):>10}",
        f"status    {t.status!s:>10}" + (f"   no formula for: {', '.join(t.unsupported)}"
                                         if t.unsupported else ""),
    ]
    train = report.train
    if train is not None:   # mode="train": the totals above are forward + backward
        f, b = train.forward, train.backward
        lines += [
            f"forward   {human(f.madds):>10} MAdds {human(f.flops):>10} FLOPs "
            f"{human(f.mac):>10} MAC",
            f"backward  {human(b.madds):>10} MAdds {human(b.flops):>10} FLOPs "
            f"{human(b.mac):>10} MAC",
            f"saved     {human(train.activation_bytes, binary=True):>10}   activations kept for "
            f"backward; {human(train.trainable_params)} trainable params",
        ]
    return "\n".join(lines)


def render(report: Report, *, depth: int = 1, top: int | None = None,
           sort: str | None = None, profile=None) -> str:
    """The whole text report; `profile` is the device profile of the latency estimate."""
    inputs = ", ".join(format_input(i.name, i.shape, i.dtype) + (" (assumed)" if i.assumed else "")
                       for i in report.inputs)
    parts = [f"{report.model}  [{inputs}]  mode={report.mode}  capture={report.capture}", ""]
    parts.append(tabulate(layer_rows(report, top, sort), headers=HEADERS, tablefmt="simple",
                          disable_numparse=True))
    parts += ["", f"by module (depth {depth})"]
    rows = [(("  " * max(r.depth - 1, 0)) + (r.key or "(model)"), r.count, human(r.madds),
             human(r.flops), human(r.params), human(r.mac), percent(r.mac, report.totals.mac))
            for r in report.by_module(depth)]
    parts.append(tabulate(rows, headers=("module", "layers", "MAdds", "FLOPs", "params", "MAC",
                                         "MAC share"), tablefmt="simple", disable_numparse=True))
    parts += ["", totals_block(report)]
    if report.diagnostics:
        parts += ["", "diagnostics"]
        parts += [f"  {d.code} {d.severity}: {d.message}" for d in report.diagnostics]
    if report.graph is not None:   # structure, latency estimate and G1-G4 need the graph
        from .guidelines import render_section
        parts += ["", render_section(report, profile)]
    return "\n".join(parts)
