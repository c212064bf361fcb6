"""The HTML page of a generation analysis (`costmodel generate --format html`): one
self-contained file that opens offline, like the report's page (page.py), whose CSS, safe JSON
embedding and inlined plotly.js it reuses.

Two charts (plotly figures, `per_token_chart` and `bytes_chart`, kept editable):
- the per-token curve: MAdds and MAC bytes of each decode step against the context length (from
  the exact closed forms, at up to CURVE_POINTS contexts), with the estimated seconds per step on
  a second axis when a device profile is given (linear between the first and last step's
  estimates, as `Generation.latency` takes it);
- the bytes breakdown: weights, KV cache and live activations at the peak of each phase
  (`Generation.peak_memory_bytes`, whose liveness rule analysis/generation.py states).

Every user-controlled string (the model's class name, notes) is HTML-escaped.
"""
from __future__ import annotations

import json
from typing import Any

from ..analysis.generation import intensity
from . import figures
from .page import CSS, _figure_json, _plotly_js
from .units import duration, human
from .units import escape as _e

CURVE_POINTS = 64
PARTS = (("weights", "#4c78a8"), ("kv_cache", "#f58518"), ("activations", "#54a24b"))


def per_token_chart(g: Any, profile: Any = None, points: int = CURVE_POINTS) -> Any:
    go = figures.plotly()
    rows = g.curve(min(points, g.new_tokens))
    x = [r.context for r in rows]
    fig = go.Figure()
    fig.add_bar(x=x, y=[r.madds for r in rows], name="MAdds", marker_color=figures.COLORS["madds"],
                hovertemplate="context %{x}<br>%{y:,} MAdds<extra></extra>")
    fig.add_scatter(x=x, y=[r.mac_bytes for r in rows], name="MAC bytes", mode="lines+markers",
                    line={"color": figures.COLORS["mac"]},
                    hovertemplate="context %{x}<br>%{y:,} MAC bytes<extra></extra>")
    extra: dict[str, Any] = {}
    if profile is not None:
        fig.add_scatter(x=x, y=[g.step_seconds(c, profile) * 1e3 for c in x], yaxis="y2",
                        name="est. ms per step", mode="lines", line={"color": "#b279a2",
                                                                      "dash": "dot"},
                        hovertemplate="context %{x}<br>%{y:.3f} ms<extra></extra>")
        extra["yaxis2"] = {"title": "ms per step", "overlaying": "y", "side": "right",
                           "rangemode": "tozero"}
    return figures._layout(fig, "Each decode step against the context length", **extra,
                           xaxis={"title": "tokens already cached"},
                           yaxis={"title": "per step", "rangemode": "tozero"},
                           legend={"orientation": "h", "y": -0.2})


def bytes_chart(g: Any) -> Any:
    go = figures.plotly()
    mem = g.peak_memory_bytes
    phases = list(mem)
    fig = go.Figure()
    for part, color in PARTS:
        fig.add_bar(x=phases, y=[mem[p][part] for p in phases], name=part.replace("_", " "),
                    marker_color=color,
                    customdata=[human(mem[p][part], binary=True) for p in phases],
                    hovertemplate="%{x}: %{customdata}<extra>" + part + "</extra>")
    return figures._layout(fig, "Bytes at the peak of each phase", barmode="stack",
                           yaxis={"title": "bytes"}, legend={"orientation": "h", "y": -0.15})


def _cards(g: Any, lat: Any) -> str:
    tot = g.totals
    last = g.last_context + 1
    cards = [("params", human(g.params), f"{human(g.params_active)} active per token"),
             ("prefill MAdds", human(g.prefill.totals.madds), f"{g.prompt_len} prompt tokens"),
             ("total MAdds", human(tot["madds"]), f"prefill + {g.new_tokens} decode steps"),
             ("total MAC", human(tot["mac_bytes"], binary=True), "bytes read and written"),
             ("KV cache", human(g.kv_cache_bytes(last), binary=True),
              f"holding {last} tokens x batch {g.batch}")]
    if lat is not None:
        cards.append(("time to first token", duration(lat.ttft.seconds),
                      f"on {lat.profile}, {lat.bound_prefill}-bound"))
        cards.append(("decode tokens/s", f"{lat.tokens_per_s:.1f}",
                      f"batch {lat.batch}, {lat.bound_decode}-bound"))
    cards.append(("status", g.status, "every op costed" if g.status == "complete"
                  else "totals are lower bounds"))
    return "".join(
        f"<div class='card{' bad' if label == 'status' and value != 'complete' else ''}'>"
        f"<div class='label'>{_e(label)}</div><div class='value'>{_e(value)}</div>"
        f"<div class='note'>{_e(note)}</div></div>" for label, value, note in cards)


def _table(head: tuple[str, ...], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, int):
            return f"<td data-v='{v}'>{_e(human(v))}</td>"
        return f"<td>{_e(v)}</td>"
    return ("<div class='tablewrap'><table><thead><tr>" + "".join(f"<th>{_e(h)}</th>"
                                                                for h in head)
            + "</tr></thead><tbody>" + "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>"
                                               for r in rows) + "</tbody></table></div>")


def _phase_rows(g: Any) -> list[list[Any]]:
    rows = []
    for name, rep in (("prefill", g.prefill), (f"decode @ {g.first_context}",
                                               g.decode(g.first_context)),
                      (f"decode @ {g.last_context}", g.decode(g.last_context))):
        t = rep.totals
        rows.append([name, t.madds, t.flops, t.mac_bytes,
                     f"{intensity(t.flops, t.mac_bytes):.2f}", str(t.status)])
    return rows


def render(g: Any, profile: Any = None) -> str:
    """The generation analysis as one self-contained HTML page (needs plotly)."""
    lat = g.latency(profile) if profile is not None else None
    figs = {"per_token": per_token_chart(g, profile), "bytes": bytes_chart(g)}
    data = "{" + ",".join(f"{json.dumps(k)}:{_figure_json(f)}" for k, f in figs.items()) + "}"
    title = f"{g.name}: generation cost"
    meta = (f"prompt <b>{g.prompt_len}</b> · <b>{g.new_tokens}</b> new tokens · batch "
            f"<b>{g.batch}</b>" + (f" · dtype <b>{_e(g.dtype)}</b>" if g.dtype else "")
            + (f" · device profile <b>{_e(lat.profile)}</b>" if lat is not None else ""))
    notes = "".join(f"<p class='banner warn'>{_e(n)}</p>" for n in g.notes)
    curve = [[r.context, r.madds, r.flops, r.mac_bytes, r.kv_cache_bytes] for r in g.curve()]
    memory = [[p, m["weights"], m["kv_cache"], m["activations"], m["total"]]
              for p, m in g.peak_memory_bytes.items()]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="costmodel">
<title>costmodel: {_e(title)}</title>
<style>{CSS}</style>
<script>{_plotly_js()}</script>
</head><body>
<header><h1>{_e(title)}</h1><p class="meta">{meta}</p></header>
<main>
{notes}
<section id="summary"><div class="cards">{_cards(g, lat)}</div></section>
<section id="phases"><h2>Phases</h2><p class="muted">The prompt pass (prefill) is
compute-bound; a decode step at small batch reads every weight and the whole KV cache for one
token, so its arithmetic intensity (FLOP/B) is low and memory sets its speed.</p>
{_table(("phase", "MAdds", "FLOPs", "MAC bytes", "FLOP/B", "status"), _phase_rows(g))}</section>
<section id="per-token"><h2>Per-token cost</h2><p class="muted">Attention grows linearly with
the tokens already cached (a sliding window caps it); everything else is the same at every
step.</p><div id='fig-per_token' class='chart'></div>
{_table(("context", "MAdds", "FLOPs", "MAC bytes", "KV cache bytes"), curve)}</section>
<section id="memory"><h2>Memory</h2><p class="muted">Weights, the KV cache and the largest set
of live activations at the peak of each phase.</p><div id='fig-bytes' class='chart'></div>
{_table(("phase", "weights", "KV cache", "activations", "peak"), memory)}</section>
</main>
<footer>costmodel static analysis · shapes only, nothing executed · plotly.js inlined (MIT)</footer>
<script>const FIGS = {data};</script>
<script>{JS}</script>
</body></html>
"""


JS = r"""
(function(){
  const config = {responsive: true, displaylogo: false, scrollZoom: false};
  for (const [name, fig] of Object.entries(FIGS)) {
    const el = document.getElementById('fig-' + name);
    if (el) Plotly.newPlot(el, fig.data, fig.layout, config);
  }
})();
"""
