"""The compact HTML view for Jupyter (`Report._repr_html_`): cards, the costliest layers and a
small chart of MAC and FLOPs shares per op category.

No script and no plotting library: notebook front-ends that strip scripts (GitHub, nbviewer,
untrusted notebooks) still show it whole, it needs nothing beyond costmodel's own dependencies,
and it stays a few kilobytes. The chart is CSS bars. `report.plot()` gives the interactive plotly
figures, `costmodel report --format html` the full page (page.py). Everything is escaped.
"""
from __future__ import annotations

from ..core.report import Report
from ..core.tensors import format_shape
from ..core.vocab import Status
from .units import escape as _e
from .units import human

_CELL = "padding:2px 8px;text-align:{align};border-bottom:1px solid #e5e7eb;white-space:nowrap"
_BAR = ("display:inline-block;height:9px;vertical-align:middle;background:{color};"
        "width:{width:.1f}px")


def _td(text: str, align: str = "left") -> str:
    return f"<td style='{_CELL.format(align=align)}'>{text}</td>"


def _cards(report: Report) -> str:
    t = report.totals
    items = (("MAdds", human(t.madds)), ("FLOPs", human(t.flops)), ("params", human(t.params)),
             ("MAC", human(t.mac)), ("MAC bytes", human(t.mac_bytes, binary=True)),
             ("status", str(t.status)))
    return "".join(
        "<div style='display:inline-block;min-width:96px;margin:4px 8px 4px 0;padding:6px 10px;"
        "border:1px solid " + ("#dc2626" if label == "status" and t.status != Status.COMPLETE
                               else "#d1d5db")
        + f";border-radius:6px'><div style='font-size:11px;color:#6b7280'>{_e(label)}</div>"
          f"<div style='font-size:18px;font-weight:600'>{_e(value)}</div></div>"
        for label, value in items)


def _category_chart(report: Report, width: int = 160) -> str:
    t = report.totals
    rows = []
    for r in report.by_operator()[:8]:
        mac = r.mac / t.mac if t.mac else 0.0
        flops = r.flops / t.flops if t.flops else 0.0
        mac_bar = _BAR.format(color='#f58518', width=width * mac)
        flops_bar = _BAR.format(color='#54a24b', width=width * flops)
        bars = (f"<span style='{mac_bar}'></span> "
                f"{100 * mac:.0f}%<br><span style='{flops_bar}'>"
                f"</span> {100 * flops:.0f}%")
        rows.append(f"<tr>{_td(_e(r.key))}{_td(bars)}</tr>")
    return ("<table style='border-collapse:collapse;font-size:12px'><thead><tr>"
            f"<th style='text-align:left'>category</th><th style='text-align:left'>"
            f"<span style='color:#f58518'>MAC</span> / <span style='color:#54a24b'>FLOPs</span> "
            f"share</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def render(report: Report, top: int = 10) -> str:
    t = report.totals
    inputs = ", ".join(f"{i.name}={format_shape(i.shape)}:{i.dtype}"
                       + (" (assumed)" if i.assumed else "") for i in report.inputs)
    total_mac = t.mac or 1
    rows = []
    for layer in sorted(report.layers, key=lambda layer: -layer.mac)[:top]:
        share = layer.mac / total_mac
        rows.append(
            "<tr>" + _td(_e(layer.name)) + _td(_e(layer.module or "-")) + _td(_e(layer.target))
            + _td(human(layer.madds), "right") + _td(human(layer.flops), "right")
            + _td(human(layer.mac), "right")
            + _td(f"<span style='{_BAR.format(color='#f58518', width=80 * share)}'></span> "
                  f"{100 * share:.1f}%") + "</tr>")
    head = "".join(f"<th style='{_CELL.format(align='left')}'>{h}</th>" for h in
                   ("layer", "module", "op", "MAdds", "FLOPs", "MAC", "MAC share"))
    warn = ""
    if t.status != Status.COMPLETE:
        warn = (f"<p style='color:#b91c1c'>partial analysis: no formula for "
                f"{_e(', '.join(t.unsupported))}; the totals are lower bounds</p>")
    diags = "".join(f"<li>{_e(d.code)} {_e(d.message)}</li>" for d in report.diagnostics)
    return (f"<div><div style='font-family:system-ui,sans-serif;font-size:13px'>"
            f"<p><b>{_e(report.model)}</b> [{_e(inputs)}] mode={_e(report.mode)} "
            f"capture={_e(report.capture)}</p>{warn}<div>{_cards(report)}</div>"
            f"<div style='display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start'>"
            f"<div><p style='margin:6px 0'><b>top {min(top, len(report.layers))} layers by MAC"
            f"</b> of {len(report.layers)}</p><table style='border-collapse:collapse;"
            f"font-size:12px'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
            f"</table></div><div><p style='margin:6px 0'><b>by op category</b></p>"
            f"{_category_chart(report)}</div></div>"
            + (f"<details><summary>{len(report.diagnostics)} diagnostics</summary>"
               f"<ul>{diags}</ul></details>" if diags else "")
            + "<p style='color:#6b7280;font-size:11px'>report.plot() for interactive charts; "
              "costmodel report --format html for the full page</p></div></div>")
