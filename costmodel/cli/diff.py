"""`costmodel diff A B`: what changed between two models or two saved reports.

Totals with signed percentages, then per-module and per-layer deltas of every metric. Layers are
aligned with difflib (see `align`), so an inserted block shows as added layers instead of
shifting every row after it. Pure Python: works on Report objects, with or without torch.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from ..core.cost import METRIC_LABELS, METRICS, ZERO, Cost
from ..core.report import Layer, Report
from ..core.tensors import format_input
from ..render.units import clean, clean_md, human


@dataclass(frozen=True)
class Change:
    """One row of a diff: a module, a layer or the totals, in A and in B (None: absent there)."""

    key: str
    a: Cost | None
    b: Cost | None
    detail: str = ""     # the layer's op, for layer rows
    module: str = ""     # the layer's module, for layer rows

    @property
    def kind(self) -> str:
        return "added" if self.a is None else "removed" if self.b is None else (
            "same" if self.a == self.b else "changed")

    def delta(self, metric: str) -> int:
        return getattr(self.b or ZERO, metric) - getattr(self.a or ZERO, metric)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "kind": self.kind}
        if self.detail:
            out["op"] = self.detail
            out["module"] = self.module
        for m in METRICS:
            a, b = getattr(self.a or ZERO, m), getattr(self.b or ZERO, m)
            out[m] = {"a": None if self.a is None else a, "b": None if self.b is None else b,
                      "delta": b - a, "percent": _percent(b, a)}
        return out


@dataclass(frozen=True)
class Diff:
    a: Report
    b: Report
    totals: Change
    modules: list[Change]
    layers: list[Change]
    latency: tuple[str, float, float] | None = None   # (profile, A seconds, B seconds)

    def to_dict(self) -> dict[str, Any]:
        side = lambda r: {"model": r.model, "inputs": [i.to_dict() for i in r.inputs],  # noqa: E731
                          "status": str(r.totals.status)}
        lat = {} if self.latency is None else {"latency": dict(zip(
            ("profile", "a_s", "b_s"), self.latency))}
        return {"a": side(self.a), "b": side(self.b), "totals": self.totals.to_dict(), **lat,
                "modules": [c.to_dict() for c in self.modules],
                "layers": [c.to_dict() for c in self.layers if c.kind != "same"]}


def compare(a: Report, b: Report, depth: int = 1, profile: Any = None) -> Diff:
    """The diff of A and B; with both analysed (not read back from JSON), their latency
    estimates on `profile` too."""
    totals = Change("(total)", a.totals.cost, b.totals.cost)
    lat = None
    if a.graph is not None and b.graph is not None:
        from ..analysis.context import context
        ea, eb = context(a).estimate(profile), context(b).estimate(profile)
        lat = (ea.profile.name, ea.total_s, eb.total_s)
    ra = {r.key: r.cost for r in a.by_module(depth)}
    rb = {r.key: r.cost for r in b.by_module(depth)}
    keys = list(ra) + [k for k in rb if k not in ra]
    modules = [Change(k or "(model)", ra.get(k), rb.get(k)) for k in keys]
    return Diff(a, b, totals, modules, align(a.layers, b.layers), lat)


def align(a: tuple[Layer, ...], b: tuple[Layer, ...]) -> list[Change]:
    """Pair up the layers of A and B in graph order; the unmatched ones are added or removed.

    First by (module, op type), so that a layer pairs with the same layer of the other model;
    then, inside the stretches that did not match, by op type alone, so that layers renamed by an
    insertion before them (a Sequential's index 3 -> 5) still pair up.
    """
    return _align(list(a), list(b), (lambda x: (x.module, x.target), lambda x: x.target))


def _align(a: list[Layer], b: list[Layer], keys: tuple) -> list[Change]:
    if not keys:
        return ([Change(x.name, x.cost, None, x.op, x.module) for x in a]
                + [Change(y.name, None, y.cost, y.op, y.module) for y in b])
    key, rest = keys[0], keys[1:]
    matcher = difflib.SequenceMatcher(a=[key(x) for x in a], b=[key(y) for y in b],
                                      autojunk=False)
    out: list[Change] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out += [Change(y.name, x.cost, y.cost, x.op,
                           x.module if x.module == y.module else f"{x.module} -> {y.module}")
                    for x, y in zip(a[i1:i2], b[j1:j2])]
        else:
            out += _align(a[i1:i2], b[j1:j2], rest)
    return out


def _percent(new: int, old: int) -> float | None:
    return None if old == 0 else round(100.0 * (new - old) / old, 3)


def signed(delta: int, old: int | None = None, *, binary: bool = False) -> str:
    """'+1.20M (+5.0%)'; '0' when nothing changed."""
    if delta == 0:
        return "0"
    text = ("+" if delta > 0 else "-") + human(abs(delta), binary=binary)
    if old:
        text += f" ({100.0 * delta / old:+.1f}%)"
    return text


def render(diff: Diff, fmt: str = "table", top: int | None = 20,
           sources: tuple[str, str] = ("", "")) -> str:
    """The diff as text (`table`, `markdown`) or `json`. `sources` name where A and B came from."""
    if fmt == "json":
        return json.dumps({"sources": list(sources), **diff.to_dict()}, indent=2)
    md = fmt == "markdown"
    tablefmt = "github" if md else "simple"
    name = clean_md if md else clean
    a, b = diff.a, diff.b
    if md:   # a pull-request comment: a heading, each side in code, then the delta tables
        parts = ["### costmodel diff", ""] + [
            f"- **{side}**: `{clean(src).replace('`', chr(39))}` {name(r.model)} "
            f"`{_inputs(r)}` {r.totals.status}"
            for side, src, r in (("A", sources[0], a), ("B", sources[1], b))] + [""]
    else:
        parts = [f"{side}: {clean(src) + '  ' if src else ''}{clean(r.model)} [{_inputs(r)}]  "
                 f"{r.totals.status}"
                 for side, src, r in (("A", sources[0], a), ("B", sources[1], b))] + [""]
    rows = []
    for m in METRICS:
        old, new = getattr(diff.totals.a, m), getattr(diff.totals.b, m)
        binary = m == "mac_bytes"
        rows.append((METRIC_LABELS[m], human(old, binary=binary), human(new, binary=binary),
                     signed(new - old, old, binary=binary)))
    if diff.latency is not None:
        profile, old_s, new_s = diff.latency
        change = f"{100 * (new_s - old_s) / old_s:+.1f}%" if old_s else "-"
        rows.append((f"latency ({profile})", f"{old_s * 1e3:.3g} ms", f"{new_s * 1e3:.3g} ms",
                     change))
    parts.append(tabulate(rows, headers=("total", "A", "B", "change"), tablefmt=tablefmt,
                          disable_numparse=True))

    headers = tuple(f"Δ {METRIC_LABELS[m]}" for m in METRICS)
    changed = [c for c in diff.modules if c.kind != "same"]
    parts += ["", f"{'#### ' if md else ''}by module ({len(changed)} of {len(diff.modules)} "
                  f"changed)" + ("\n" if md else "")]
    parts.append(tabulate([(name(c.key), c.kind, *_deltas(c)) for c in changed] or [("-",) * 7],
                          headers=("module", "", *headers), tablefmt=tablefmt,
                          disable_numparse=True))

    layers = [c for c in diff.layers if c.kind != "same"]
    layers.sort(key=lambda c: -abs(c.delta("mac")))
    shown = layers if top is None else layers[:top]
    parts += ["", f"{'#### ' if md else ''}layers ({len(layers)} of {len(diff.layers)} changed"
              + (f"; the {len(shown)} with the largest MAC change" if len(shown) < len(layers)
                 else "") + ")" + ("\n" if md else "")]
    parts.append(tabulate([(name(c.key), name(c.module or "-"), name(c.detail), c.kind,
                            *_deltas(c)) for c in shown]
                          or [("-",) * 9], headers=("layer", "module", "op", "", *headers),
                          tablefmt=tablefmt,
                          disable_numparse=True))
    return "\n".join(parts)


def _deltas(change: Change) -> list[str]:
    return [signed(change.delta(m), getattr(change.a, m) if change.a else None,
                   binary=m == "mac_bytes") for m in METRICS]


def _inputs(report: Report) -> str:
    return ", ".join(format_input(clean(i.name), i.shape, i.dtype) for i in report.inputs)
