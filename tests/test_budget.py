"""Budget parsing and judging: exact values, and fuzzing that proves only documented errors
escape."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.cli.budget import BudgetError, Gate, parse_increase, parse_percent, parse_quantity
from costmodel.cli.config import ConfigError, parse_arg
from costmodel.core.tensors import parse_input
from costmodel.errors import InputSpecError


@pytest.mark.parametrize("text, metric, expected", [
    ("1.2G", "mac", 1_200_000_000),
    ("600M", "madds", 600_000_000),
    ("5m", "params", 5_000_000),
    ("2.5k", "flops", 2_500),
    ("5e6", "mac", 5_000_000),
    ("1_000", "mac", 1_000),
    (" 42 ", "mac", 42),
    (".5G", "mac", 500_000_000),
    ("200MiB", "mac_bytes", 200 * 1024 ** 2),
    ("1GB", "mac_bytes", 1_000_000_000),
    ("3Ki", "params", 3 * 1024),
    ("64B", "mac_bytes", 64),
    (7, "mac", 7),
    (2.5e6, "mac", 2_500_000),
])
def test_quantities(text, metric, expected):
    assert parse_quantity(text, metric) == expected


@pytest.mark.parametrize("text, metric, message", [
    ("abc", "mac", "not a number"),
    ("", "mac", "not a number"),
    ("-5M", "mac", "not a number"),
    ("1.2.3G", "mac", "not a number"),
    ("nan", "mac", "not a number"),
    (float("nan"), "mac", "not a number"),
    ("inf", "mac", "not a number"),
    ("1.2GB", "mac", "counts elements"),
    ("5X", "params", "unknown unit"),
    ("1e400", "mac", "out of range"),
    ("i", "mac", "not a number"),
    (True, "mac", "must be a number"),
    ([1], "mac", "must be a number"),
])
def test_bad_quantities(text, metric, message):
    with pytest.raises(BudgetError, match=message):
        parse_quantity(text, metric)


def test_increases():
    assert parse_increase("mac=2%") == {"mac": 0.02}
    assert parse_increase("MAC-bytes = 0.5%") == {"mac_bytes": 0.005}
    assert parse_increase("10%") == {m: 0.1 for m in ("madds", "flops", "params", "mac",
                                                      "mac_bytes")}
    for bad, message in (("mac=2", "not a percentage"), ("latency=2%", "unknown metric"),
                         ("=2%", "expected METRIC=PERCENT"), ("mac=%", "not a percentage"),
                         ("mac=-1%", "not a percentage")):
        with pytest.raises(BudgetError, match=message):
            parse_increase(bad)
    assert parse_percent("150%") == 1.5


def test_gate_judges_absolute_and_relative_limits():
    totals = {"madds": 100, "flops": 210, "params": 50, "mac": 1310, "mac_bytes": 5240}
    gate = Gate(limits={"mac": 1200, "params": 50})
    findings = {f.metric: f for f in gate.judge(totals)}
    assert findings["mac"].over and not findings["params"].over   # equal to the budget is fine
    assert findings["mac"].describe() == "MAC 1.31K > budget 1.20K (+9.2%)"  # (1310-1200)/1200
    assert findings["params"].describe() == "params 50 <= 50 (100% of budget)"

    base = {"madds": 100, "flops": 200, "params": 50, "mac": 1000, "mac_bytes": 4000}
    gate = Gate(increases={"flops": 0.05, "mac": 0.5}, baseline=base)
    findings = {f.metric: f for f in gate.judge(totals)}
    assert findings["flops"].limit == 210 and not findings["flops"].over   # 200 * 1.05 = 210
    assert findings["mac"].limit == 1500 and not findings["mac"].over
    gate = Gate(increases={"flops": 0.04}, baseline=base)
    (flops,) = gate.judge(totals)
    assert flops.over and flops.limit == 208
    assert flops.describe() == "FLOPs 210 > baseline 200 +4% = 208 (+5.0% vs baseline)"


def test_close_values_get_enough_digits_to_differ():
    gate = Gate(limits={"mac": 1_200_000_000})
    (finding,) = gate.judge({"mac": 1_200_400_000})
    assert finding.describe() == "MAC 1.2004G > budget 1.2000G (+0.0%)"


# ---- fuzzing: the parsers raise their documented error and nothing else --------------------

text = st.one_of(st.text(max_size=30), st.from_regex(r"[0-9.eE+\-_ ]{0,12}[kKmMgGtTpPiIbB%]{0,3}",
                                                      fullmatch=True))


@settings(max_examples=400, deadline=None)
@given(text, st.sampled_from(["madds", "flops", "params", "mac", "mac_bytes"]))
def test_fuzz_quantity(raw, metric):
    try:
        value = parse_quantity(raw, metric)
    except BudgetError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(value, int) and value >= 0


@settings(max_examples=400, deadline=None)
@given(st.one_of(text, st.from_regex(r"[a-z_\-]{0,10}=?[0-9.]{0,5}%?", fullmatch=True)))
def test_fuzz_increase(raw):
    try:
        out = parse_increase(raw)
    except BudgetError as exc:
        assert "\n" not in str(exc)
    else:
        assert out and all(v >= 0 for v in out.values())


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=40),
                 st.from_regex(r"([a-z_]{1,6}=)?[0-9x]{0,12}(:[a-z0-9]{0,8})?", fullmatch=True)))
def test_fuzz_input(raw):
    try:
        name, shape, dtype = parse_input(raw)
    except InputSpecError as exc:
        assert "\n" not in str(exc)
    else:
        assert shape and all(isinstance(d, int) and d >= 1 for d in shape)
        assert name is None or name.isidentifier()


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=40),
                 st.from_regex(r"[a-z_]{0,6}=[\[\](){}'\"0-9a-z.,: ]{0,14}", fullmatch=True)))
def test_fuzz_arg(raw):
    try:
        key, _ = parse_arg(raw)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert key.isidentifier()
