"""One entry point for every output format: table, json, csv, markdown, html, dot, svg.

html (page.py, needs plotly) and svg (Graphviz `dot`) are imported only when asked for."""
from __future__ import annotations

import csv
import io
import json

from tabulate import tabulate

from ..analysis.context import context
from ..core.report import Report
from ..core.tensors import format_shape
from . import text

CSV_FIELDS = ("name", "module", "target", "op", "category", "status", "inputs", "outputs", "dtype",
              "madds", "flops", "params", "mac", "mac_bytes")


def _records(report: Report, top: int | None, sort: str | None) -> list[dict]:
    rows = []
    for layer in text.select_layers(report, top, sort):
        row = layer.to_dict()
        row["inputs"] = ";".join(format_shape(s) for s in layer.inputs)
        row["outputs"] = ";".join(format_shape(s) for s in layer.outputs)
        rows.append({k: row[k] for k in CSV_FIELDS})
    return rows


def latency_summary(report: Report, profile=None) -> dict:
    """The latency estimate of `report` on `profile`, for machine-readable output: total,
    interval, the terms and what the profile is (the per-op estimates stay out)."""
    est = context(report).estimate(profile)
    low, high = est.interval()
    return {"profile": est.profile.name, "source": est.profile.source, "total_s": est.total_s,
            "interval_s": [low, high], "interval_level": est.profile.interval_level,
            "critical_path_s": est.critical_path_s, "terms": est.terms(),
            "module_calls": est.module_calls, "free_ops": est.free_ops}


def render(report: Report, fmt: str = "table", *, depth: int = 1, top: int | None = None,
           sort: str | None = None, profile=None) -> str:
    if fmt == "table":
        return text.render(report, depth=depth, top=top, sort=sort, profile=profile)
    if fmt == "json":
        if report.graph is None:
            return report.to_json()
        data = json.loads(report.to_json())
        data["latency"] = latency_summary(report, profile)
        return json.dumps(data, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_records(report, top, sort))
        return buf.getvalue()
    if fmt == "markdown":
        body = tabulate(text.layer_rows(report, top, sort), headers=text.HEADERS, tablefmt="github",
                        disable_numparse=True)
        lat = ""
        if report.graph is not None:
            est = latency_summary(report, profile)
            lat = (f"\n\nEstimated latency on {est['profile']}: {est['total_s'] * 1e3:.3g} ms"
                   + (f" ({est['interval_s'][0] * 1e3:.3g}-{est['interval_s'][1] * 1e3:.3g} ms, "
                      f"{est['interval_level']:.0%} interval)" if est["interval_level"] else
                      " (profile not measured: datasheet peaks, guessed overheads)"))
        return f"{body}\n\n```\n{text.totals_block(report)}\n```{lat}"
    if fmt == "html":
        from . import page
        return page.render(report, profile)
    if fmt in ("dot", "svg"):
        from . import dot
        return dot.render(report) if fmt == "dot" else dot.to_svg(report)
    raise ValueError(f"unknown format {fmt!r}")
