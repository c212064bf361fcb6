"""The composite GitHub Action (action.yml, issue 14 section 5): each step's shell is run as the
runner would run it, with its `${{ inputs.* }}` filled in and a fake $GITHUB_STEP_SUMMARY file.
The job summary gets the markdown report, the diff against the baseline and the check's
verdict; the gate step fails (exit 1) on a violation."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

from conftest import EXAMPLES

ROOT = pathlib.Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
STEPS = {step["name"]: step for step in ACTION["runs"]["steps"]}


def run_step(name: str, given: dict[str, str], summary: pathlib.Path, tmp_path: pathlib.Path,
             extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    step = STEPS[name]
    assert step["shell"] == "bash"
    values = {k: v.get("default", "") for k, v in ACTION["inputs"].items()} | given

    def fill(text: str) -> str:
        return re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: values[m.group(1)], text)

    env = {**os.environ, "PYTHONPATH": str(ROOT), "GITHUB_STEP_SUMMARY": str(summary),
           "GITHUB_ACTION_PATH": str(ROOT), "COSTMODEL_PROFILE_DIR": str(tmp_path),
           "COLUMNS": "120", **{k: fill(str(v)) for k, v in step.get("env", {}).items()},
           **(extra_env or {})}
    # the runner runs `bash --noprofile --norc -eo pipefail {0}` on the step's script
    script = tmp_path / "step.sh"
    script.write_text(fill(step["run"]), encoding="utf-8")
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)


@pytest.fixture
def baseline(tmp_path):
    """A baseline saved the way a project would: costmodel report --format json."""
    path = tmp_path / "base.json"
    out = subprocess.run([sys.executable, "-m", "costmodel", "report",
                          str(EXAMPLES / "mobilenet_v1.py"), "--arg", "width_mult=0.5",
                          "--format", "json", "-o", str(path)],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return path


def test_install_step_installs_this_checkout_or_what_it_is_told(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "pip.log"
    (fake / "python").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (fake / "python").chmod(0o755)
    path = {"PATH": f"{fake}:{os.environ['PATH']}"}
    summary = tmp_path / "summary.md"
    assert run_step("Install costmodel", {}, summary, tmp_path, path).returncode == 0
    assert run_step("Install costmodel", {"install": "costmodel==1.0"}, summary, tmp_path,
                    path).returncode == 0
    assert log.read_text().splitlines() == [f"-m pip install --quiet {ROOT}",
                                            "-m pip install --quiet costmodel==1.0"]


def test_a_model_within_budget_passes_with_report_and_diff_in_the_summary(tmp_path, baseline):
    summary = tmp_path / "summary.md"
    given = {"spec": str(EXAMPLES / "mobilenet_v1.py"), "model-args": "width_mult=0.5",
             "baseline": str(baseline), "check-args": "--max-params 2M"}
    report = run_step("Report and diff to the job summary", given, summary, tmp_path)
    assert report.returncode == 0, report.stderr
    gate = run_step("Budget gate", given, summary, tmp_path)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    text = summary.read_text()
    assert text.index("### costmodel: MobileNetV1") < text.index("### costmodel diff") \
        < text.index("#### costmodel check: every budget holds")
    assert "`--arg-b width_mult=0.5`" not in text   # the header shows what ran, as --arg
    assert "--arg width_mult=0.5" in text


def test_a_violation_fails_the_job_and_says_why_in_the_summary(tmp_path, baseline):
    summary = tmp_path / "summary.md"
    # full width against the half-width baseline: every metric grows, over the 0% default
    given = {"spec": str(EXAMPLES / "mobilenet_v1.py"), "baseline": str(baseline),
             "max-increase": "mac=5%"}
    assert run_step("Report and diff to the job summary", given, summary,
                    tmp_path).returncode == 0
    gate = run_step("Budget gate", given, summary, tmp_path)
    assert gate.returncode == 1
    text = summary.read_text()
    assert "#### costmodel check: over budget" in text
    assert "| MAC " in text and "(+" in text           # the diff's growth, in the summary
    assert "baseline" in gate.stdout


def test_a_model_that_cannot_be_checked_fails_with_exit_2(tmp_path):
    summary = tmp_path / "summary.md"
    gate = run_step("Budget gate", {"spec": str(tmp_path / "missing.py"),
                                    "check-args": "--max-mac 1M"}, summary, tmp_path)
    assert gate.returncode == 2
    assert "could not be checked (exit 2)" in summary.read_text()
