"""How long the pre-commit budget gate takes, against `import torch` measured in the same run.

    python benchmarks/hook_speed.py [--repeat 5]

Each command runs in a fresh process (that is what a hook costs); the best of --repeat runs is
kept. Prints seconds and the ratio to `python -c "import torch"`.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

BIN = pathlib.Path(sys.executable).parent
MODEL = """\
from torch import nn
INPUT = "1x3x32x32"

def build(width: int = 16):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
"""


def best(cmd: list[str], cwd: str, env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@example.com")
    with tempfile.TemporaryDirectory() as repo:
        pathlib.Path(repo, "net.py").write_text(MODEL)
        pathlib.Path(repo, "pyproject.toml").write_text(
            '[tool.costmodel.models.net]\nspec = "net.py:build"\nmax-mac = "1M"\n')
        pathlib.Path(repo, ".pre-commit-config.yaml").write_text(
            "repos:\n- repo: local\n  hooks:\n  - id: costmodel\n    name: costmodel\n"
            "    entry: costmodel check\n    language: system\n    pass_filenames: false\n")
        rows = [("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
                ("python -c 'import costmodel'", [sys.executable, "-c", "import costmodel"]),
                ("costmodel check (config, 1 model)", [str(BIN / "costmodel"), "check"])]
        if shutil.which("pre-commit", path=env["PATH"]) and shutil.which("git"):
            subprocess.run(["git", "init", "-q"], cwd=repo, env=env, check=True)
            subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
            rows.append(("pre-commit run (the hook, as a commit runs it)",
                         [shutil.which("pre-commit", path=env["PATH"]), "run", "--all-files"]))
        results = [(name, best(cmd, repo, env, args.repeat)) for name, cmd in rows]
    base = results[0][1]
    print(f"best of {args.repeat} runs, fresh process each, python {sys.version.split()[0]}")
    print("| command | seconds | vs import torch |\n|---|---|---|")
    for name, seconds in results:
        print(f"| {name} | {seconds:.2f} | {seconds / base:.2f}x |")


if __name__ == "__main__":
    main()
