"""Load a model from a SPEC: 'path/to/file.py:callable', 'package.module:callable' or 'file.py'.

User code (the model file's import, the builder, the forward) runs under `user_code()`: its
stdout goes to stderr (so that `--format json` on stdout stays parseable whatever it prints),
`sys.argv` is the SPEC's file or module alone (a module-level argparse does not read
costmodel's options), and a `SystemExit` or any other BaseException except KeyboardInterrupt
becomes a one-line SpecError: user code cannot end the run or choose its exit status.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import SpecError


@dataclass
class Loaded:
    model: Any
    default_input: str | None
    on_meta: bool


@contextlib.contextmanager
def user_code(shown: str, doing: str, argv0: str | None = None) -> Iterator[None]:
    """Run user code: stdout to stderr, sys.argv = [argv0], BaseException -> SpecError."""
    saved_argv = sys.argv
    sys.argv = [argv0 or shown]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except (KeyboardInterrupt, Exception):
        raise
    except SystemExit as exc:
        raise SpecError(f"{shown} called sys.exit({exc.code!r}) while {doing}; costmodel needs "
                        f"a model file that can be imported and a builder that returns") from None
    except BaseException as exc:  # noqa: BLE001 - user code must not end the run
        raise SpecError(f"{shown} raised {type(exc).__name__} while {doing}: {exc}") from None
    finally:
        sys.argv = saved_argv


@contextlib.contextmanager
def _on_path(*folders: str) -> Iterator[None]:
    """`folders` first on sys.path while user code is imported: the project root (as `python -m`
    would have it) and the file's own folder (as `python file.py` would)."""
    saved = list(sys.path)
    sys.path[:0] = [f for i, f in enumerate(folders) if f not in folders[:i]]
    try:
        yield
    finally:
        sys.path[:] = saved


def _package_name(path: str) -> tuple[str | None, str]:
    """('pkg.sub.mod', folder above pkg) for a file inside packages (folders with __init__.py),
    else (None, the file's folder)."""
    folder = os.path.dirname(path)
    parts = [os.path.splitext(os.path.basename(path))[0]]
    while (os.path.isfile(os.path.join(folder, "__init__.py"))
           and os.path.basename(folder).isidentifier()):
        parts.insert(0, os.path.basename(folder))
        folder = os.path.dirname(folder)
    if len(parts) == 1 or not all(p.isidentifier() for p in parts):
        return None, os.path.dirname(path)
    return ".".join(parts), folder


def _parent_package(name: str, folder: str) -> bool:
    """Import the packages above `name` from `folder`; False when they are found elsewhere."""
    parent = name.rpartition(".")[0]
    try:
        package = importlib.import_module(parent)
    except Exception:  # noqa: BLE001 - the file is then imported on its own
        return False
    paths = [os.path.abspath(p) for p in getattr(package, "__path__", [])]
    return os.path.join(folder, *parent.split(".")) in paths


def _import_file(path: str, shown: str, root: str) -> Any:
    if os.path.isdir(path):
        raise SpecError(f"{shown} is a directory; give a Python file (path/to/net.py[:build]) "
                        f"or package.module:callable")
    if not os.path.isfile(path):
        raise SpecError(f"no such file: {shown}")
    if not path.endswith(".py"):
        raise SpecError(f"{shown} is not a Python file (.py); give path/to/net.py[:build] or "
                        f"package.module:callable")
    path = os.path.abspath(path)
    name, folder = _package_name(path)
    with _on_path(root, folder, os.path.dirname(path)):
        if name is None or not _parent_package(name, folder):
            stem = os.path.splitext(os.path.basename(path))[0]
            name = "_costmodel_user_" + "".join(c if c.isalnum() else "_" for c in stem)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise SpecError(f"cannot import {shown}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        previous = sys.modules.get(name)
        sys.modules[name] = module   # a real module: dataclasses, pickle and typing find it
        try:
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            _restore(name, previous)
            raise SpecError(f"cannot import {shown}: SyntaxError at line {exc.lineno}: "
                            f"{exc.msg}") from exc
        except ImportError as exc:
            _restore(name, previous)
            hint = ""
            if "relative import" in str(exc):
                hint = ("; a file that uses relative imports is part of a package: give the "
                        "package.module:build form (e.g. costmodel report models.net:build) "
                        "from the folder above the package")
            raise SpecError(f"importing {shown} raised {type(exc).__name__}: {exc}{hint}") from exc
        except BaseException:
            _restore(name, previous)
            raise
    return module


def _restore(name: str, previous: Any) -> None:
    if previous is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = previous


def split(spec: str) -> tuple[str, str]:
    """'file.py:build' -> ('file.py', 'build'); 'file.py' -> ('file.py', 'build')."""
    target, sep, attr = spec.strip().rpartition(":")
    if not sep:
        target, attr = spec.strip(), "build"
    if not target or not attr:
        raise SpecError(f"bad SPEC {spec!r}; expected path/to/file.py:callable or "
                        f"package.module:callable")
    return target, attr


def is_file_spec(target: str, root: str | None = None) -> bool:
    return (target.endswith(".py") or os.sep in target or "/" in target
            or (root is not None and os.path.exists(os.path.join(root, target))
                and not os.path.isfile(os.path.join(root, target, "__init__.py"))))


def resolve(spec: str, root: str | None = None) -> tuple[Any, str, Any]:
    """(module, callable name, callable) for a SPEC. Relative files and top-level packages are
    looked up from `root` (default: the current folder), as `python -m` would."""
    target, attr = split(spec)
    root = os.path.abspath(root or os.getcwd())
    with user_code(target, "being imported"):
        if is_file_spec(target, root):
            module = _import_file(os.path.join(root, target), target, root)
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


def _meta_failure(exc: BaseException) -> bool:
    """Did building fail because of the meta device (data read from a tensor, an op with no meta
    kernel), rather than for the builder's own reason?"""
    seen = 0
    while exc is not None and seen < 8:
        text = str(exc).lower()
        if "meta" in text or isinstance(exc, NotImplementedError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def load(spec: str, kwargs: dict[str, Any] | None = None, *, meta: bool = True,
         root: str | None = None) -> Loaded:
    """Build the model: on the meta device first (instant, no memory). The builder runs again,
    normally, only when its first failure is the meta device's own; any other failure is
    reported at once, so a builder's side effects happen once."""
    import torch
    from torch import nn

    module, attr, fn = resolve(spec, root)
    kwargs = kwargs or {}
    target = split(spec)[0]
    if isinstance(fn, nn.Module):   # `file.py:model`: an instance is the model, not a builder
        if kwargs:
            raise SpecError(f"{spec} is an nn.Module instance, not a builder: --arg cannot apply")
        model, on_meta = fn, False
    else:
        model, on_meta, first = None, False, None
        with user_code(target, f"building the model ({attr})"):
            if meta:
                try:
                    with torch.device("meta"):
                        model = fn(**kwargs)
                    on_meta = True
                except Exception as exc:  # noqa: BLE001 - decided below
                    first = exc
            try:
                if first is not None and not _meta_failure(first):
                    raise first
                if model is None:
                    model = fn(**kwargs)
            except Exception as exc:  # noqa: BLE001
                raise SpecError(f"calling {spec} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise SpecError(f"{spec} returned {type(model).__name__}, not an nn.Module")
    model.eval()  # costmodel imported or built this model itself, so it may set its mode
    default = getattr(model, "input_shape", None) or getattr(module, "INPUT", None)
    return Loaded(model, default if isinstance(default, str) else None, on_meta)
