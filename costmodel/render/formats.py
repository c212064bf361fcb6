"""One entry point for every output format: table, json, csv, markdown, html, dot, svg.

html (page.py, needs plotly) and svg (Graphviz `dot`) are imported only when asked for."""
from __future__ import annotations

import csv
import io
import json

from ..analysis.context import context
from ..core.cost import METRIC_LABELS
from ..core.report import Report
from ..core.tensors import format_input, format_shape
from . import text
from .units import clean, clean_md, human

CSV_FIELDS = ("name", "module", "target", "op", "category", "status", "inputs", "outputs", "dtype",
              "madds", "flops", "params", "mac", "mac_bytes", "execution", "latency_s",
              "mac_deployed", "fused_into")


def _deployed(report: Report, profile, execution: str) -> dict[str, dict]:
    """Per layer name: its estimated seconds under `execution` (a fused kernel's time on its
    producer's row, 0 on the rows fused into it), its fused kernel's MAC as deployed (on the
    producer's row) and the producer it was fused into. Empty without a graph."""
    if report.graph is None:
        return {}
    ctx = context(report)
    seconds = {op.name: op.seconds for op in ctx.estimate(profile, execution).ops}
    out = {}
    for k in ctx.fused:
        out[k.name] = {"mac_deployed": k.mac, "fused_into": ""}
        for member in k.members[1:]:
            out[member] = {"mac_deployed": 0, "fused_into": k.name}
    return {name: {"execution": execution, "latency_s": f"{seconds.get(name, 0.0):.4g}",
                   **out.get(name, {"mac_deployed": 0, "fused_into": ""})}
            for name in report.graph.nodes}


def _records(report: Report, top: int | None, sort: str | None, profile=None,
             execution: str = "eager") -> list[dict]:
    rows = []
    deployed = _deployed(report, profile, execution)
    blank = dict.fromkeys(("execution", "latency_s", "mac_deployed", "fused_into"), "")
    for layer in text.select_layers(report, top, sort):
        row = layer.to_dict()
        row["inputs"] = ";".join(format_shape(s) for s in layer.inputs)
        row["outputs"] = ";".join(format_shape(s) for s in layer.outputs)
        for key in ("name", "module", "target", "op"):   # full names, control characters escaped
            row[key] = clean(row[key]) if isinstance(row[key], str) else row[key]
        row.update(deployed.get(layer.name, blank))
        row["fused_into"] = clean(row["fused_into"])
        rows.append({k: row[k] for k in CSV_FIELDS})
    return rows


def markdown(report: Report, *, depth: int = 1, top: int | None = None, sort: str | None = None,
             layers: str = "top", profile=None, execution: str = "eager") -> str:
    """A report to paste into a pull request: a header with the model and its input, the totals,
    the module roll-up at `depth`, the top layers (or every layer with layers="all") and the
    G1-G4 findings. Names are escaped for a markdown table (`|`, control characters) and never
    cut."""
    t = report.totals
    inputs = ", ".join(format_input(i.name, i.shape, i.dtype) + (" (assumed)" if i.assumed else "")
                       for i in report.inputs)
    shown = clean(inputs).replace("`", "'")
    lines = [f"### costmodel: {clean_md(report.model)}", "",
             f"input `{shown}` · mode {report.mode} · "
             f"capture {report.capture}", ""]
    totals = [(human(t.madds), human(t.flops), human(t.params), human(t.mac),
               human(t.mac_bytes, binary=True), str(t.status)
               + (f" (no formula for: {', '.join(map(clean_md, t.unsupported))})"
                  if t.unsupported else ""))]
    lines += [text.table(totals, (*METRIC_LABELS.values(), "status"), "github"), ""]
    if report.train is not None:
        f, b = report.train.forward, report.train.backward
        lines += [f"forward {human(f.madds)} MAdds, {human(f.mac)} MAC; backward "
                  f"{human(b.madds)} MAdds, {human(b.mac)} MAC; activations kept "
                  f"{human(report.train.activation_bytes, binary=True)}", ""]
    modules = [(clean_md(r[0].replace("  ", "&nbsp;&nbsp;")) if r[0].startswith("  ")
                else clean_md(r[0]), *r[1:]) for r in text.module_rows(report, depth)]
    lines += [f"#### by module (depth {depth})", "", text.table(modules, text.MODULE_HEADERS,
                                                                "github"), ""]
    everything = layers == "all"
    if not everything:
        sort, top = sort or text.DEFAULT_SORT, top or text.DEFAULT_TOP
    rows = [(clean_md(r[0]), clean_md(r[1]), *r[2:]) for r in text.layer_rows(report, top, sort)]
    lines += [f"#### {text.layers_title(report, len(rows), sort, everything)}", "",
              text.table(rows, text.HEADERS, "github"), ""]
    if report.graph is not None:
        est = latency_summary(report, profile, execution)
        fused = execution == "fused"
        lines += [f"Estimated latency on {est['profile']}"
                  + (" (fused: the deployed graph)" if fused else "")
                  + f": {est['total_s'] * 1e3:.3g} ms"
                  + (f" ({est['interval_s'][0] * 1e3:.3g}-{est['interval_s'][1] * 1e3:.3g} ms, "
                     f"{est['interval_level']:.0%} interval)" if est["interval_level"] else
                     " (profile not measured: datasheet peaks, guessed overheads)"), ""]
        if fused:
            d = est["deployed"]
            lines += [f"MAC as deployed: {human(d['mac'])} ({human(d['mac_bytes'], binary=True)})"
                      f" against {human(d['mac_per_op'])} per op; {d['kernels']} fused kernels, "
                      f"{d['folded_batch_norms']} batch norms folded", ""]
        findings = context(report).guidelines(None, profile)
        lines += ["#### guidelines (ShuffleNet V2 G1-G4)", ""]
        from collections import Counter

        from .guidelines import SHOW_PER_CODE
        counts, shown = Counter(d.code for d in findings), Counter()
        for d in findings:
            shown[d.code] += 1
            if shown[d.code] <= SHOW_PER_CODE:
                lines.append(f"- **{d.code}** {d.severity}: {clean_md(d.message)}")
            elif shown[d.code] == SHOW_PER_CODE + 1:
                lines.append(f"- {d.code}: ... and {counts[d.code] - SHOW_PER_CODE} more like it")
        if not findings:
            lines.append("no finding above the thresholds")
        lines.append("")
    notes = [d for d in report.diagnostics if str(d.severity) != "info"]
    if notes:
        lines += ["#### diagnostics", ""]
        lines += [f"- {d.code} {d.severity}: {clean_md(d.message)}" for d in notes]
        lines.append("")
    return "\n".join(lines)


def latency_summary(report: Report, profile=None, execution: str = "eager") -> dict:
    """The latency estimate of `report` on `profile` under `execution`, for machine-readable
    output: total, interval, the terms, what the profile is, and the deployed graph's MAC next to
    MAC per op (the per-op estimates stay out)."""
    from ..analysis import fusion
    ctx = context(report)
    est = ctx.estimate(profile, execution)
    low, high = est.interval()
    return {"profile": est.profile.name, "source": est.profile.source, "execution": execution,
            "deployed": fusion.totals(ctx.fused), "total_s": est.total_s,
            "interval_s": [low, high], "interval_level": est.profile.interval_level,
            "critical_path_s": est.critical_path_s, "terms": est.terms(),
            "module_calls": est.module_calls, "free_ops": est.free_ops}


def render(report: Report, fmt: str = "table", *, depth: int = 1, top: int | None = None,
           sort: str | None = None, profile=None, layers: str = "top",
           execution: str = "eager") -> str:
    """`fmt` of `report`. table and markdown show the top layers by `sort` (or every layer with
    layers="all"); csv every layer (cut at `top`, sorted by `sort` when given); json is always
    the whole report (`to_dict()`, what `check --baseline` and `diff` read): the CLI says so when
    --top/--sort/--layers are given with it. `execution` ("eager" or "fused") is the execution
    model of the latency estimate (analysis/fusion.py)."""
    from ..analysis.fusion import check_execution
    check_execution(execution)
    if fmt == "table":
        return text.render(report, depth=depth, top=top, sort=sort, profile=profile,
                           layers=layers, execution=execution)
    if fmt == "json":
        if report.graph is None:
            return report.to_json()
        data = json.loads(report.to_json())
        data["latency"] = latency_summary(report, profile, execution)
        return json.dumps(data, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_records(report, top, sort, profile, execution))
        return buf.getvalue()
    if fmt == "markdown":
        return markdown(report, depth=depth, top=top, sort=sort, layers=layers, profile=profile,
                        execution=execution)
    if fmt == "html":
        from . import page
        return page.render(report, profile, execution=execution)
    if fmt in ("dot", "svg"):
        from . import dot
        return dot.render(report) if fmt == "dot" else dot.to_svg(report)
    raise ValueError(f"unknown format {fmt!r}")
