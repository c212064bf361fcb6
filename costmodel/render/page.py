"""The full HTML report: one self-contained file that opens offline.

Summary cards, per-layer cost chart, module treemap, op-category shares, roofline, the layered
graph, G1-G4 findings linked to their layers, and a sortable, filterable layer table. The charts
are plotly figures (`figures.py`); plotly.js is inlined, so nothing is fetched when the page is
viewed. The table and its sorting and filtering are plain HTML and a few lines of script.

Escaping: every user-controlled string (model name, spec and file names, module, layer and op
names, diagnostic messages) goes through `html.escape` in the HTML, and figure data is embedded
as JSON with `<`, `>` and `&` written as \\u escapes, so no string can close the script element.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

from ..analysis import latency
from ..analysis.context import context
from ..core.cost import METRIC_LABELS, METRICS
from ..core.report import Report
from ..core.tensors import format_input, format_shape
from ..core.vocab import NodeStatus, Severity, Status
from . import figures
from .units import duration, human
from .units import escape as _e


def script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element: no `</script>`, no `<!--`, no U+2028."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _figure_json(fig: Any) -> str:
    import plotly.io as pio
    return script_json(pio.to_json(fig, validate=False, pretty=False))


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs
    return get_plotlyjs()


def _inputs(report: Report) -> str:
    return ", ".join(format_input(i.name, i.shape, i.dtype) for i in report.inputs) or "-"


def _cards(report: Report, est: latency.Estimate | None, model: Any, deployed: Any = None
           ) -> str:
    t = report.totals
    cards = [
        ("MAdds", human(t.madds), "multiply-adds of conv, linear, matmul, attention"),
        ("FLOPs", human(t.flops), "2 × MAdds + every other arithmetic op"),
        ("params", human(t.params), "distinct parameter elements"
         + (f"; {human(t.params_unused)} never read" if t.params_unused else "")),
        ("MAC", human(t.mac), "memory access cost: elements read + written per op"),
        ("MAC bytes", human(t.mac_bytes, binary=True), "the same MAC, in bytes"),
    ]
    if deployed is not None:
        cards.append(("MAC as deployed", human(deployed["mac"]),
                      f"after fusion ({deployed['kernels']} fused kernels, "
                      f"{deployed['folded_batch_norms']} batch norms folded); "
                      f"{human(deployed['mac_per_op'])} per op"))
    if est is not None:
        low, high = est.interval()
        band = (f" ({duration(low)} to {duration(high)}, {est.profile.interval_level:.0%} "
                f"interval)" if est.profile.interval_level else "")
        cards.append(("est. latency", duration(est.total_s),
                      f"{est.execution} execution{band}; roofline + per-kernel cost on "
                      f"{est.profile.name}; critical path {duration(est.critical_path_s)}"))
    if model is not None:
        cards.append(("kernels", str(model.kernels),
                      f"critical path {model.critical_path_kernels}; average parallelism "
                      f"{model.parallelism:.2f}"))
    if report.train is not None:
        tr = report.train
        cards.append(("backward", human(tr.backward.flops) + " FLOPs",
                      f"forward {human(tr.forward.flops)} FLOPs; activations kept "
                      f"{human(tr.activation_bytes, binary=True)}"))
    status = str(t.status)
    cards.append(("status", status, "totals cover every op" if t.status == Status.COMPLETE
                  else "totals are lower bounds"))
    return "".join(
        f"<div class='card{' bad' if label == 'status' and status != 'complete' else ''}'>"
        f"<div class='label'>{_e(label)}</div><div class='value' data-metric='{_e(label)}'>"
        f"{_e(value)}</div><div class='note'>{_e(note)}</div></div>"
        for label, value, note in cards)


def _banners(report: Report) -> str:
    out = []
    t = report.totals
    if t.status != Status.COMPLETE:
        out.append(f"<div class='banner bad'><b>Partial analysis.</b> No formula for: "
                   f"{_e(', '.join(t.unsupported) or 'some ops')}. Every total is a lower "
                   f"bound.</div>")
    for i in report.inputs:
        if i.assumed:
            out.append(f"<div class='banner warn'><b>Input assumed:</b> {_e(i.name)} = "
                       f"{_e(format_shape(i.shape))}:{_e(i.dtype)}. Pass --input to analyse "
                       f"the size you deploy.</div>")
    return "".join(out)


def _diagnostics(report: Report) -> str:
    if not report.diagnostics:
        return ""
    items = "".join(f"<li class='sev-{_e(d.severity)}'><code>{_e(d.code)}</code> "
                    f"{_e(d.severity)}: {_e(d.message)}</li>" for d in report.diagnostics)
    counts = Counter(str(d.severity) for d in report.diagnostics)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (f"<details class='diags'><summary>Diagnostics ({_e(summary)})</summary>"
            f"<ul>{items}</ul></details>")


def _hot(report: Report, index: dict[str, int], k: int = 5) -> str:
    total = report.totals.mac or 1
    top = sorted(report.layers, key=lambda layer: -layer.mac)[:k]
    items = "".join(
        f"<li><a href='#layer-{index[layer.name]}'>{_e(layer.name)}</a> "
        f"<span class='muted'>{_e(layer.module or '(top level)')} · {_e(layer.target)}</span> "
        f"<b>{100 * layer.mac / total:.1f}%</b> of MAC</li>" for layer in top)
    return f"<div class='hot'><h3>Largest MAC</h3><ol>{items}</ol></div>"


def _findings(findings: list, index: dict[str, int]) -> str:
    if not findings:
        return "<p class='muted'>No guideline finding above the thresholds.</p>"
    counts = Counter(str(d.code) for d in findings)
    head = " · ".join(f"<code>{_e(c)}</code> × {n}" for c, n in counts.items())
    items = []
    for d in findings:
        if d.node in index:
            where = (f"<a class='to-layer' href='#layer-{index[d.node]}'>{_e(d.node)}</a>")
        elif d.module:
            where = (f"<a class='to-module' href='#layers' data-module='{_e(d.module)}'>"
                     f"{_e(d.module)}</a>")
        else:
            where = "<span class='muted'>whole model</span>"
        sev = "warn" if d.severity == Severity.WARNING else "info"
        items.append(f"<li class='finding {sev}'><code>{_e(d.code)}</code> {where}: "
                     f"{_e(d.message)}</li>")
    return f"<p>{head}</p><ul class='findings'>{''.join(items)}</ul>"


def _table(report: Report, est: latency.Estimate | None) -> str:
    seconds = est.by_name() if est is not None else {}
    total_mac = report.totals.mac or 1
    heads = [("#", "num"), ("layer", "text"), ("module", "text"), ("op", "text"),
             ("category", "text"), ("output", "text"),
             *((METRIC_LABELS[m], "num") for m in METRICS), ("MAC %", "num")]
    if est is not None:
        heads += [("est. time", "num"), ("bound", "text")]
    th = "".join(f"<th data-type='{kind}' data-col='{i}' title='click to sort'>{_e(h)}</th>"
                 for i, (h, kind) in enumerate(heads))
    rows = []
    for i, layer in enumerate(report.layers):
        op = layer.target + (" (unsupported)" if layer.status == NodeStatus.UNSUPPORTED else "")
        cells = [f"<td data-v='{i}'>{i}</td>", f"<td>{_e(layer.name)}</td>",
                 f"<td>{_e(layer.module or '-')}</td>", f"<td>{_e(op)}</td>",
                 f"<td>{_e(layer.category)}</td>",
                 f"<td>{_e(', '.join(format_shape(s) for s in layer.outputs[:2]))}</td>"]
        for m in METRICS:
            v = getattr(layer, m)
            cells.append(f"<td data-v='{v}'>{_e(human(v, binary=m == 'mac_bytes'))}</td>")
        share = 100 * layer.mac / total_mac
        cells.append(f"<td data-v='{share:.6f}'><span class='bar' style='width:"
                     f"{min(share * 4, 100):.1f}%'></span>{share:.1f}%</td>")
        if est is not None:
            op_est = seconds.get(layer.name)
            s = op_est.seconds if op_est else 0.0
            cells.append(f"<td data-v='{s:.6e}'>{_e(duration(s)) if op_est else '-'}</td>")
            cells.append(f"<td>{_e(op_est.bound) if op_est else '-'}</td>")
        cls = " class='unsupported'" if layer.status == NodeStatus.UNSUPPORTED else ""
        rows.append(f"<tr id='layer-{i}' data-name='{_e(layer.name)}' "
                    f"data-module='{_e(layer.module)}'{cls}>{''.join(cells)}</tr>")
    cats = sorted({str(layer.category) for layer in report.layers})
    options = "".join(f"<option value='{_e(c)}'>{_e(c)}</option>" for c in cats)
    return (f"<div class='controls'><input id='filter' type='search' placeholder='filter: layer, "
            f"module, op or category' size='40'> <select id='category'><option value=''>every "
            f"category</option>{options}</select> <span id='count' class='muted'></span></div>"
            f"<div class='tablewrap'><table id='layer-table'><thead><tr>{th}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def render(report: Report, profile: Any = None, *, max_nodes: int | None = None,
           execution: str = "eager") -> str:
    """The report as one self-contained HTML page (needs plotly: `pip install costmodel[html]`);
    `execution` ("eager" or "fused") is the execution model of the latency estimate."""
    figures.plotly()
    g = report.graph
    est = model = deployed = None
    findings: list = []
    figs: dict[str, Any] = {"layers": figures.layer_chart(report),
                            "modules": figures.module_treemap(report),
                            "operators": figures.operator_chart(report)}
    if g is not None:
        ctx = context(report)
        est = ctx.estimate(profile, execution)
        from ..analysis.fusion import totals
        deployed = totals(ctx.fused)
        model = ctx.model_structure
        findings = ctx.guidelines(None, est.profile)
        figs["roofline"] = figures.roofline(report, est=est)
        kw = {} if max_nodes is None else {"max_nodes": max_nodes}
        figs["graph"] = figures.graph_figure(report, est=est, **kw)
    index = {layer.name: i for i, layer in enumerate(report.layers)}
    no_graph = ("<p class='banner warn'>This report has no analysis graph (read back from JSON): "
                "the roofline, the graph and the guideline findings need the model.</p>"
                if g is None else "")
    meta = (f"input <b>{_e(_inputs(report))}</b>"
            + (" <span class='tag warn'>assumed</span>" if report.assumed_input else "")
            + f" · mode <b>{_e(report.mode)}</b> · capture <b>{_e(report.capture)}</b>"
            + (f" · device profile <b>{_e(est.profile.name)}</b>" if est is not None else "")
            + f" · {len(report.layers)} layers")

    def div(name: str, cls: str = "chart") -> str:
        return f"<div id='fig-{name}' class='{cls}'></div>" if name in figs else ""

    guidelines = ('<section id="guidelines"><h2>ShuffleNet V2 guidelines (G1-G4)</h2>'
                  f"{_findings(findings, index)}</section>" if g is not None else "")
    data = "{" + ",".join(f"{json.dumps(k)}:{_figure_json(f)}" for k, f in figs.items()) + "}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="costmodel">
<title>costmodel: {_e(report.model)}</title>
<style>{CSS}</style>
<script>{_plotly_js()}</script>
</head><body>
<header><h1>{_e(report.model)}</h1><p class="meta">{meta}</p></header>
<main>
{_banners(report)}
<section id="summary"><div class="cards">{_cards(report, est, model, deployed)}</div>
<div class="row">{_hot(report, index)}<div class="vocab"><h3>Reading the numbers</h3>
<p><b>MAC</b> is the memory access cost of ShuffleNet V2 (elements read and written), not
multiply-accumulates; <b>MAdds</b> are multiply-adds. Two nets with equal MAdds can differ in
speed through MAC, parallelism (G3) and element-wise ops (G4).</p></div></div>
{_diagnostics(report)}</section>
{no_graph}
<section id="per-layer"><h2>Cost per layer</h2>
<p class="muted">MAdds (bars) and MAC (line) of every layer in graph order. Where the line sits
far above the bars, the layer moves much more data than it computes (depthwise convs,
element-wise ops). Click a point to see its row in the table.</p>{div("layers")}</section>
<section id="hierarchy"><h2>Where the cost sits</h2><div class="two">{div("modules")}
{div("operators")}</div></section>
{f'''<section id="roofline-section"><h2>Roofline</h2><p class="muted">Each op at its arithmetic
intensity (FLOPs per MAC byte) and its estimated performance on <b>{_e(est.profile.name)}</b>.
Ops far below the roof lose their time to the fixed cost per kernel.</p>{div("roofline")}
</section>''' if "roofline" in figs else ""}
{f'''<section id="graph-section"><h2>The graph</h2><p class="muted">Squares are convolutions,
linear and pooling ops (the anchors of fragments), circles the element-wise, norm and data
movement ops around them. Drag to pan, use the slider below for the whole model, click a node
for its row.</p>{div("graph", "chart graph")}</section>''' if "graph" in figs else ""}
{guidelines}
<section id="layers"><h2>Layers</h2>{_table(report, est)}</section>
</main>
<footer>costmodel static analysis · shapes only, nothing executed · plotly.js inlined (MIT)</footer>
<script>const FIGS = {data};</script>
<script>{JS}</script>
</body></html>
"""


CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f9fafb;--accent:#4c78a8}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
header{background:#1f2937;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px;word-break:break-all}
header .meta{margin:6px 0 0;color:#d1d5db}
main{max-width:1400px;margin:0 auto;padding:16px 32px 40px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px;
margin:16px 0}
h2{font-size:17px;margin:4px 0 8px}h3{font-size:14px;margin:4px 0}
.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:10px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 12px;background:#fff}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:22px;font-weight:600;margin:2px 0}
.card .note{color:var(--muted);font-size:12px}
.card.bad{border-color:#dc2626;background:#fef2f2}
.row{display:flex;gap:24px;flex-wrap:wrap;margin-top:12px}.row>div{flex:1 1 380px}
.hot ol{margin:4px 0;padding-left:22px}
.banner{padding:10px 14px;border-radius:6px;margin:12px 0}
.banner.bad{background:#fef2f2;border:1px solid #fca5a5}
.banner.warn{background:#fffbeb;border:1px solid #fcd34d}
.tag.warn{background:#fcd34d;color:#78350f;border-radius:4px;padding:0 6px;font-size:12px}
.two{display:grid;grid-template-columns:3fr 2fr;gap:12px}
@media (max-width:1000px){.two{grid-template-columns:1fr}}
.chart{width:100%;min-height:360px}
.findings{max-height:420px;overflow:auto;padding-left:18px}
.finding.warn code{color:#b45309}
details.diags{margin-top:10px}
.controls{margin:6px 0 10px}
.controls input,.controls select{font:inherit;padding:4px 8px;border:1px solid #d1d5db;
border-radius:6px}
.tablewrap{max-height:640px;overflow:auto;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th{position:sticky;top:0;background:#f3f4f6;cursor:pointer;user-select:none;text-align:left;
padding:6px 8px;border-bottom:1px solid #d1d5db;white-space:nowrap}
th[aria-sort=descending]::after{content:" \\25BC"}th[aria-sort=ascending]::after{content:" \\25B2"}
td{padding:3px 8px;border-bottom:1px solid #f3f4f6;white-space:nowrap;position:relative}
td[data-v]{text-align:right}
td .bar{position:absolute;left:0;top:3px;bottom:3px;background:rgba(245,133,24,.25);z-index:0}
tr:target,tr.hit{background:#fef3c7}
tr.unsupported{background:#fef2f2}
footer{color:var(--muted);text-align:center;font-size:12px;padding:20px}
"""

JS = r"""
(function(){
  const config = {responsive: true, displaylogo: false, scrollZoom: false};
  const drawn = [];
  for (const [name, fig] of Object.entries(FIGS)) {
    const el = document.getElementById('fig-' + name);
    if (el) drawn.push(Plotly.newPlot(el, fig.data, fig.layout, config).then(() => el));
  }
  const table = document.getElementById('layer-table');
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const filter = document.getElementById('filter');
  const category = document.getElementById('category');
  const count = document.getElementById('count');
  function applyFilter() {
    const q = filter.value.trim().toLowerCase();
    const c = category.value;
    let shown = 0;
    for (const r of rows) {
      const ok = (!q || r.textContent.toLowerCase().includes(q)) &&
                 (!c || r.cells[4].textContent === c);
      r.hidden = !ok;
      if (ok) shown++;
    }
    count.textContent = shown + ' of ' + rows.length + ' layers';
  }
  filter.addEventListener('input', applyFilter);
  category.addEventListener('change', applyFilter);
  applyFilter();
  table.tHead.addEventListener('click', (ev) => {
    const th = ev.target.closest('th');
    if (!th) return;
    const col = +th.dataset.col, num = th.dataset.type === 'num';
    const desc = th.getAttribute('aria-sort') !== 'descending' && (num || th.getAttribute('aria-sort') === 'ascending');
    for (const h of table.tHead.rows[0].cells) h.removeAttribute('aria-sort');
    th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
    const key = (r) => num ? parseFloat(r.cells[col].dataset.v) : r.cells[col].textContent.toLowerCase();
    const sorted = rows.slice().sort((a, b) => {
      const x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (desc ? -1 : 1) || (+a.cells[0].dataset.v - +b.cells[0].dataset.v);
    });
    rows.splice(0, rows.length, ...sorted);
    body.append(...sorted);
  });
  function showRow(row) {
    if (!row) return;
    if (row.hidden) { filter.value = ''; category.value = ''; applyFilter(); }
    for (const r of body.querySelectorAll('tr.hit')) r.classList.remove('hit');
    row.classList.add('hit');
    row.scrollIntoView({block: 'center'});
  }
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest('a');
    if (!a) return;
    if (a.classList.contains('to-module')) {
      ev.preventDefault();
      filter.value = a.dataset.module; category.value = ''; applyFilter();
      document.getElementById('layers').scrollIntoView();
    } else if ((a.getAttribute('href') || '').startsWith('#layer-')) {
      ev.preventDefault();
      showRow(document.getElementById(a.getAttribute('href').slice(1)));
      history.replaceState(null, '', a.getAttribute('href'));
    }
  });
  Promise.all(drawn).then((els) => {
    for (const el of els) {
      el.on('plotly_click', (ev) => {
        const p = ev.points && ev.points[0];
        if (!p) return;
        if (el.id === 'fig-layers') showRow(document.getElementById('layer-' + p.x));
        if (el.id === 'fig-graph' && p.customdata !== undefined) {
          const row = rows.find((r) => r.dataset.name === p.customdata);
          if (row) showRow(row);
          else { filter.value = p.customdata; applyFilter(); document.getElementById('layers').scrollIntoView(); }
        }
      });
    }
    if (location.hash.startsWith('#layer-')) showRow(document.getElementById(location.hash.slice(1)));
    window.costmodelRenderMs = performance.now();
    document.body.dataset.rendered = 'true';
  }).catch((err) => { console.error(err); document.body.dataset.rendered = 'error'; });
})();
"""  # noqa: E501 - JavaScript served byte for byte; its long lines are not Python
