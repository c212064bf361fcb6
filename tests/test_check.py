"""`costmodel check` (the budget gate), its config files, and `costmodel diff`.

Expected values are written out as the conv/linear formulas of background.md, so they do not
come from costmodel itself.
"""
from __future__ import annotations

import io
import json
import pathlib
import textwrap

import pytest

from costmodel.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent

MODEL = """\
from torch import nn
INPUT = "1x3x32x32"

def build(width: int = 16):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
"""


def madds(width: int) -> int:
    """conv 3x3: Cout*H*W * Cin*k*k; linear: in*out."""
    return width * 32 * 32 * 3 * 3 * 3 + width * 10


def params(width: int) -> int:
    return width * 3 * 3 * 3 + width * 10 + 10


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "net.py").write_text(MODEL)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_within_budget_exits_0(project, capsys):
    code, out, err = run(["check", "net.py", "--max-madds", madds(16), "--max-params",
                          params(16)], capsys)
    assert code == 0, err
    assert out.startswith("net.py  ok  MAdds ") and "100% of budget" in out


def test_over_budget_exits_1_with_one_line_per_violation(project, capsys):
    limit = madds(16) - 1000
    code, out, err = run(["check", "net.py:build", "--max-madds", limit, "--max-params", 1,
                          "--max-mac", "1G"], capsys)
    assert code == 1, err
    lines = out.strip().splitlines()
    assert len(lines) == 2, out
    pct = 100.0 * (madds(16) - limit) / limit
    assert lines[0].startswith("net.py:build  MAdds ") and f"(+{pct:.1f}%)" in lines[0]
    assert lines[1].startswith("net.py:build  params ") and "> budget 1 " in lines[1]


def test_baseline_and_max_increase(project, capsys):
    code, _, err = run(["report", "net.py", "--format", "json", "-o", "base.json"], capsys)
    assert code == 0, err
    # width 16 -> 17 grows MAdds by 1/16 = 6.25%
    code, out, _ = run(["check", "net.py", "--arg", "width=17", "--baseline", "base.json",
                        "--max-increase", "madds=7%"], capsys)
    assert code == 0, out
    code, out, _ = run(["check", "net.py", "--arg", "width=17", "--baseline", "base.json",
                        "--max-increase", "madds=6%"], capsys)
    assert code == 1
    change = 100.0 * (madds(17) - madds(16)) / madds(16)
    assert f"(+{change:.1f}% vs baseline)" in out
    # a baseline alone allows no growth in any metric
    code, out, _ = run(["check", "net.py", "--arg", "width=17", "--baseline", "base.json"], capsys)
    assert code == 1 and len(out.strip().splitlines()) == 5   # every metric grew
    code, out, _ = run(["check", "net.py", "--baseline", "base.json"], capsys)
    assert code == 0, out


def test_strict_fails_a_partial_analysis(project, capsys):
    (project / "odd.py").write_text("import torch\nfrom torch import nn\nINPUT = '2x8'\n"
                                    "class M(nn.Module):\n"
                                    "    def forward(self, x):\n"
                                    "        return torch.special.i0(x)\n"
                                    "def build():\n    return M()\n")
    code, out, _ = run(["check", "odd.py", "--max-mac", "1M"], capsys)
    assert code == 0 and "partial" in out
    code, out, _ = run(["check", "odd.py", "--max-mac", "1M", "--strict"], capsys)
    assert code == 1 and "analysis is partial" in out and "i0" in out


PYPROJECT = """\
[tool.costmodel]
strict = true

[tool.costmodel.models.small]
spec = "net.py:build"
max-madds = "{small}"

[tool.costmodel.models.wide]
spec = "net.py:build"
args = {{ width = 32 }}
input = ["1x3x32x32"]
max-madds = {wide}
max_params = "1M"
"""


def test_config_in_pyproject_checks_every_model(project, capsys):
    (project / "pyproject.toml").write_text(PYPROJECT.format(small=madds(16), wide=madds(32)))
    code, out, err = run(["check"], capsys)
    assert code == 0, out + err
    assert "2 models: 2 within budget, 0 over, 0 could not be checked" in out
    (project / "pyproject.toml").write_text(PYPROJECT.format(small=madds(16), wide=madds(32) - 1))
    code, out, _ = run(["check"], capsys)
    assert code == 1 and "1 over" in out
    # run from a sub-folder: the config is found upwards and paths stay relative to it
    (project / "sub").mkdir()
    code, out, err = run(["check", "--config", project / "pyproject.toml"], capsys)
    assert code == 1, err


def test_config_in_setup_cfg(project, capsys):
    (project / "setup.cfg").write_text(textwrap.dedent(f"""\
        [metadata]
        name = demo

        [costmodel]
        strict = false

        [costmodel:small]
        spec = net.py:build
        input = 1x3x32x32
        args =
            width = 8
        max-madds = {madds(8)}
        max-mac = 5M
        """))
    code, out, err = run(["check"], capsys)
    assert code == 0, out + err
    assert out.startswith("small (net.py:build)  ok  MAdds")
    code, out, err = run(["check", "--max-madds", madds(8) - 1], capsys)   # CLI tightens config
    assert code == 1, out + err


@pytest.mark.parametrize("body, message", [
    ("[tool.costmodel.models.a]\nspec = 'net.py'\nmax-mack = '1G'\n",
     "pyproject.toml [tool.costmodel.models.a]: unknown key 'max-mack'; did you mean 'max-mac'?"),
    ("[tool.costmodel]\nstrickt = true\n[tool.costmodel.models.a]\nspec='net.py'\nmax-mac=1\n",
     "unknown key 'strickt'"),
    ("[tool.costmodel.models.a]\nspec = 'net.py'\nmax-mac = 'lots'\n",
     "budget for MAC is not a number: 'lots'"),
    ("[tool.costmodel.models.a]\nspec = 'net.py'\n", "no budget"),
    ("[tool.costmodel.models.a]\nmax-mac = 5\n", "missing 'spec'"),
    ("[tool.costmodel.models.a]\nspec = 'net.py'\nmax-increase = {mac = '2%'}\n",
     "max-increase needs a baseline"),
    ("[tool.costmodel\n", "not valid TOML"),
])
def test_bad_config_is_one_line_exit_2(project, capsys, body, message):
    (project / "pyproject.toml").write_text(body)
    code, out, err = run(["check"], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_model_errors_do_not_hide_the_others(project, capsys):
    (project / "pyproject.toml").write_text(
        "[tool.costmodel.models.gone]\nspec = 'missing.py'\nmax-mac = 1\n"
        "[tool.costmodel.models.ok]\nspec = 'net.py'\nmax-mac = '1G'\n")
    code, out, err = run(["check"], capsys)
    assert code == 2
    assert "costmodel: error: gone (missing.py): no such file" in err
    assert "ok (net.py)  ok" in out and "1 could not be checked" in out


@pytest.mark.parametrize("argv, message", [
    (["check", "net.py"], "nothing to check"),
    (["check", "net.py", "--max-mac", "1.2Q"], "unknown unit"),
    (["check", "net.py", "--max-params", "five"], "not a number"),
    (["check", "net.py", "--max-increase", "mac=2%"], "needs --baseline"),
    (["check", "net.py", "--baseline", "nope.json"], "no such baseline report"),
    (["check", "--input", "1x3x32x32"], "need a SPEC"),
    (["check"], "no SPEC given"),
    (["check", "net.py", "--max-mac", "1G", "--frobnicate"], "unrecognized arguments"),
    (["diff", "net.py"], "required: B"),
    (["diff", "net.py", "nope.json"], "no such baseline report"),
])
def test_usage_errors_are_one_line_exit_2(project, capsys, argv, message):
    code, out, err = run(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_verbose_shows_the_traceback(project, capsys):
    code, _, err = run(["check", "missing.py", "--max-mac", "1", "--verbose"], capsys)
    assert code == 2 and "Traceback" in err and err.strip().endswith("no such file: missing.py")


def test_diff_of_two_specs_and_saved_reports(project, capsys):
    code, out, err = run(["diff", "net.py", "net.py", "--arg-b", "width=32"], capsys)
    assert code == 0, err
    change = 100.0 * (madds(32) - madds(16)) / madds(16)
    total_line = next(line for line in out.splitlines() if line.startswith("MAdds"))
    assert f"(+{change:.1f}%)" in total_line
    code, _, _ = run(["report", "net.py", "--format", "json", "-o", "a.json"], capsys)
    code, _, _ = run(["report", "net.py", "--arg", "width=32", "--format", "json", "-o",
                      "b.json"], capsys)
    code, out, err = run(["diff", "a.json", "b.json", "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["totals"]["madds"]["delta"] == madds(32) - madds(16)
    assert data["totals"]["params"]["delta"] == params(32) - params(16)
    conv = next(c for c in data["layers"] if c["op"] == "conv")
    assert conv["madds"]["delta"] == (32 - 16) * 32 * 32 * 3 * 3 * 3
    assert {c["kind"] for c in data["layers"]} == {"changed"}


def test_diff_shows_added_and_removed_layers(project, capsys):
    (project / "deeper.py").write_text(MODEL.replace(
        "nn.ReLU(),", "nn.ReLU(), nn.Conv2d(width, width, 1, bias=False), nn.ReLU(),"))
    code, out, err = run(["diff", "net.py", "deeper.py", "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    added = [c for c in data["layers"] if c["kind"] == "added"]
    assert [c["op"] for c in added] == ["conv", "relu"]
    assert added[0]["madds"]["delta"] == 16 * 16 * 32 * 32     # 1x1 conv: Cout*Cin*H*W
    assert data["totals"]["madds"]["delta"] == 16 * 16 * 32 * 32


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal(project):
    from costmodel.cli import gate as check
    from costmodel.cli.config import Target

    targets = [Target("net.py", limits={"mac": 10 ** 9}, name=f"net{i}") for i in range(3)]
    out, log, tty = io.StringIO(), io.StringIO(), _Terminal()
    assert check.run(targets, out=out, err=log) == 0
    assert log.getvalue() == ""                      # CI logs: no bar, no control characters
    assert check.run(targets, out=io.StringIO(), err=tty) == 0
    assert "2/3" in tty.getvalue() and "net2" in tty.getvalue()   # the bar, then cleared
