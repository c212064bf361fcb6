"""The annotated graph as Graphviz DOT text, and as SVG through Graphviz's `dot` when installed.

DOT is written directly (no pydot): every node is `"name" [label="...", ...]` with each string
quoted and escaped (backslash and double quote; newlines become `\\n`), so module names with
quotes, braces or HTML cannot break the file. Blocks (structure.find_blocks, e.g. each
ShuffleNet unit) become clusters labelled with their fragments and branches; nodes are filled by
their MAC on a log scale. No torch import.
"""
from __future__ import annotations

import math
import shutil
import subprocess

from ..analysis.context import context, graph_of
from ..core.report import Report
from ..core.tensors import format_shape
from . import layout
from .units import human

#: YlOrRd, light to dark: fill colours for MAC on a log scale.
PALETTE = ("#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c",
           "#bd0026", "#800026")


def quote(text: object) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as \\n."""
    s = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s.replace("\r", "").replace("\n", "\\n") + '"'


def _fill(mac: int, lo: int, hi: int) -> str:
    """White for no MAC, else the palette step of log(mac) between log(lo) and log(hi)."""
    if mac <= 0:
        return "#ffffff"
    span = math.log(hi / lo) if hi > lo > 0 else 1.0
    k = int(math.log(max(mac, lo) / lo) / span * (len(PALETTE) - 1) + 0.5) if hi > lo else 0
    return PALETTE[min(k, len(PALETTE) - 1)]


def render(report: Report) -> str:
    g = graph_of(report)
    dag = layout.full_view(g)
    macs = [d["cost"].mac for _, d in dag.nodes(data=True) if d["cost"].mac > 0]
    lo, hi = min(macs, default=0), max(macs, default=0)
    blocks = {b.path: b for b in context(g).blocks()}
    owner: dict[str, str] = {}
    for path in blocks:
        for n, d in dag.nodes(data=True):
            if n not in owner and layout._in_module(d["module"], path):
                owner[n] = path
    lines = [f"// costmodel: {report.model}".replace("\n", " "),
             f"digraph {quote(report.model)} {{",
             "  graph [rankdir=TB, fontname=Helvetica, fontsize=10, nodesep=0.25, ranksep=0.3];",
             "  node [shape=box, style=\"rounded,filled\", fontname=Helvetica, fontsize=9];",
             "  edge [color=\"#888888\", arrowsize=0.6];"]

    def node_line(n: str, indent: str) -> str:
        d = dag.nodes[n]
        c = d["cost"]
        outs = g.nodes[n].outputs
        label = [n, d["target"] + (f" ({d['category']})" if d["category"] else "")]
        if outs:
            label.append(", ".join(format_shape(s.shape) for s in outs[:2]))
        if c.flops or c.mac:
            label.append(f"MAdds {human(c.madds)}  MAC {human(c.mac)}")
        attrs = {"label": "\n".join(label), "fillcolor": _fill(c.mac, lo, hi),
                 "tooltip": d["module"] or "(top level)", "madds": c.madds, "flops": c.flops,
                 "params": c.params, "mac": c.mac, "mac_bytes": c.mac_bytes,
                 "module": d["module"], "category": d["category"]}
        if d["kind"] in ("placeholder", "output"):
            attrs["shape"] = "oval"
        if d["status"] == "unsupported":
            attrs["color"] = "red"
        body = ", ".join(f"{k}={quote(v)}" for k, v in attrs.items())
        return f"{indent}{quote(n)} [{body}];"

    for i, (path, b) in enumerate(blocks.items()):
        lines.append(f"  subgraph {quote(f'cluster_{i}')} {{")
        label = quote(f"{path}: {b.fragments} fragments, {b.branches} branches")
        lines.append(f"    label={label};"
                     " style=\"rounded,filled\"; fillcolor=\"#eef3f8\"; color=\"#c6d4e3\";")
        lines += [node_line(n, "    ") for n in dag if owner.get(n) == path]
        lines.append("  }")
    lines += [node_line(n, "  ") for n in dag if n not in owner]
    lines += [f"  {quote(u)} -> {quote(v)};" for u, v in dag.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(report: Report, dot_text: str | None = None) -> str:
    """SVG drawn by Graphviz's `dot`; a clear error when it is not on PATH."""
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError("--format svg needs Graphviz's `dot` on PATH (apt-get install "
                           "graphviz, brew install graphviz); --format dot writes the DOT text")
    done = subprocess.run([exe, "-Tsvg"], input=dot_text or render(report), text=True,
                          capture_output=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"Graphviz dot failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout
