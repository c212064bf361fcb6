"""Issue 14: the gate never says "pass" when it did not look, machine-readable output stays
machine-readable whatever the model prints, and the loader handles ordinary projects.

Expected costs are the conv formula written out (background.md), never costmodel's output."""
from __future__ import annotations

import csv
import io
import json
import sys

import pytest

from costmodel.cli import main

NET = """\
from torch import nn
INPUT = "1x3x8x8"

def build(width: int = 4):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.ReLU())
"""


def conv_madds(width: int = 4, hw: int = 8) -> int:
    return width * hw * hw * 3 * 3 * 3


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "net.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---- 1. user code cannot end or hijack the run ----------------------------------------------

EXITS = {
    "import exit 0": "import sys\nsys.exit(0)\n" + NET,
    "argv guard": "import sys\nif len(sys.argv) < 2:\n    sys.exit('usage: bad.py DATA')\n" + NET,
    "builder exit": NET + "\ndef build_exit():\n    raise SystemExit(0)\n",
    "forward exit": NET + "\nclass M(nn.Module):\n    def forward(self, x):\n"
                    "        raise SystemExit(0)\n\ndef build_exit():\n    return M()\n",
    "generator exit": NET + "\ndef build_exit():\n    raise GeneratorExit('odd')\n",
}


@pytest.mark.parametrize("case", sorted(EXITS))
def test_user_code_that_exits_is_an_error_and_the_run_goes_on(project, capsys, case):
    (project / "bad.py").write_text(EXITS[case])
    spec = "bad.py:build_exit" if "build_exit" in EXITS[case] else "bad.py"
    (project / "pyproject.toml").write_text(
        f"[tool.costmodel.models.bad]\nspec = '{spec}'\nmax-madds = '1G'\n"
        f"[tool.costmodel.models.good]\nspec = 'net.py'\nmax-madds = {conv_madds()}\n")
    code, out, err = run(["check"], capsys)
    assert code == 2, (out, err)
    assert "costmodel: error: bad (" in err and err.count("costmodel: error") == 1, err
    assert "good (net.py)  ok" in out and "1 could not be checked" in out, out


def test_module_level_argparse_does_not_read_costmodels_options(project, capsys):
    (project / "script.py").write_text(
        "import argparse, sys\nparser = argparse.ArgumentParser()\n"
        "parser.add_argument('--epochs', type=int, default=3)\nARGS = parser.parse_args()\n"
        "SEEN = list(sys.argv)\n" + NET)
    code, out, err = run(["check", "script.py", "--max-madds", conv_madds()], capsys)
    assert code == 0, err
    assert sys.argv[0] != "script.py"   # restored afterwards
    mod = sys.modules["_costmodel_user_script"]
    assert mod.SEEN == ["script.py"] and mod.ARGS.epochs == 3


PRINTS = NET.replace("from torch import nn\n",
                     "from torch import nn\nprint('import, | \"x\"')\n") + """
class Loud(nn.Module):
    def __init__(self):
        super().__init__()
        print('builder {"not": json')
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)

    def forward(self, x):
        print('forward,1,2')
        return self.conv(x)

def build_loud():
    return Loud()
"""


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown"])
def test_machine_readable_output_parses_whatever_the_model_prints(project, capsys, fmt):
    (project / "loud.py").write_text(PRINTS)
    code, out, err = run(["report", "loud.py:build_loud", "--format", fmt], capsys)
    assert code == 0, err
    assert "import, |" in err and "builder {" in err and "forward,1,2" in err
    assert "import" not in out.split("\n")[0] and "forward,1,2" not in out
    if fmt == "json":
        assert json.loads(out)["totals"]["madds"] == conv_madds()
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert sum(int(r["madds"]) for r in rows) == conv_madds()
    else:
        assert out.lstrip().startswith(("#", "|")), out[:200]


def test_the_builder_runs_once_when_it_fails(project, capsys):
    (project / "counted.py").write_text(
        "import os\nfrom torch import nn\n"
        "def build():\n    print('building')\n    raise ValueError('width must be > 0')\n")
    code, out, err = run(["report", "counted.py"], capsys)
    assert code == 2 and err.count("building") == 1, err
    assert "width must be > 0" in err and out == ""


def test_the_builder_runs_once_when_it_succeeds(project, capsys):
    (project / "counted.py").write_text(NET.replace("def build(width: int = 4):\n",
                                                    "def build(width: int = 4):\n"
                                                    "    print('building')\n"))
    code, out, err = run(["report", "counted.py", "--format", "json"], capsys)
    assert code == 0 and err.count("building") == 1, err


def test_a_builder_that_needs_real_tensors_still_builds(project, capsys):
    (project / "real.py").write_text(NET.replace(
        "    return nn.Sequential(", "    assert float(nn.Linear(2, 2).weight.sum().item()) == "
        "float(nn.Linear(2, 2).weight.sum().item()) or True\n    return nn.Sequential("))
    code, out, err = run(["report", "real.py", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["totals"]["madds"] == conv_madds()


# ---- baselines that do not compare like with like --------------------------------------------

def save(capsys, path, *extra):
    code, out, err = run(["report", "net.py", "--format", "json", "-o", path, *extra], capsys)
    assert code == 0, err


@pytest.mark.parametrize("saved, checked, named", [
    (["--mode", "train"], [], "mode train vs eval"),
    (["--dtype", "float16"], [], "--dtype float16 vs (none)"),
    (["--input", "1x3x16x16"], [], "inputs input=1x3x16x16:float32 vs input=1x3x8x8:float32"),
    (["--input", "2x3x8x8"], [], "inputs input=2x3x8x8:float32 vs input=1x3x8x8:float32"),
])
def test_a_baseline_measured_differently_is_refused(project, capsys, saved, checked, named):
    save(capsys, "base.json", *saved)
    code, out, err = run(["check", "net.py", "--baseline", "base.json", *checked], capsys)
    assert code == 2 and err.count("\n") == 1, (out, err)
    assert "does not compare like with like" in err and "--allow-baseline-mismatch" in err
    assert named in err, err
    code, out, err = run(["check", "net.py", "--baseline", "base.json",
                          "--allow-baseline-mismatch"], capsys)
    assert code in (0, 1) and "measured differently" in out, (out, err)


@pytest.mark.parametrize("value, message", [
    (-5, "-5"), (float("nan"), "nan"), (float("inf"), "inf"), ("12", "not a number")])
def test_negative_or_non_finite_baseline_values_are_refused(project, capsys, value, message):
    save(capsys, "base.json")
    data = json.loads((project / "base.json").read_text())
    data["totals"]["mac"] = value
    (project / "base.json").write_text(json.dumps(data))
    code, out, err = run(["check", "net.py", "--baseline", "base.json"], capsys)
    assert code == 2 and err.count("\n") == 1 and "totals.mac" in err and message in err, err


def test_a_baseline_of_another_schema_major_is_refused_naming_both(project, capsys):
    save(capsys, "base.json")
    data = json.loads((project / "base.json").read_text())
    data["schema_version"] = "2.0"
    (project / "base.json").write_text(json.dumps(data))
    code, out, err = run(["check", "net.py", "--baseline", "base.json"], capsys)
    assert code == 2 and err.count("\n") == 1 and "2.0" in err and "1." in err, err


def test_an_unchanged_baseline_passes(project, capsys):
    save(capsys, "base.json")
    code, out, err = run(["check", "net.py", "--baseline", "base.json"], capsys)
    assert code == 0 and "net.py  ok" in out, (out, err)


# ---- an assumed input is said; configured names -----------------------------------------------

def test_an_assumed_input_is_said_and_strict_fails_on_it(project, capsys):
    (project / "noinput.py").write_text(NET.replace('INPUT = "1x3x8x8"\n', ""))
    madds = conv_madds(hw=224)    # inferred from Conv2d(3, ...): 1x3x224x224
    code, out, err = run(["check", "noinput.py", "--max-madds", madds], capsys)
    assert code == 0 and "CM003" in out and "1x3x224x224" in out, out
    code, out, err = run(["check", "noinput.py", "--max-madds", madds, "--strict"], capsys)
    assert code == 1 and "CM003" in out and "--strict fails" in out, out


@pytest.mark.parametrize("config, body", [
    ("pyproject.toml", "[tool.costmodel.models.narrow]\nspec = 'net.py'\nargs = {{ width = 4 }}\n"
                       "max-madds = {a}\n[tool.costmodel.models.wide]\nspec = 'net.py'\n"
                       "args = {{ width = 8 }}\nmax-madds = {b}\n"),
    ("setup.cfg", "[costmodel:narrow]\nspec = net.py\nargs = width = 4\nmax-madds = {a}\n"
                  "[costmodel:wide]\nspec = net.py\nargs = width = 8\nmax-madds = {b}\n"),
])
def test_check_prints_the_configured_names(project, capsys, config, body):
    (project / config).write_text(body.format(a=conv_madds(4), b=conv_madds(8) - 1))
    code, out, err = run(["check"], capsys)
    assert code == 1, (out, err)
    assert "narrow (net.py)  ok" in out and "wide (net.py)  MAdds" in out, out


# ---- 2. the loader handles ordinary projects ---------------------------------------------------

def test_a_file_is_a_real_module_so_dataclasses_work(project, capsys):
    (project / "cfgnet.py").write_text(
        "from __future__ import annotations\nfrom dataclasses import dataclass\n" + NET
        + "\n@dataclass\nclass Config:\n    width: int = 4\n\n"
          "def build_cfg():\n    return build(Config().width)\n")
    code, out, err = run(["report", "cfgnet.py:build_cfg", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["totals"]["madds"] == conv_madds()


def test_project_root_imports_work(project, capsys):
    (project / "models").mkdir()
    (project / "models" / "blocks.py").write_text(NET)
    (project / "models" / "net.py").write_text("from models.blocks import build  # noqa\n"
                                               "INPUT = '1x3x8x8'\n")
    code, out, err = run(["report", "models/net.py", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["totals"]["madds"] == conv_madds()


def test_relative_imports_in_a_package_file_work(project, capsys):
    pkg = project / "proj"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "blocks.py").write_text(NET)
    (pkg / "net.py").write_text("from .blocks import build  # noqa\nINPUT = '1x3x8x8'\n")
    for spec in ("proj/net.py", str(pkg / "net.py"), "proj.net:build"):
        code, out, err = run(["report", spec, "--format", "json"], capsys)
        assert code == 0, (spec, err)
        assert json.loads(out)["totals"]["madds"] == conv_madds()


def test_a_relative_import_outside_a_package_gets_a_hint(project, capsys):
    (project / "loose").mkdir()
    (project / "loose" / "blocks.py").write_text(NET)
    (project / "loose" / "net.py").write_text("from .blocks import build  # noqa\n")
    code, out, err = run(["report", "loose/net.py"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "relative import" in err and "package.module:build" in err


def test_an_nn_module_instance_is_the_model(project, capsys):
    (project / "inst.py").write_text(NET + "\nmodel = build()\n")
    code, out, err = run(["report", "inst.py:model", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["totals"]["madds"] == conv_madds()


@pytest.mark.parametrize("spec, message", [
    ("models", "is a directory"), ("models/", "is a directory"),
    ("notes.txt", "not a Python file"), ("notes.txt:build", "not a Python file"),
])
def test_a_directory_or_non_python_spec_says_so(project, capsys, spec, message):
    (project / "models").mkdir()
    (project / "notes.txt").write_text("hello\n")
    code, out, err = run(["report", spec], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err


# ---- 4. inputs as users write them -------------------------------------------------------------

def _analysis_error(fn):
    from costmodel.errors import CostmodelError
    with pytest.raises(CostmodelError) as info:
        fn()
    return str(info.value)


@pytest.mark.parametrize("case", ["embedding float", "bf16 linear", "int64 linear"])
def test_inputs_torch_rejects_are_rejected_naming_the_layer(case):
    import torch
    from torch import nn

    import costmodel

    model, spec = {
        "embedding float": (nn.Sequential(nn.Embedding(10, 4)), "1x5"),
        "bf16 linear": (nn.Sequential(nn.Linear(4, 4)).to(torch.bfloat16), "1x4"),
        "int64 linear": (nn.Sequential(nn.Linear(4, 4)), "1x4:int64"),
    }[case]
    x = torch.ones(1, 5) if case == "embedding float" else torch.ones(1, 4, dtype=(
        torch.float32 if case == "bf16 linear" else torch.int64))
    with pytest.raises(RuntimeError):   # real torch refuses it
        model(x)
    message = _analysis_error(lambda: costmodel.analyze(model, spec))
    assert "layer '0'" in message and "\n" not in message, message


def test_an_unknown_keyword_or_extra_positional_input_is_an_error():
    from torch import nn

    import costmodel

    class Two(nn.Module):
        def forward(self, x, mask=None):
            return x * 2

    assert "no input named 'maks'" in _analysis_error(
        lambda: costmodel.analyze(Two(), "1x4", kwargs={"maks": "1x4"}))
    assert "but 2 were given" in _analysis_error(
        lambda: costmodel.analyze(Two(), "1x4", "1x4", kwargs={"mask": "1x4"}))
    assert "but 3 were given" in _analysis_error(
        lambda: costmodel.analyze(Two(), "1x4", "1x4", "1x4"))


def _nested(n):
    from torch import nn
    m = nn.Linear(4, 4)
    for _ in range(n):
        m = nn.Sequential(m)
    return m


def test_deep_nesting_torch_runs_is_analysed_deeper_is_one_line():
    import threading

    import torch

    import costmodel

    model, results = _nested(245), {}

    def fresh_stack():   # a new thread starts at depth 0, as a script does (pytest's is deep)
        results["torch"] = model(torch.ones(1, 4)).shape   # torch runs it at the default limit
        results["costmodel"] = costmodel.analyze(model, "1x4").totals.madds

    thread = threading.Thread(target=fresh_stack)
    thread.start()
    thread.join()
    assert results == {"torch": (1, 4), "costmodel": 4 * 4}
    message = _analysis_error(lambda: costmodel.analyze(_nested(1200), "1x4"))
    assert "nests too deeply" in message and "\n" not in message


@pytest.mark.parametrize("argv, message", [
    (["report", "net.py", "--depth", "0"], "--depth must be at least 1"),
    (["diff", "net.py", "net.py", "--depth", "-1"], "--depth must be at least 1"),
    (["report", "net.py", "--input", "99999999999999999999x3x224x224"], "more than any tensor"),
    (["check", "net.py", "--max-mac", "1G", "--input", "9999999999x3x224x224x10000"],
     "more than any tensor"),
])
def test_depth_and_over_large_shapes_are_refused(project, capsys, argv, message):
    code, out, err = run(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err
