"""Budgets: parse '1.2G' / '200MiB' / 'mac=2%', and judge a report's totals against them.

Pure Python: no torch here, so the parsers can be fuzzed and the gate's logic tested alone.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..core.cost import METRIC_LABELS
from ..errors import BudgetError

BYTE_METRICS = frozenset({"mac_bytes"})


_NUMBER = re.compile(r"^(?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)(?P<unit>[a-z]*)$")
_SCALE = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def metric_key(name: str) -> str:
    """'MAC', 'mac', 'mac-bytes', 'MAC_bytes' -> the Report field name ('mac', 'mac_bytes')."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in METRIC_LABELS:
        raise BudgetError(f"unknown metric {name!r}; use one of: {', '.join(METRIC_LABELS)}")
    return key


def parse_quantity(text: str, metric: str = "mac") -> int:
    """'1.2G' -> 1_200_000_000; '200MiB' -> 209_715_200; '5e6' -> 5_000_000.

    Decimal suffixes K M G T P are powers of 1000; Ki Mi Gi Ti Pi are powers of 1024. A trailing
    'B' (bytes) is allowed for MAC bytes only, so that '--max-mac 1GB' is caught as the likely
    mix-up between MAC (elements) and MAC bytes that it is.
    """
    label = METRIC_LABELS.get(metric, metric)
    raw = text
    if not isinstance(text, str):
        if isinstance(text, bool) or not isinstance(text, (int, float)):
            raise BudgetError(f"budget for {label} must be a number like 1.2G, not {text!r}")
        text = repr(text)
    cleaned = text.strip().replace("_", "").lower()
    match = _NUMBER.match(cleaned)
    if not match:
        raise BudgetError(f"budget for {label} is not a number: {raw!r}; expected e.g. 1.2G, "
                          f"600M, 5e6{' or 200MiB' if metric in BYTE_METRICS else ''}")
    unit = match["unit"]
    is_bytes = unit.endswith("b")
    if is_bytes:
        if metric not in BYTE_METRICS:
            raise BudgetError(f"budget {raw!r} is in bytes, but {label} counts elements; "
                              f"use a plain count (e.g. 1.2G) or budget MAC bytes instead")
        unit = unit[:-1]
    binary = unit.endswith("i")
    prefix = unit[:-1] if binary else unit
    if prefix not in _SCALE or (binary and not prefix):
        raise BudgetError(f"budget for {label} has an unknown unit in {raw!r}; use K, M, G, T "
                          f"(x1000) or Ki, Mi, Gi, Ti (x1024)")
    value = float(match["num"]) * (1024 if binary else 1000) ** _SCALE[prefix]
    if not math.isfinite(value) or value >= 2 ** 63:
        raise BudgetError(f"budget for {label} is out of range: {raw!r}")
    return round(value)


def parse_percent(text: Any, what: str = "increase") -> float:
    """'2%' -> 0.02. The '%' is required: '0.02' could mean 2% or 0.02%."""
    raw = text
    if isinstance(text, str):
        cleaned = text.strip()
        if cleaned.endswith("%"):
            number = cleaned[:-1].strip()
            if re.fullmatch(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", number):
                value = float(number) / 100.0
                if math.isfinite(value):
                    return value
    raise BudgetError(f"allowed {what} {raw!r} is not a percentage; expected e.g. 2% or 0.5%")


_DURATION = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}


def parse_duration(text: Any) -> float:
    """'15ms' -> 0.015 seconds; units s, ms, us (µs). The unit is required."""
    match = re.fullmatch(r"\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(s|ms|us|µs)\s*",
                         str(text))
    value = float(match[1]) * _DURATION[match[2]] if match else float("nan")
    if not match or not math.isfinite(value) or value <= 0:
        raise BudgetError(f"latency budget {text!r} is not a duration; expected e.g. 15ms, "
                          f"800us or 0.2s")
    return value


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def latency_verdict(estimate_s: float, interval: tuple[float, float], level: float,
                    limit_s: float, profile: str, strict: bool) -> tuple[bool, str]:
    """(over, line) for a latency budget: the estimate must be within `limit_s`; with `strict`,
    the upper end of its interval too. `level` is the interval's coverage (0: not measured)."""
    low, high = interval
    value = high if strict and level else estimate_s
    over = value > limit_s
    band = f" [{_ms(low)}-{_ms(high)}, {level:.0%} interval]" if level else \
        " [no interval: uncalibrated profile]"
    what = "latency (upper end)" if strict and level else "latency"
    sign = ">" if over else "<="
    share = _signed_percent(value, limit_s) if over else f"{100 * value / limit_s:.0f}% of budget"
    return over, (f"{what} {_ms(value)} {sign} budget {_ms(limit_s)} ({share}) on {profile}"
                  f"{band}")


def parse_increase(text: str) -> dict[str, float]:
    """'mac=2%' -> {'mac': 0.02}; a bare '2%' applies to every metric."""
    if not isinstance(text, str):
        raise BudgetError(f"bad --max-increase {text!r}; expected METRIC=PERCENT, e.g. mac=2%")
    metric, sep, value = text.partition("=")
    if not sep:
        share = parse_percent(text)
        return {key: share for key in METRIC_LABELS}
    if not metric.strip():
        raise BudgetError(f"bad --max-increase {text!r}; expected METRIC=PERCENT, e.g. mac=2%")
    return {metric_key(metric): parse_percent(value, f"increase of {metric.strip()}")}


# ---- judging ---------------------------------------------------------------------------------

def distinct(value: int, limit: int, *, binary: bool = False) -> tuple[str, str]:
    """Both numbers in human units, with just enough digits that they print differently."""
    from ..render.units import human
    for digits in (3, 4, 5, 6, 8):
        a = human(value, binary=binary, digits=digits)
        b = human(limit, binary=binary, digits=digits)
        if a != b:
            return a, b
    return f"{value:,}", f"{limit:,}"


@dataclass(frozen=True)
class Finding:
    """One comparison of a metric against a limit; `over` when the limit is broken."""

    metric: str
    value: int
    limit: int
    over: bool
    source: str = "budget"          # "budget" or "baseline"
    reference: int | None = None    # the baseline's value, for relative limits
    share: float | None = None      # the allowed increase, for relative limits

    def describe(self) -> str:
        label = METRIC_LABELS[self.metric]
        binary = self.metric in BYTE_METRICS
        value, limit = distinct(self.value, self.limit, binary=binary)
        sign = ">" if self.over else "<="
        if self.source == "baseline":
            ref = distinct(self.value, self.reference or 0, binary=binary)[1]
            change = _signed_percent(self.value, self.reference or 0)
            return (f"{label} {value} {sign} baseline {ref} +{self.share * 100:g}% = {limit} "
                    f"({change} vs baseline)")
        if self.over:
            return f"{label} {value} > budget {limit} ({_signed_percent(self.value, self.limit)})"
        used = f"{100.0 * self.value / self.limit:.0f}%" if self.limit else "-"
        return f"{label} {value} <= {limit} ({used} of budget)"


def _signed_percent(value: float, reference: float) -> str:
    if reference == 0:
        return "new" if value else "+0.0%"
    change = 100.0 * (value - reference) / reference
    return f"{change:+.1f}%"


@dataclass
class Gate:
    """What one model must satisfy: absolute limits, and increases allowed over a baseline."""

    limits: dict[str, int] = field(default_factory=dict)
    increases: dict[str, float] = field(default_factory=dict)
    baseline: Mapping[str, int] | None = None   # the baseline report's totals
    strict: bool = False

    def judge(self, totals: Mapping[str, Any]) -> list[Finding]:
        findings = [Finding(m, int(totals[m]), limit, int(totals[m]) > limit)
                    for m, limit in self.limits.items()]
        if self.baseline is not None:
            for metric, share in self.increases.items():
                reference = int(self.baseline[metric])
                limit = math.floor(reference * (1.0 + share))
                findings.append(Finding(metric, int(totals[metric]), limit,
                                        int(totals[metric]) > limit, "baseline", reference, share))
        return findings
