"""The command line: the README's command works, and bad input is one line and exit status 2."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from costmodel.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_report_json_matches_api(capsys, tmp_path):
    target = tmp_path / "r.json"
    code, _, err = run(["report", str(ROOT / "examples/mobilenet_v1.py:build"), "--arg",
                        "width_mult=0.5", "--format", "json", "-o", str(target)], capsys)
    assert code == 0, err
    data = json.loads(target.read_text())
    assert abs(data["totals"]["madds"] - 149e6) < 0.01 * 149e6
    assert data["inputs"][0]["shape"] == [1, 3, 224, 224]


def test_report_module_spec(capsys):
    pytest.importorskip("torchvision")
    code, out, err = run(["report", "torchvision.models:resnet18", "--input", "1x3x224x224",
                          "--format", "csv", "--sort", "mac", "--top", "3"], capsys)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 4


BAD = {
    "missing file": (["report", "nope/missing.py"], "no such file"),
    "missing callable": (["report", "{examples}/squeezenet.py:nothing"], "no callable 'nothing'"),
    "bad input 1x3x": (["report", "{examples}/squeezenet.py", "--input", "1x3x"], "malformed"),
    "bad input -1x3": (["report", "{examples}/squeezenet.py", "--input=-1x3"], "malformed"),
    "bad input axb": (["report", "{examples}/squeezenet.py", "--input", "axb"], "malformed"),
    "bad input zero": (["report", "{examples}/squeezenet.py", "--input", "0x3x4x4"], "zero"),
    "bad input empty": (["report", "{examples}/squeezenet.py", "--input", ""], "empty"),
    "unknown dtype": (["report", "{examples}/squeezenet.py", "--dtype", "float13"],
                      "unknown dtype"),
    "bad arg": (["report", "{examples}/squeezenet.py", "--arg", "nokey"], "bad --arg"),
    "wrong shape": (["report", "{examples}/squeezenet.py", "--input", "1x5x224x224"],
                    "layer 'features.0' (Conv2d) with input shapes [1x5x224x224]"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2(case, capsys):
    argv, expected = BAD[case]
    argv = [a.replace("{examples}", str(ROOT / "examples")) for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("costmodel: error:"), err
    assert expected in err, err


def test_file_errors(tmp_path, capsys):
    (tmp_path / "syntax.py").write_text("def build(:\n")
    (tmp_path / "raises.py").write_text("def build():\n    raise ValueError('width must be > 0')\n")
    (tmp_path / "notmodule.py").write_text("def build():\n    return 42\n")
    for name, expected in (("syntax.py", "SyntaxError"), ("raises.py", "width must be > 0"),
                           ("notmodule.py", "returned int, not an nn.Module")):
        code, _, err = run(["report", str(tmp_path / name)], capsys)
        assert code == 2 and expected in err and err.count("\n") == 1, err


def test_unknown_option_exits_2():
    proc = subprocess.run([sys.executable, "-m", "costmodel", "report", "x.py", "--frobnicate"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unrecognized arguments: --frobnicate" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_train_mode_and_device_profile(capsys, tmp_path):
    spec = str(ROOT / "examples/mobilenet_v1.py")
    code, out, err = run(["report", spec, "--mode", "train", "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["mode"] == "train"
    # the first conv's input needs no gradient: backward MAdds < 2 x forward MAdds
    forward, backward = data["train"]["forward"]["madds"], data["train"]["backward"]["madds"]
    assert forward < backward < 2 * forward
    code, out, err = run(["report", spec, "--device", "h100", "--top", "1"], capsys)
    assert code == 0 and "latency estimate on h100" in out, err
    code, _, err = run(["report", spec, "--device", "nope"], capsys)
    assert code == 2 and "unknown device profile 'nope'" in err and err.count("\n") == 1


def test_calibrate_writes_a_profile_the_report_can_use(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COSTMODEL_PROFILE_DIR", str(tmp_path))
    code, out, err = run(["calibrate", "--name", "here", "--seconds", "0.5", "--threads", "1"],
                         capsys)
    assert code == 0, err
    assert (tmp_path / "here.json").is_file() and "--device here" in out
    code, out, err = run(["report", str(ROOT / "examples/squeezenet.py"), "--device", "here",
                          "--top", "1"], capsys)
    assert code == 0 and "latency estimate on here" in out, err
