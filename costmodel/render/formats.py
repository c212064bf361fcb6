"""One entry point for every output format: table, json, csv, markdown, html, dot, svg.

html (page.py, needs plotly) and svg (Graphviz `dot`) are imported only when asked for."""
from __future__ import annotations

import csv
import io

from tabulate import tabulate

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


def render(report: Report, fmt: str = "table", *, depth: int = 1, top: int | None = None,
           sort: str | None = None, profile=None) -> str:
    if fmt == "table":
        return text.render(report, depth=depth, top=top, sort=sort, profile=profile)
    if fmt == "json":
        return report.to_json()
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_records(report, top, sort))
        return buf.getvalue()
    if fmt == "markdown":
        body = tabulate(text.layer_rows(report, top, sort), headers=text.HEADERS, tablefmt="github",
                        disable_numparse=True)
        return f"{body}\n\n```\n{text.totals_block(report)}\n```"
    if fmt == "html":
        from . import page
        return page.render(report, profile)
    if fmt in ("dot", "svg"):
        from . import dot
        return dot.render(report) if fmt == "dot" else dot.to_svg(report)
    raise ValueError(f"unknown format {fmt!r}")
