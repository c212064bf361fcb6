"""The shipped .pre-commit-hooks.yaml, driven by the real `pre-commit` tool in a throwaway repo.

A user repository adds costmodel's hook to its .pre-commit-config.yaml. A commit that keeps the
model within its MAC budget goes through; a commit that pushes MAC over it is refused, and the
output names the model and the excess.

Budget arithmetic (MAC = elements read + written, per op; Conv2d(3, w, 3, bias=False) on 32x32):
  conv   3*32*32 + w*27 + w*32*32      relu   2 * w*32*32
  pool   w*32*32 + w                   linear w + 10*w + 10 (+ 10 written)
w=16 gives 69,252 and w=64 gives 267,732, on either side of the 100K budget.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
PRE_COMMIT = shutil.which("pre-commit", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")

pytestmark = pytest.mark.skipif(PRE_COMMIT is None or shutil.which("git") is None,
                                reason="needs git and pre-commit (pip install -e '.[test]')")

MODEL = """\
from torch import nn
INPUT = "1x3x32x32"

def build(width: int = {width}):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
"""


def mac(width: int) -> int:
    hw = 32 * 32
    conv = 3 * hw + width * 27 + width * hw
    relu = 2 * width * hw
    pool = width * hw + width
    linear = width + 10 * width + 10 + 10
    return conv + relu + pool + linear


def test_budget_arithmetic_matches_costmodel():
    """The docstring's numbers are the formula's, and costmodel agrees with them."""
    from torch import nn

    import costmodel

    assert (mac(16), mac(64)) == (69_252, 267_732)
    for width in (16, 64):
        model = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
        assert costmodel.analyze(model, "1x3x32x32").totals.mac == mac(width)


def _env(home: pathlib.Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PRE_COMMIT_HOME=str(home),
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1",
               GIT_CONFIG_GLOBAL=os.devnull)
    env.pop("PYTHONPATH", None)
    return env


def _git(cwd, *args, env):
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def hooks_repo(tmp_path_factory):
    """costmodel's working tree as it is now (committed or not), as a git repo pre-commit can
    clone: the hook users get is the hook this checkout ships."""
    dest = tmp_path_factory.mktemp("costmodel-hooks")
    home = tmp_path_factory.mktemp("pre-commit-home")
    env = _env(home)
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, listed):
        src = ROOT / rel
        # a virtual environment made inside the checkout under a name .gitignore does not list
        # (`python -m venv env`) is not part of the hook: copying it would take minutes and GBs
        if (ROOT / pathlib.PurePath(rel).parts[0] / "pyvenv.cfg").is_file():
            continue
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    assert (dest / ".pre-commit-hooks.yaml").is_file()
    _git(dest, "init", "-q", env=env)
    _git(dest, "add", "-A", env=env)
    assert _git(dest, "commit", "-qm", "costmodel", env=env).returncode == 0
    sha = _git(dest, "rev-parse", "HEAD", env=env).stdout.strip()
    return dest, sha, home


def _user_repo(path: pathlib.Path, hooks, hook_id: str) -> dict[str, str]:
    repo, sha, home = hooks
    env = _env(home)
    path.mkdir()
    _git(path, "init", "-q", env=env)
    (path / "net.py").write_text(MODEL.format(width=16))
    (path / "pyproject.toml").write_text(
        '[tool.costmodel.models.net]\nspec = "net.py:build"\nmax-mac = "100K"\n')
    (path / ".pre-commit-config.yaml").write_text(
        f"repos:\n- repo: {repo}\n  rev: {sha}\n  hooks:\n  - id: {hook_id}\n")
    subprocess.run([PRE_COMMIT, "install"], cwd=path, env=env, check=True, capture_output=True)
    return env


def _commit(path, env, message):
    _git(path, "add", "-A", env=env)
    return _git(path, "commit", "-m", message, env=env)


def _check_gate(path: pathlib.Path, env: dict[str, str]) -> None:
    ok = _commit(path, env, "a small model")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Passed" in ok.stdout + ok.stderr

    (path / "net.py").write_text(MODEL.format(width=64))
    refused = _commit(path, env, "a wider model")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "Failed" in output
    excess = 100.0 * (mac(64) - 100_000) / 100_000
    assert f"net (net.py:build)  MAC 267.7K > budget 100.0K (+{excess:.1f}%)" in output, output
    log = _git(path, "log", "--oneline", env=env).stdout.strip().splitlines()
    assert len(log) == 1   # the wider model was not committed

    (path / "net.py").write_text(MODEL.format(width=20))   # back within budget: mac(20) < 100K
    assert mac(20) < 100_000
    again = _commit(path, env, "a model that fits")
    assert again.returncode == 0, again.stdout + again.stderr


def test_system_hook_gates_commits(tmp_path, hooks_repo):
    """`costmodel-check-system`: the costmodel installed where the user commits from."""
    env = _user_repo(tmp_path / "user", hooks_repo, "costmodel-check-system")
    env["PYTHONPATH"] = str(ROOT)   # the costmodel of this checkout, not another install
    _check_gate(tmp_path / "user", env)


def test_isolated_hook_gates_commits(tmp_path, hooks_repo):
    """`costmodel-check`: pre-commit builds its own environment with costmodel and torch."""
    env = _user_repo(tmp_path / "user", hooks_repo, "costmodel-check")
    _check_gate(tmp_path / "user", env)
