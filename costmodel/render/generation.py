"""Text, markdown and JSON of a generation analysis (costmodel.generation.Generation, read by its
public attributes): a per-phase table, the per-token curve at a few contexts, memory per phase and
the latency estimate when a device profile is given."""
from __future__ import annotations

import json
from typing import Any

from ..analysis.generation import intensity
from .units import duration, human


def _phases(g: Any) -> list[list[str]]:
    rows = []
    first, last = g.first_context, g.last_context
    for name, rep in (("prefill", g.prefill), (f"decode @ {first}", g.decode(first)),
                      (f"decode @ {last}", g.decode(last))):
        t = rep.totals
        rows.append([name, human(t.madds), human(t.flops), human(t.mac_bytes, binary=True),
                     f"{intensity(t.flops, t.mac_bytes):.2f}", str(t.status)])
    tot = g.totals
    rows.append([f"total ({g.new_tokens} steps)", human(tot["madds"]), human(tot["flops"]),
                 human(tot["mac_bytes"], binary=True),
                 f"{intensity(tot['flops'], tot['mac_bytes']):.2f}", g.status])
    return rows


def _curve(g: Any, curve: list[Any]) -> list[list[str]]:
    return [[str(r.context), human(r.madds), human(r.flops), human(r.mac_bytes, binary=True),
             human(r.kv_cache_bytes, binary=True)] for r in curve]


def _memory(g: Any) -> list[list[str]]:
    return [[phase, human(m["weights"], binary=True), human(m["kv_cache"], binary=True),
             human(m["activations"], binary=True), human(m["total"], binary=True)]
            for phase, m in g.peak_memory_bytes.items()]


def _latency(lat: Any) -> list[list[str]]:
    def cell(p: Any) -> str:
        text = duration(p.seconds)
        if p.interval and p.interval[0] != p.interval[1]:   # a datasheet profile has none
            text += f" [{duration(p.interval[0])}, {duration(p.interval[1])}]"
        return text
    return [["time to first token", cell(lat.ttft), lat.bound_prefill],
            ["first decode step", cell(lat.first_step), lat.bound_decode],
            ["last decode step", cell(lat.last_step), ""],
            ["decode tokens/s", _rate(lat), ""]]


def _rate(lat: Any) -> str:
    text = f"{lat.tokens_per_s:.1f}"
    if lat.tokens_per_s_interval and len(set(lat.tokens_per_s_interval)) == 2:
        low, high = lat.tokens_per_s_interval
        text += f" [{low:.1f}, {high:.1f}]"
    return f"{text} (batch {lat.batch})"


SECTIONS = (("phase", "MAdds", "FLOPs", "MAC", "FLOP/B", "status"),
            ("context", "MAdds", "FLOPs", "MAC", "KV cache"),
            ("memory", "weights", "KV cache", "activations", "peak"),
            ("latency", "estimate", "bound"))


def _table(head: tuple[str, ...], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] +
                     [fmt.format(*r) for r in rows])


def render(g: Any, fmt: str, profile: Any = None, curve: list[Any] | None = None) -> str:
    if fmt == "json":
        return json.dumps(g.to_dict(profile), indent=2)
    if fmt == "html":
        from .generation_page import render as page
        return page(g, profile)
    markdown = fmt == "markdown"
    title = (f"{g.name}: prompt {g.prompt_len}, {g.new_tokens} new tokens, batch "
             f"{g.batch}, params {human(g.params)} (active {human(g.params_active)})")
    parts = [("## " if markdown else "") + title,
             _table(SECTIONS[0], _phases(g), markdown),
             _table(SECTIONS[1], _curve(g, curve or g.curve()), markdown),
             _table(SECTIONS[2], _memory(g), markdown)]
    parts += [f"note: {note}" for note in getattr(g, "notes", ())]
    if profile is not None:
        lat = g.latency(profile)
        parts.append(f"latency on {lat.profile}:")
        parts.append(_table(SECTIONS[3], _latency(lat), markdown))
    return "\n\n".join(parts)
