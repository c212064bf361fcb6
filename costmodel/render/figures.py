"""Plotly figures of a Report: per-layer cost, module treemap, op categories, roofline, graph.

Each builder returns a `plotly.graph_objects.Figure` the user can keep editing
(`report.plot(kind)` calls them); `page.py` puts them in the HTML report. plotly is an optional
extra (`pip install "costmodel[html]"`), imported on first use only.

Every user-controlled string (module, layer and op names) is HTML-escaped before it reaches a
figure: plotly renders label and hover text as a subset of HTML, so `<b>` in a module name would
otherwise become bold (and `<a href>` a link).
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any

from ..analysis import latency
from ..analysis.context import context, graph_of
from ..core.cost import METRIC_LABELS, METRICS
from ..core.report import Report
from ..core.tensors import format_shape
from ..core.vocab import Bound
from . import layout
from .units import duration, escape, human

KINDS = ("layers", "modules", "operators", "roofline", "graph")
LABELS = {**METRIC_LABELS, "seconds": "est. time"}
COLORS = {"madds": "#4c78a8", "mac": "#f58518", "flops": "#54a24b"}
BOUND_COLORS = {Bound.COMPUTE: "#4c78a8", Bound.MEMORY: "#f58518", Bound.OVERHEAD: "#b279a2"}
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"

_e = partial(escape, quote=False)   # plotly text is not an attribute: quotes stay as they are


def plotly() -> Any:
    """plotly.graph_objects, or one clear line saying how to install it."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ImportError("the HTML report and report.plot() need plotly: "
                          "pip install \"costmodel[html]\"") from None
    return go


def _fmt(metric: str, value: float) -> str:
    if metric == "seconds":
        return duration(value)
    return human(value, binary=metric == "mac_bytes")


def _layout(fig: Any, title: str, height: int = 360, **extra: Any) -> Any:
    extra.setdefault("margin", {"l": 60, "r": 20, "t": 48, "b": 40})
    fig.update_layout(template="plotly_white", height=height, font={"family": FONT, "size": 12},
                      title={"text": title, "x": 0.01, "font": {"size": 15}}, **extra)
    return fig


# ---- per-layer cost ------------------------------------------------------------------------

def layer_chart(report: Report, log: bool = True) -> Any:
    """MAdds (bars) and MAC (line) of every layer, in graph order, on a log axis."""
    go = plotly()
    layers = report.layers
    x = list(range(len(layers)))
    hover = [f"<b>{_e(layer.name)}</b><br>{_e(layer.module or '(top level)')}<br>"
             f"{_e(layer.target)} · {_e(layer.category)}" for layer in layers]
    fig = go.Figure()
    fig.add_bar(x=x, y=[layer.madds or None for layer in layers], name="MAdds",
                marker_color=COLORS["madds"], customdata=hover,
                hovertemplate="%{customdata}<br>MAdds %{y:.3s}<extra></extra>")
    fig.add_scatter(x=x, y=[layer.mac or None for layer in layers], name="MAC (elements)",
                    mode="lines+markers", marker={"size": 3}, line={"width": 1.2}, connectgaps=True,
                    marker_color=COLORS["mac"], customdata=hover,
                    hovertemplate="%{customdata}<br>MAC %{y:.3s}<extra></extra>")
    _layout(fig, "Cost per layer, in graph order", 380, bargap=0.1,
            legend={"orientation": "h", "y": 1.08, "x": 1, "xanchor": "right"},
            hovermode="closest")
    fig.update_xaxes(title_text="layer (graph order)", rangeslider={"visible": False})
    fig.update_yaxes(type="log" if log else "linear", title_text="count", dtick=1 if log else None,
                     exponentformat="SI")
    fig.update_layout(updatemenus=[{
        "type": "buttons", "direction": "right", "x": 0, "y": 1.08, "xanchor": "left",
        "showactive": True, "active": 0 if log else 1, "pad": {"l": 0},
        "buttons": [{"label": "log", "method": "relayout",
                     "args": [{"yaxis.type": "log", "yaxis.dtick": 1}]},
                    {"label": "linear", "method": "relayout",
                     "args": [{"yaxis.type": "linear", "yaxis.dtick": None}]}]}])
    return fig


# ---- module hierarchy ----------------------------------------------------------------------

def module_treemap(report: Report, metric: str = "mac", maxdepth: int = 3) -> Any:
    """The module hierarchy as a treemap; buttons switch the metric that sizes the boxes."""
    go = plotly()
    rows = [r for r in report.by_module(None)]
    ids = [r.key or "(model)" for r in rows]
    parents = ["" if not r.key else (r.key.rsplit(".", 1)[0] if "." in r.key else "(model)")
               for r in rows]
    labels = [_e(_tail(r.key) if r.key else report.model) for r in rows]
    totals = {m: getattr(report.totals, m) for m in METRICS}

    def hover(m: str) -> list[str]:
        return [f"<b>{_e(r.key or '(model)')}</b><br>{r.count} layers<br>"
                + "<br>".join(f"{LABELS[k]} {_fmt(k, getattr(r, k))}"
                              + (f" ({100 * getattr(r, k) / totals[k]:.1f}%)" if totals[k] else "")
                              for k in ("madds", "flops", "params", "mac"))
                for r in rows]

    fig = go.Figure(go.Treemap(
        ids=[_e(i) for i in ids], parents=[_e(p) for p in parents], labels=labels,
        values=[getattr(r, metric) for r in rows], branchvalues="total", maxdepth=maxdepth,
        hovertext=hover(metric), hoverinfo="text", textinfo="label+percent root",
        marker={"colorscale": "Blues"}, root={"color": "#f3f4f6"}))
    _layout(fig, f"Where the {LABELS[metric]} sits: module hierarchy (click to zoom)", 460,
            margin={"l": 10, "r": 10, "t": 70, "b": 10})
    fig.update_layout(updatemenus=[_metric_buttons(
        [{"values": [[getattr(r, m) for r in rows]]} for m in ("mac", "madds", "flops", "params")],
        ("mac", "madds", "flops", "params"), ("mac", "madds", "flops", "params").index(metric)
        if metric in ("mac", "madds", "flops", "params") else 0)])
    return fig


def _tail(key: str) -> str:
    """The last part of a module path, with its parent's when it is a bare index ("stages.0")."""
    parts = key.split(".")
    return ".".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1]


def _metric_buttons(args: list[dict], metrics: tuple[str, ...], active: int,
                    traces: list[int] | None = None) -> dict:
    return {"type": "buttons", "direction": "right", "x": 1, "y": 1.0, "xanchor": "right",
            "yanchor": "bottom", "showactive": True, "active": active, "pad": {"l": 0},
            "buttons": [{"label": LABELS[m], "method": "restyle",
                         "args": [a] + ([traces] if traces is not None else [])}
                        for a, m in zip(args, metrics)]}


def operator_chart(report: Report) -> Any:
    """Each op category's share of MAC, FLOPs and MAdds (G4: element-wise ops are not free)."""
    go = plotly()
    rows = report.by_operator()
    t = report.totals
    fig = go.Figure()
    for metric in ("mac", "flops", "madds"):
        whole = getattr(t, metric)
        fig.add_bar(y=[_e(r.key) for r in rows],
                    x=[100 * getattr(r, metric) / whole if whole else 0 for r in rows],
                    name=LABELS[metric], orientation="h", marker_color=COLORS[metric],
                    customdata=[_fmt(metric, getattr(r, metric)) for r in rows],
                    hovertemplate=f"%{{y}}: {LABELS[metric]} %{{customdata}} "
                                  f"(%{{x:.1f}}%)<extra></extra>")
    _layout(fig, "Share per op category", 460, barmode="group",
            legend={"orientation": "h", "y": 1.06, "x": 1, "xanchor": "right"},
            margin={"l": 110, "r": 20, "t": 70, "b": 40})
    fig.update_xaxes(title_text="% of model total", ticksuffix="%")
    fig.update_yaxes(autorange="reversed")
    return fig


# ---- roofline ------------------------------------------------------------------------------

def roofline(report: Report, profile: Any = None, est: latency.Estimate | None = None) -> Any:
    """Each kernel-launching op by arithmetic intensity (FLOPs per MAC byte) against its
    estimated performance (FLOPs / estimated time), under the roofs of the device profile."""
    go = plotly()
    est = est or context(report).estimate(profile)
    prof = est.profile
    ops = [op for op in est.ops if op.flops > 0 and op.bytes > 0 and op.seconds > 0]
    fig = go.Figure()
    xs = [op.intensity for op in ops] or [1.0]
    lo, hi = min(xs) / 2, max(xs) * 2
    hi = max(hi, 2 * prof.peak_flops / prof.bandwidth_bytes_per_s)
    roofs = [("DRAM", prof.bandwidth_bytes_per_s, "#6b7280")]
    if prof.cache_bandwidth_bytes_per_s:
        roofs.append(("cache", prof.cache_bandwidth_bytes_per_s, "#9ca3af"))
    for name, bw, color in roofs:
        knee = prof.peak_flops / bw
        px = [lo] + ([knee] if lo < knee < hi else []) + [hi]
        fig.add_scatter(x=px, y=[min(prof.peak_flops, bw * i) for i in px], mode="lines",
                        name=f"roof: {name} {human(bw, binary=True)}/s, peak "
                             f"{human(prof.peak_flops)}FLOP/s",
                        line={"color": color, "dash": "dash" if name == "cache" else "solid"},
                        hoverinfo="skip")
    total = est.total_s or 1.0
    for bound in Bound:
        sel = [op for op in ops if op.bound == bound]
        if not sel:
            continue
        fig.add_scatter(
            x=[op.intensity for op in sel], y=[op.flops / op.seconds for op in sel],
            mode="markers", name=f"{bound}-bound ({len(sel)})",
            marker={"color": BOUND_COLORS[bound], "opacity": 0.75, "line": {"width": 0},
                    "size": [5 + 25 * math.sqrt(op.seconds / total) for op in sel]},
            customdata=[f"<b>{_e(op.name)}</b><br>{_e(op.module or '(top level)')} · "
                        f"{_e(op.category)}<br>est. {duration(op.seconds)} "
                        f"({100 * op.seconds / total:.1f}%), {op.kernels} kernel(s)"
                        for op in sel],
            hovertemplate="%{customdata}<br>%{x:.3g} FLOPs/byte, %{y:.3s}FLOP/s"
                          "<extra></extra>")
    skipped = len(est.ops) - len(ops)
    _layout(fig, f"Roofline on {_e(prof.name)}: estimated performance per op "
                 f"(marker area ∝ time)", 460,
            legend={"orientation": "h", "y": -0.18, "x": 0},
            margin={"l": 70, "r": 20, "t": 48, "b": 90})
    fig.update_xaxes(type="log", title_text="arithmetic intensity (FLOPs per MAC byte)",
                     dtick=1, exponentformat="SI")
    fig.update_yaxes(type="log", title_text="FLOP/s (estimated)", dtick=1, exponentformat="SI")
    if skipped:
        fig.add_annotation(text=f"{skipped} ops with no FLOPs (copies, concat) are not shown",
                           xref="paper", yref="paper", x=1, y=1.02, xanchor="right",
                           showarrow=False, font={"size": 11, "color": "#6b7280"})
    return fig


# ---- the graph -----------------------------------------------------------------------------

GRAPH_METRICS = ("mac", "madds", "flops", "params", "seconds")
ANCHOR_KINDS = {"conv", "depthwise conv", "group conv", "transposed conv", "linear", "matmul",
                "attention", "pool"}


def graph_figure(report: Report, profile: Any = None, est: latency.Estimate | None = None,
                 max_nodes: int = layout.MAX_NODES, window: int = 80) -> Any:
    """The annotated graph in a layered layout, left to right: nodes coloured by a metric (buttons
    switch it), blocks (structure.find_blocks) as shaded boxes labelled with their fragments and
    branches, a range slider for the whole model. `window` layers are shown at first."""
    go = plotly()
    g = graph_of(report)
    ctx = context(g)
    view = layout.graph_view(g, max_nodes)
    dag = view.dag
    est = est or ctx.estimate(profile)
    seconds = est.by_name()
    block_info = {b.path: b for b in ctx.blocks()} if view.depth is None else {}
    block_paths = list(block_info)
    members = {p: [n for n in dag if layout._in_module(dag.nodes[n]["module"], p)]
               for p in block_paths}
    lay = layout.layered(dag, members)
    nodes = list(dag)
    values = {m: [float(getattr(dag.nodes[n]["cost"], m)) for n in nodes] for m in METRICS}
    values["seconds"] = [sum(seconds[k].seconds for k in dag.nodes[n]["members"] if k in seconds)
                         for n in nodes]
    fig = go.Figure()
    ex, ey = [], []
    for line in lay.edges:
        for x, y in line:
            ex.append(x)
            ey.append(y)
        ex.append(None)
        ey.append(None)
    fig.add_scatter(x=ex, y=ey, mode="lines", line={"color": "#9ca3af", "width": 1},
                    hoverinfo="skip", showlegend=False, name="edges")
    hover = []
    for i, n in enumerate(nodes):
        d = dag.nodes[n]
        c = d["cost"]
        shapes = ""
        if view.depth is None and g.nodes[n].outputs:
            shapes = "<br>out " + _e(", ".join(format_shape(s.shape)
                                               for s in g.nodes[n].outputs[:2]))
        hover.append(
            f"<b>{_e(n)}</b><br>{_e(d['module'] or '(top level)')}<br>{_e(d['target'])}"
            + (f" · {_e(d['category'])}" if d["category"] else "") + shapes
            + f"<br>MAdds {human(c.madds)} · FLOPs {human(c.flops)}<br>MAC {human(c.mac)} "
              f"({human(c.mac_bytes, binary=True)}) · params {human(c.params)}"
            + (f"<br>est. {duration(values['seconds'][i])}" if values["seconds"][i] else ""))
    sizes = [13 if d["category"] in ANCHOR_KINDS or d["kind"] == "module" else
             9 if d["cost"].flops or d["cost"].mac else 6 for d in (dag.nodes[n] for n in nodes)]
    symbols = ["square" if d["category"] in ANCHOR_KINDS else
               "diamond" if d["kind"] in ("placeholder", "output") else
               "x" if d["status"] == "unsupported" else "circle"
               for d in (dag.nodes[n] for n in nodes)]

    def colour(m: str) -> dict:
        """log10 of the metric, the scale spanning the decades of the nonzero values; a node
        that costs nothing of this metric is white."""
        scale = 1e6 if m == "seconds" else 1.0     # seconds: colour by microseconds
        positive = [v * scale for v in values[m] if v > 0] or [1.0]
        lo = math.floor(math.log10(min(positive)))
        hi = max(math.ceil(math.log10(max(positive))), lo + 1)
        vals = [math.log10(v * scale) if v > 0 else None for v in values[m]]
        ticks = list(range(lo, hi + 1))
        text = [duration(10.0 ** k / 1e6) if m == "seconds" else _fmt(m, 10 ** k) for k in ticks]
        return {"marker.color": [[lo if v is None else v for v in vals]],
                "marker.cmin": lo, "marker.cmax": hi,
                "marker.colorbar.title.text": LABELS[m],
                "marker.colorbar.tickvals": [ticks], "marker.colorbar.ticktext": [text]}

    first = colour("mac")
    fig.add_scatter(
        x=[lay.pos[n][0] for n in nodes], y=[lay.pos[n][1] for n in nodes],
        mode="markers+text", text=[_short(g, n) if view.depth is None else "" for n in nodes],
        textposition="bottom center", textfont={"size": 9, "color": "#4b5563"},
        name="nodes", showlegend=False, hovertext=hover, hoverinfo="text",
        customdata=nodes,   # data for the page's click handler, never rendered
        marker={"size": sizes, "symbol": symbols, "color": first["marker.color"][0],
                "colorscale": [[0, "#ffffff"], [0.02, "#ffffcc"], [0.5, "#fd8d3c"],
                               [1, "#800026"]],
                "cmin": first["marker.cmin"], "cmax": first["marker.cmax"],
                "line": {"width": 0.6, "color": "#374151"},
                "colorbar": {"title": {"text": "MAC"},
                             "tickvals": first["marker.colorbar.tickvals"][0],
                             "ticktext": first["marker.colorbar.ticktext"][0],
                             "thickness": 12, "len": 0.8}})
    y0, y1 = lay.extent
    shapes, notes = [], []
    for k, (path, (bx0, bx1, by0, by1)) in enumerate(lay.blocks.items()):
        info = block_info.get(path)
        shapes.append({"type": "rect", "x0": bx0 - 0.45, "x1": bx1 + 0.45, "y0": by0 - 0.4,
                       "y1": by1 + 0.4, "layer": "below", "line": {"width": 0},
                       "fillcolor": "rgba(76,120,168,0.09)"})
        if info is not None:
            detail = (f"{info.fragments} fragments, {info.branches} "
                      f"branch{'es' if info.branches != 1 else ''}")
            notes.append({"x": (bx0 + bx1) / 2, "y": y1 + 0.45 + 0.7 * (k % 2),
                          "yanchor": "bottom", "showarrow": False,   # staggered: no overlap
                          "font": {"size": 10, "color": "#374151"},
                          "text": f"{_e(path)}<br>{detail}",
                          "hovertext": f"block {_e(path)}: {detail}, {info.kernels} kernels, "
                                       f"{info.serial_kernels} in series"})
    title = ("The graph: layered, left to right; nodes coloured by the chosen metric (log), "
             "blocks shaded with their fragments (G3)")
    if view.depth is not None:
        title = (f"The graph, collapsed to modules at depth {view.depth}: {view.total_nodes} nodes "
                 f"are more than {max_nodes} to draw one by one")
    height = int(min(760, max(300, 220 + 48 * (y1 - y0 + 1))))
    _layout(fig, title, height, shapes=shapes, annotations=notes, dragmode="pan",
            margin={"l": 20, "r": 20, "t": 80, "b": 20}, hovermode="closest")
    # the x axis stays "visible" with nothing drawn: plotly.js 4.1 fails to draw a range slider
    # on a hidden axis ("reading 'size'")
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, showline=False,
                     range=[-1, min(lay.layers, window)],
                     rangeslider={"visible": True, "thickness": 0.12})
    fig.update_yaxes(visible=False, range=[y0 - 0.8, y1 + (2.3 if notes else 1.0)],
                     fixedrange=True)
    fig.update_layout(updatemenus=[_metric_buttons(
        [colour(m) for m in GRAPH_METRICS], GRAPH_METRICS, 0, [1])])
    return fig


def _short(g: Any, name: str) -> str:
    """A few characters for an anchor node, as the papers label their figures: "1x1", "3x3 dw",
    "3x3 g4", "fc", "pool"; "" for the others."""
    node = g.nodes[name]
    category = str(node.category or "")
    if category not in ANCHOR_KINDS:
        return ""
    for rec in node.calls:
        if rec.call.op == "conv":
            weight = rec.call.t("weight")
            groups = rec.call.attr("groups", 1)
            kernel = "x".join(str(k) for k in weight.shape[2:]) if weight is not None else "?"
            tag = " dw" if category == "depthwise conv" else f" g{groups}" if groups > 1 else ""
            return kernel + tag
    return {"linear": "fc", "pool": "pool", "matmul": "mm", "attention": "attn"}.get(
        category, category[:4])


def plot(report: Report, kind: str = "layers", *, metric: str = "mac", profile: Any = None) -> Any:
    """The figure `kind` (one of KINDS) of `report`."""
    if kind == "layers":
        return layer_chart(report)
    if kind == "modules":
        return module_treemap(report, metric)
    if kind == "operators":
        return operator_chart(report)
    if kind == "roofline":
        return roofline(report, profile)
    if kind == "graph":
        return graph_figure(report, profile)
    raise ValueError(f"unknown plot kind {kind!r}; use one of {', '.join(KINDS)}")
