"""Plain-text report, answers first: a header (model, input, mode, capture), the totals, the
module roll-up, the top layers by a sort key, the structure / latency / G1-G4 summaries and a
hint for the full per-layer table (`layers="all"`, the CLI's `--layers all`).

Tables fit the terminal (`COLUMNS`, else the terminal's width, else 120 columns): one `layer`
column (the module path, or `module/name` for a function the module's forward called) whose long
names are cut in the middle with an ellipsis; on a narrow terminal the MAC bytes, FLOPs and params
columns go, in that order. Names are printed with control characters escaped
(units.clean). The markdown renderer (formats.py) reuses these rows without the cut.
"""
from __future__ import annotations

import inspect
import shutil

import tabulate as _tabulate
from tabulate import tabulate

from ..core.cost import METRIC_LABELS
from ..core.report import Report
from ..core.tensors import format_input, format_shape
from ..core.vocab import Mode, NodeStatus
from .units import clean, human, middle, percent, wrap

#: the layers the default report shows, and the key they are ranked by.
DEFAULT_TOP = 10
DEFAULT_SORT = "mac"
FALLBACK_WIDTH = 120
HEADERS = ("layer", "op", "output", *METRIC_LABELS.values())
MODULE_HEADERS = ("module", "layers", "MAdds", "FLOPs", "params", "MAC", "MAC share")


def width() -> int:
    """The terminal's width: $COLUMNS, else the terminal's, else FALLBACK_WIDTH."""
    return max(shutil.get_terminal_size((FALLBACK_WIDTH, 24)).columns, 60)


def select_layers(report: Report, top: int | None = None, sort: str | None = None) -> list:
    """The layers to show: sorted by `sort` (largest first, stable), then the first `top`."""
    layers = list(report.layers)
    if sort:
        layers.sort(key=lambda layer: -getattr(layer, sort))
    return layers if top is None else layers[:top]


def layer_label(layer) -> str:
    """The module path when the layer's name only repeats it (`stages.0.0.right.0`), else
    `module/name` (a function its forward called: `stages.0.0/cat`), or the name at top level."""
    module = layer.module
    if not module:
        return layer.name
    if layer.name == module.replace(".", "_"):
        return module
    return f"{module}/{layer.name}"


def layer_rows(report: Report, top: int | None = None, sort: str | None = None) -> list[tuple]:
    """One row per shown layer (HEADERS), names escaped and never cut."""
    rows = []
    for layer in select_layers(report, top, sort):
        op = layer.op if layer.status is not NodeStatus.UNSUPPORTED else f"{layer.op} (unsupported)"
        rows.append((clean(layer_label(layer)), clean(op),
                     ", ".join(format_shape(s) for s in layer.outputs[:2]),
                     human(layer.madds), human(layer.flops), human(layer.params), human(layer.mac),
                     human(layer.mac_bytes, binary=True)))
    return rows


#: the columns given up, in this order, when the table would not fit the terminal otherwise.
DROPPABLE = ("MAC bytes", "FLOPs", "params")
MIN_NAME = 16


def fitted(rows: list[tuple], fit: int) -> tuple[tuple, list[tuple]]:
    """(headers, rows) of the layer table within `fit` columns: output shapes cut to 26, then
    long layer names cut in the middle (never below MIN_NAME), then DROPPABLE columns dropped
    as needed (json, csv and html keep everything)."""
    headers = list(HEADERS)
    body = [list(r) for r in rows]
    for row in body:
        row[2] = middle(row[2], 26)
    for drop in (None, *DROPPABLE):
        if drop is not None:
            i = headers.index(drop)
            headers.pop(i)
            for row in body:
                row.pop(i)
        widths = [max(len(h) + 2, *(len(r[i]) for r in body)) if body else len(h) + 2
                  for i, h in enumerate(headers)]   # tabulate pads a header by 2
        room = fit - sum(widths[1:]) - 2 * (len(headers) - 1)
        if room >= min(widths[0], MIN_NAME):
            break
    room = max(room, MIN_NAME)
    for row in body:
        row[0] = middle(row[0], room)
    return tuple(headers), [tuple(r) for r in body]


def module_rows(report: Report, depth: int, indent: str = "  ") -> list[tuple]:
    """The module roll-up, each module indented by its depth below the model."""
    return [((indent * max(r.depth - 1, 0)) + (clean(r.key) or "(model)"), r.count,
             human(r.madds), human(r.flops), human(r.params), human(r.mac),
             percent(r.mac, report.totals.mac)) for r in report.by_module(depth)]


_KEEP_SPACES = "preserve_whitespace" in inspect.signature(tabulate).parameters   # tabulate 0.10


def table(rows: list, headers: tuple, fmt: str = "simple") -> str:
    """tabulate, keeping the leading spaces of the module roll-up's indentation."""
    if _KEEP_SPACES:
        return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True,
                        preserve_whitespace=True)
    saved = _tabulate.PRESERVE_WHITESPACE   # older tabulate: a module-level switch
    _tabulate.PRESERVE_WHITESPACE = True
    try:
        return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)
    finally:
        _tabulate.PRESERVE_WHITESPACE = saved


def header(report: Report) -> str:
    inputs = ", ".join(format_input(clean(i.name), i.shape, i.dtype)
                       + (" (assumed)" if i.assumed else "") for i in report.inputs)
    return f"{clean(report.model)}  [{inputs}]  mode={report.mode}  capture={report.capture}"


def per_layer_note(report: Report) -> str:
    """What the per-layer columns count: forward + backward in train mode."""
    return " (per layer: forward + backward)" if report.mode == Mode.TRAIN else ""


def totals_block(report: Report) -> str:
    t = report.totals
    lines = [
        f"MAdds     {human(t.madds):>10}   multiply-adds of conv / linear / matmul / attention",
        f"FLOPs     {human(t.flops):>10}   2 x MAdds + every other arithmetic op",
        f"params    {human(t.params):>10}   distinct parameter elements"
        + (f" ({human(t.params_unused)} never read)" if t.params_unused else ""),
        f"MAC       {human(t.mac):>10}   memory access cost: elements read + written per op",
        f"MAC bytes {human(t.mac_bytes, binary=True):>10}",
        f"status    {t.status!s:>10}"
        + (f"   no formula for: {', '.join(map(clean, t.unsupported))}" if t.unsupported else ""),
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


def layers_title(report: Report, shown: int, sort: str | None, everything: bool) -> str:
    n = len(report.layers)
    label = METRIC_LABELS.get(sort or "", "")
    if everything:
        order = f", by {label}" if sort else ", in graph order"
        what = f"layers ({shown} of {n}{order})" if shown < n else f"layers (all {n}{order})"
    else:
        what = f"top {shown} of {n} layers by {label}"
    return what + per_layer_note(report)


def render(report: Report, *, depth: int = 1, top: int | None = None,
           sort: str | None = None, profile=None, layers: str = "top",
           columns: int | None = None, execution: str = "eager") -> str:
    """The text report; `profile` is the device profile of the latency estimate. `layers="top"`
    (the default) shows the `top` (default 10) layers by `sort` (default MAC) and a hint;
    `layers="all"` the full per-layer table (in graph order unless `sort`, cut at `top`)."""
    fit = columns or width()
    everything = layers == "all"
    if not everything:
        sort, top = sort or DEFAULT_SORT, top or DEFAULT_TOP
    headers, rows = fitted(layer_rows(report, top, sort), fit)
    parts = [header(report), "", totals_block(report), "", f"by module (depth {depth})",
             table(module_rows(report, depth), MODULE_HEADERS), "",
             layers_title(report, len(rows), sort, everything), table(rows, headers)]
    if report.diagnostics:
        parts += ["", "diagnostics"]
        parts += [wrap(f"  {d.code} {d.severity}: {clean(d.message)}", fit)
                  for d in report.diagnostics]
    if report.graph is not None:   # structure, latency estimate and G1-G4 need the graph
        from .guidelines import render_section
        parts += ["", render_section(report, profile, columns=fit, execution=execution)]
    if not everything:
        parts += ["", wrap("every layer: --layers all (report.layers in Python); "
                           "rank by another column: --sort madds|flops|params|mac|mac_bytes", fit)]
    return "\n".join(parts)
