"""`costmodel check --max-latency TIME --device PROFILE` and `max-latency` in the config.

The profile makes every kernel cost exactly 1 ms (peaks so high the roofline is ~0, no module
call or free-op cost), so the model's estimate is its kernel count in ms: conv, ReLU, average
pooling and linear launch one kernel each (flatten is a view): 4 ms.
"""
from __future__ import annotations

import json

import pytest

from costmodel.cli import main
from costmodel.cli.budget import latency_verdict, parse_duration
from costmodel.errors import BudgetError

MODEL = """\
from torch import nn
INPUT = "1x3x32x32"

def build():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
"""
PROFILE = {"name": "ms-per-kernel", "peak_flops": 1e30, "bandwidth_bytes_per_s": 1e30,
           "overhead_s": 1e-3, "source": "test", "interval": [0.5, 1.5], "interval_level": 0.8}


@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "net.py").write_text(MODEL)
    (tmp_path / "prof.json").write_text(json.dumps(PROFILE))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("text, seconds", [("15ms", 0.015), ("800us", 8e-4), ("0.2 s", 0.2),
                                           ("1.5e1ms", 0.015)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["15", "-1ms", "0ms", "fast", "15 min"])
def test_parse_duration_refuses(text):
    with pytest.raises(BudgetError, match="not a duration"):
        parse_duration(text)


def test_verdict_names_the_profile_and_strict_uses_the_upper_end():
    over, line = latency_verdict(0.004, (0.002, 0.006), 0.8, 0.005, "here", strict=False)
    assert not over and "on here" in line and "80% of budget" in line
    over, line = latency_verdict(0.004, (0.002, 0.006), 0.8, 0.005, "here", strict=True)
    assert over and "upper end" in line and "+20.0%" in line


def test_check_max_latency(project, capsys):
    code, out, err = run(["check", "net.py:build", "--max-latency", "4.5ms", "--device",
                          "prof.json"], capsys)
    assert code == 0, out + err
    assert "latency 4 ms <= budget 4.5 ms" in out and "ms-per-kernel" in out
    code, out, _ = run(["check", "net.py:build", "--max-latency", "3.5ms", "--device",
                        "prof.json"], capsys)
    assert code == 1 and "latency 4 ms > budget 3.5 ms" in out
    # --strict: the upper end of the interval, 4 ms x 1.5 = 6 ms, must fit too
    code, out, _ = run(["check", "net.py:build", "--max-latency", "5ms", "--device", "prof.json",
                        "--strict"], capsys)
    assert code == 1 and "latency (upper end) 6 ms > budget 5 ms" in out


def test_max_latency_in_the_config(project, capsys):
    (project / "pyproject.toml").write_text(
        '[tool.costmodel]\ndevice = "prof.json"\n\n[tool.costmodel.models.net]\n'
        'spec = "net.py:build"\nmax-latency = "3ms"\n')
    code, out, _ = run(["check"], capsys)
    assert code == 1 and "latency 4 ms > budget 3 ms" in out and "ms-per-kernel" in out
    # the profile path is relative to the config file, as the other paths are
    (project / "sub").mkdir()
    code, out, _ = run(["check", "--config", project / "pyproject.toml"], capsys)
    assert code == 1 and "ms-per-kernel" in out


def test_bad_latency_budget_is_one_line_exit_2(project, capsys):
    code, out, err = run(["check", "net.py:build", "--max-latency", "15"], capsys)
    assert code == 2 and "not a duration" in err and "Traceback" not in err


def test_json_and_markdown_carry_the_latency(project, capsys):
    from costmodel.core.report import Report
    code, out, err = run(["report", "net.py:build", "--format", "json", "--device", "prof.json"],
                         capsys)
    assert code == 0, err
    data = json.loads(out)
    lat = data["latency"]
    assert lat["profile"] == "ms-per-kernel" and lat["total_s"] == pytest.approx(4e-3)
    assert lat["interval_s"] == pytest.approx([2e-3, 6e-3]) and lat["interval_level"] == 0.8
    assert sum(lat["terms"].values()) == pytest.approx(lat["total_s"])
    assert Report.from_dict(data).totals.madds > 0           # still readable as a baseline
    code, out, _ = run(["report", "net.py:build", "--format", "markdown", "--device",
                        "prof.json"], capsys)
    assert "Estimated latency on ms-per-kernel: 4 ms (2-6 ms, 80% interval)" in out


WIDE = """\
from torch import nn
INPUT = "1x3x32x32"

def build():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.ReLU(), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
"""


def test_diff_shows_the_latency_of_both(project, capsys):
    # one more ReLU: one more kernel, 4 ms -> 5 ms on the 1 ms-per-kernel profile
    (project / "wide.py").write_text(WIDE)
    code, out, err = run(["diff", "net.py:build", "wide.py:build", "--device", "prof.json"],
                         capsys)
    assert code == 0, err
    assert "latency (ms-per-kernel)" in out and "4 ms" in out and "5 ms" in out
    assert "+25.0%" in out
    code, out, _ = run(["diff", "net.py:build", "wide.py:build", "--device", "prof.json",
                        "--format", "json"], capsys)
    lat = json.loads(out)["latency"]
    assert lat["a_s"] == pytest.approx(4e-3) and lat["b_s"] == pytest.approx(5e-3)
