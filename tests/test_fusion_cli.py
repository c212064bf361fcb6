"""`--execution fused` on the command line and in the config, and latency in every format.

The profile makes every kernel cost exactly 1 ms (tests/test_latency_budget.py): the eager
estimate of conv, ReLU, average pooling and linear is 4 ms; fused, the ReLU joins the conv, so
3 fused kernels: 3 ms."""
from __future__ import annotations

import csv
import io
import json

import pytest

from costmodel.cli import main
from tests.test_latency_budget import MODEL, PROFILE


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


def test_check_max_latency_fused(project, capsys):
    budget = ["check", "net.py:build", "--max-latency", "3.5ms", "--device", "prof.json"]
    code, out, _ = run(budget, capsys)
    assert code == 1 and "latency 4 ms > budget 3.5 ms" in out
    code, out, err = run(budget + ["--execution", "fused"], capsys)
    assert code == 0, out + err
    assert "latency 3 ms <= budget 3.5 ms" in out and "ms-per-kernel, fused" in out


def test_execution_in_the_config(project, capsys):
    (project / "pyproject.toml").write_text(
        '[tool.costmodel]\ndevice = "prof.json"\nexecution = "fused"\n\n'
        '[tool.costmodel.models.net]\nspec = "net.py:build"\nmax-latency = "3.5ms"\n')
    code, out, err = run(["check"], capsys)
    assert code == 0 and "latency 3 ms" in out, out + err
    (project / "pyproject.toml").write_text(
        '[tool.costmodel]\nexecution = "graph"\n\n'
        '[tool.costmodel.models.net]\nspec = "net.py:build"\nmax-latency = "3.5ms"\n')
    code, out, err = run(["check"], capsys)
    assert code == 2 and "execution must be eager or fused" in err and "Traceback" not in err


def test_bad_execution_is_one_line_exit_2(project, capsys):
    code, out, err = run(["report", "net.py:build", "--execution", "graph"], capsys)
    assert code == 2 and "invalid choice: 'graph'" in err
    assert len(err.strip().splitlines()) == 1 and out == ""


def test_json_and_csv_carry_latency_and_mac_as_deployed(project, capsys):
    code, out, _ = run(["report", "net.py:build", "--device", "prof.json", "--format", "json",
                        "--execution", "fused"], capsys)
    data = json.loads(out)["latency"]
    assert code == 0 and data["execution"] == "fused"
    assert data["total_s"] == pytest.approx(3e-3)
    d = data["deployed"]
    # conv + ReLU fused: the ReLU's read and write of 16*32*32 never reach memory
    assert d["mac_per_op"] - d["mac"] == 2 * 16 * 32 * 32 and d["kernels"] == 3
    code, out, _ = run(["report", "net.py:build", "--device", "prof.json", "--format", "csv",
                        "--execution", "fused"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sum(float(r["latency_s"]) for r in rows) == pytest.approx(3e-3)
    relu = next(r for r in rows if r["category"] == "activation")
    conv = next(r for r in rows if r["category"] == "conv")
    assert relu["fused_into"] == conv["name"] and relu["mac_deployed"] == "0"
    assert int(conv["mac_deployed"]) == 3 * 32 * 32 + 16 * 3 * 9 + 16 * 32 * 32
    code, out, _ = run(["report", "net.py:build", "--device", "prof.json", "--format", "csv"],
                       capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sum(float(r["latency_s"]) for r in rows) == pytest.approx(4e-3)
    assert {r["execution"] for r in rows} == {"eager"}


def test_text_markdown_and_html_say_which_execution(project, capsys):
    pytest.importorskip("plotly")
    base = ["report", "net.py:build", "--device", "prof.json", "--execution", "fused"]
    _, out, _ = run(base, capsys)
    assert "fused (the deployed graph)" in out and "MAC as deployed" in out
    _, out, _ = run(base + ["--format", "markdown"], capsys)
    assert "(fused: the deployed graph): 3 ms" in out and "MAC as deployed" in out
    _, out, _ = run(base + ["--format", "html"], capsys)
    assert "MAC as deployed" in out and "fused execution" in out
    _, out, _ = run(["report", "net.py:build", "--device", "prof.json"], capsys)
    assert "fused" not in out and "MAC as deployed" not in out
