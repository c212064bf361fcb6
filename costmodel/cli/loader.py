"""Load a model from a SPEC: 'path/to/file.py:callable', 'package.module:callable' or 'file.py'."""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError


@dataclass
class Loaded:
    model: Any
    default_input: str | None
    on_meta: bool


@contextlib.contextmanager
def _on_path(folder: str):
    """`folder` first on sys.path while user code is imported, as `python file.py` would."""
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)


def _import_file(path: str, shown: str | None = None) -> Any:
    shown = shown or path
    if not os.path.isfile(path):
        raise SpecError(f"no such file: {shown}")
    name = "_costmodel_user_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot import {shown}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        with _on_path(os.path.dirname(os.path.abspath(path))):
            spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise SpecError(f"cannot import {shown}: SyntaxError at line {exc.lineno}: "
                        f"{exc.msg}") from exc
    except Exception as exc:  # noqa: BLE001
        raise SpecError(f"importing {shown} raised {type(exc).__name__}: {exc}") from exc
    return module


def split(spec: str) -> tuple[str, str]:
    """'file.py:build' -> ('file.py', 'build'); 'file.py' -> ('file.py', 'build')."""
    target, sep, attr = spec.strip().rpartition(":")
    if not sep:
        target, attr = spec.strip(), "build"
    if not target or not attr:
        raise SpecError(f"bad SPEC {spec!r}; expected path/to/file.py:callable or "
                        f"package.module:callable")
    return target, attr


def is_file_spec(target: str) -> bool:
    return target.endswith(".py") or os.sep in target or "/" in target


def resolve(spec: str, root: str | None = None) -> tuple[Any, str, Any]:
    """(module, callable name, callable) for a SPEC. Relative files and top-level packages are
    looked up from `root` (default: the current folder), as `python -m` would."""
    target, attr = split(spec)
    root = os.path.abspath(root or os.getcwd())
    if is_file_spec(target):
        module = _import_file(os.path.join(root, target), target)
    else:
        try:
            with _on_path(root):
                module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise SpecError(f"no such module or file: {target} ({exc})") from exc
        except Exception as exc:  # noqa: BLE001
            raise SpecError(f"importing {target} raised {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        hint = f" (it defines: {', '.join(names[:8])})" if names else ""
        what = "no callable" if fn is None else "a non-callable"
        raise SpecError(f"{target} has {what} {attr!r}{hint}")
    return module, attr, fn


def load(spec: str, kwargs: dict[str, Any] | None = None, *, meta: bool = True,
         root: str | None = None) -> Loaded:
    """Build the model. On the meta device first (instant, no memory), normally if that fails."""
    import torch
    from torch import nn

    module, attr, fn = resolve(spec, root)
    kwargs = kwargs or {}
    model, on_meta = None, False
    if meta:
        try:
            with torch.device("meta"):
                model = fn(**kwargs)
            on_meta = True
        except Exception:  # noqa: BLE001 - some builders need real tensors; build normally
            model = None
    if model is None:
        try:
            model = fn(**kwargs)
        except Exception as exc:  # noqa: BLE001
            raise SpecError(f"calling {spec} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise SpecError(f"{spec} returned {type(model).__name__}, not an nn.Module")
    model.eval()  # costmodel built this model itself, so it may set its mode
    default = getattr(model, "input_shape", None) or getattr(module, "INPUT", None)
    return Loaded(model, default if isinstance(default, str) else None, on_meta)
