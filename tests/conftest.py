"""Shared helpers: build models without allocating their weights."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import sys
import warnings

import pytest
import torch
from torch import nn

# Test this checkout, also from a worktree or with another copy installed: the package and any
# `python -m costmodel` subprocess import it from here.
_ROOT = str(pathlib.Path(__file__).resolve().parent.parent)
sys.path.insert(0, _ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (_ROOT, os.environ.get("PYTHONPATH"))))


@contextlib.contextmanager
def params_on_meta():
    """Create every nn.Parameter on the meta device, for builders that cannot run entirely on meta
    (RegNet computes its widths with real tensors). Buffers stay real and small."""
    original = nn.Module.register_parameter

    def register(self, name, param):
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(self, name, param)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def build_meta(fn, **kwargs) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                return fn(**kwargs).eval()
        except Exception:  # noqa: BLE001
            with params_on_meta():
                return fn(**kwargs).eval()


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/ from the current output instead of comparing "
                          "with it (then read `git diff tests/golden`)")


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


@pytest.fixture
def meta_builder():
    return build_meta


EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def example(name: str):
    """Import examples/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
