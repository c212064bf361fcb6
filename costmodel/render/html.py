"""A compact HTML view for Jupyter: totals cards and the costliest layers. Everything is escaped."""
from __future__ import annotations

from html import escape

from ..report import Report
from ..specs import format_shape
from .units import human


def render(report: Report, top: int = 15) -> str:
    t = report.totals
    cards = "".join(
        f"<div style='display:inline-block;margin:4px 12px 4px 0'><b>{escape(label)}</b><br>"
        f"{escape(value)}</div>"
        for label, value in (("MAdds", human(t.madds)), ("FLOPs", human(t.flops)),
                             ("params", human(t.params)), ("MAC", human(t.mac)),
                             ("MAC bytes", human(t.mac_bytes, binary=True)),
                             ("status", str(t.status))))
    inputs = ", ".join(f"{i.name}={format_shape(i.shape)}:{i.dtype}"
                       + (" (assumed)" if i.assumed else "") for i in report.inputs)
    rows = "".join(
        f"<tr><td>{escape(layer.name)}</td><td>{escape(layer.module)}</td><td>{escape(layer.op)}</td>"
        f"<td>{human(layer.madds)}</td><td>{human(layer.flops)}</td><td>{human(layer.mac)}</td></tr>"
        for layer in sorted(report.layers, key=lambda layer: -layer.mac)[:top])
    diags = "".join(f"<li>{escape(str(d.code))} {escape(d.message)}</li>" for d in report.diagnostics)
    return (f"<div><p><b>{escape(report.model)}</b> [{escape(inputs)}]</p>{cards}"
            f"<table><thead><tr><th>layer</th><th>module</th><th>op</th><th>MAdds</th><th>FLOPs</th>"
            f"<th>MAC</th></tr></thead><tbody>{rows}</tbody></table>"
            + (f"<ul>{diags}</ul>" if diags else "") + "</div>")
