"""Golden output: the exact text of `costmodel report --format table|markdown|csv` on two example
models, compared with the files in tests/golden/. A renderer's contract is its text: any change,
intended or not, fails here with a unified diff. `--update-golden` rewrites the files instead, and
a reviewer reads `git diff tests/golden` (tests/golden/README.md)."""
from __future__ import annotations

import difflib
import pathlib

import pytest
import torch

import costmodel
from costmodel.cli import main

from conftest import EXAMPLES, example

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"
REGENERATE = "python -m pytest tests/test_golden.py --update-golden"
FORMATS = ("table", "markdown", "csv")
# model -> its extra options. shufflenet_v2 names its input (--input) and is clean under G1-G4 with
# two-branch blocks and channel shuffles; mobilenet_v2 takes the file's INPUT and has findings
# (G101, cut to three plus "... and N more", G401, G402).
CASES = {"shufflenet_v2": ["--input", "1x3x224x224"], "mobilenet_v2": []}
# The latency section names a shipped profile; --device says which.
DEVICE = ["--device", "laptop-cpu"]


@pytest.fixture(autouse=True)
def shipped_profiles_only(tmp_path, monkeypatch):
    """A profile saved by `costmodel calibrate` in ~/.cache/costmodel/profiles or
    $COSTMODEL_PROFILE_DIR wins over the shipped one of its name: look in an empty folder."""
    empty = tmp_path / "profiles"
    empty.mkdir()
    monkeypatch.setenv("COSTMODEL_PROFILE_DIR", str(empty))
    monkeypatch.setenv("COLUMNS", "120")   # the text tables fit the terminal: fix its width


def compare(name: str, text: str) -> None:
    path = GOLDEN / name
    if not path.is_file():
        pytest.fail(f"tests/golden/{name} is missing; write it with `{REGENERATE}`", pytrace=False)
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), text.splitlines(keepends=True),
            f"tests/golden/{name}", f"{name} (this checkout)"))
        pytest.fail(f"the output differs from tests/golden/{name}:\n{diff}\nif the change is "
                    f"intended, run `{REGENERATE}` and review `git diff tests/golden`",
                    pytrace=False)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model", sorted(CASES))
def test_report_matches_golden(model, fmt, capsys, update_golden):
    argv = ["report", str(EXAMPLES / f"{model}.py"), *CASES[model], *DEVICE, "--format", fmt]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0 and err == "", err
    name = f"{model}.{fmt}.txt"
    if update_golden:
        (GOLDEN / name).write_text(out, encoding="utf-8", newline="\n")
    else:
        compare(name, out)


@pytest.mark.parametrize("model", sorted(CASES))
def test_str_of_report_is_the_golden_table(model):
    """`str(report)` from the API, with the default profile (laptop-cpu), is the CLI's table."""
    module = example(model)
    with torch.device("meta"):
        net = module.build().eval()
    compare(f"{model}.table.txt", str(costmodel.analyze(net, module.INPUT)) + "\n")
