"""`costmodel calibrate` checks its own GEMM peak (issue 14, section 5): a peak far from a repeat
or far below a conv rate of the same run is measured again, and a warning is given when it does
not settle. The timer is monkeypatched: no timing in tests."""
from __future__ import annotations

import pytest

from costmodel.analysis import calibrate as cal
from costmodel.cli import main

GEMM_FLOPS = 2 * cal.GEMM_N ** 3


@pytest.fixture
def fake_timer(monkeypatch):
    """Every micro-benchmark but the GEMM takes 10 ms; the GEMM takes the seconds listed (the
    last one repeats). Conv rates are then 2 x (FLOPs of its cases) / (cases x 10 ms): at most
    about 20 GFLOP/s for the 1x1 convs."""
    monkeypatch.setattr(cal, "_best_seconds", lambda fn, budget: 1e-2)
    gemm: list[float] = []

    def seconds(budget):
        return gemm.pop(0) if len(gemm) > 1 else gemm[0]

    monkeypatch.setattr(cal, "_gemm_seconds", seconds)
    return gemm


def conv_rate() -> float:
    """The fastest conv kind's rate under fake_timer, from the CONVS table: its FLOPs over
    (cases x max(10 ms - 10 ms overhead, 10 ms / 2))."""
    return max(sum(cal._conv_flops(*c) for c in cases) / (len(cases) * 5e-3)
               for cases in cal.CONVS.values())


def test_a_disturbed_first_gemm_is_measured_again(fake_timer):
    fake_timer += [GEMM_FLOPS / 22e9, GEMM_FLOPS / 200e9]       # 22 then 200 GFLOP/s
    warnings: list[str] = []
    profile = cal.calibrate(0.01, "t", warnings=warnings)
    assert profile.peak_flops == pytest.approx(200e9)
    assert warnings == [] and "warning" not in profile.source


def test_a_gemm_that_never_settles_is_said(fake_timer):
    fake_timer += [GEMM_FLOPS / s for s in (22e9, 200e9, 60e9, 90e9, 30e9)]
    warnings: list[str] = []
    profile = cal.calibrate(0.01, "t", warnings=warnings)
    assert profile.peak_flops == pytest.approx(200e9)       # the fastest of the five
    assert len(warnings) == 1 and "varied from 22.0 to 200.0 GFLOP/s over 5" in warnings[0]
    assert "warning: the GEMM peak varied" in profile.source


def test_a_gemm_far_below_the_conv_rate_is_measured_again_then_said(fake_timer):
    slow = conv_rate() / cal.CONV_SPREAD / 2                  # steady, but far below the convs
    fake_timer += [GEMM_FLOPS / slow]
    warnings: list[str] = []
    profile = cal.calibrate(0.01, "t", warnings=warnings)
    assert profile.peak_flops == pytest.approx(slow)
    assert len(warnings) == 1 and "far below" in warnings[0]
    assert f"{conv_rate() / 1e9:.1f} GFLOP/s a conv reached" in warnings[0]
    assert "measured 5 times" in warnings[0]                 # 2 + RETRIES


def test_a_fast_enough_gemm_after_a_slow_one_settles(fake_timer):
    fast = conv_rate()
    fake_timer += [GEMM_FLOPS / (fast / 10), GEMM_FLOPS / fast]
    warnings: list[str] = []
    assert cal.calibrate(0.01, "t", warnings=warnings).peak_flops == pytest.approx(fast)
    assert warnings == []


def test_the_cli_prints_the_warning(fake_timer, tmp_path, capsys):
    fake_timer += [GEMM_FLOPS / s for s in (22e9, 200e9, 60e9, 90e9, 30e9)]
    code = main(["calibrate", "--name", "t", "-o", str(tmp_path / "t.json"), "--seconds", "0.01"])
    out, err = capsys.readouterr()
    assert code == 0
    assert err.startswith("costmodel: warning: the GEMM peak varied")
    assert "200.0 GFLOP/s" in out
