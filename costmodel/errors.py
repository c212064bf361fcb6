"""Every exception costmodel raises for what the user gave. Pure Python: importable without torch.

Each message is one line meant for the user; the CLI prints it and exits 2. `one_line()` is the
one place that turns any exception into that line.
"""
from __future__ import annotations


class CostmodelError(Exception):
    """Base of every error caused by what the user gave: a SPEC, an input, a model."""


class InputSpecError(CostmodelError, ValueError):
    """A malformed input-shape string or dtype name."""


class AnalysisError(CostmodelError, RuntimeError):
    """The model could not be analysed."""


class CaptureError(CostmodelError, RuntimeError):
    """torch.fx could not trace the model; the message names the module and the user's line."""


class EagerError(CostmodelError, RuntimeError):
    """The eager capture stopped; the message names the user's line and the module."""


class ShapeError(CostmodelError, RuntimeError):
    """Shape propagation failed; the message names the graph node, its module and input shapes."""


class UsageError(CostmodelError, ValueError):
    """A bad combination of command-line options."""


class ConfigError(CostmodelError, ValueError):
    """A config file costmodel cannot use; the message names the file, section and key."""


class SpecError(CostmodelError, ValueError):
    """A SPEC (file.py:callable, package.module:callable) that cannot be loaded."""


class BudgetError(CostmodelError, ValueError):
    """A budget, an allowed increase or a baseline that cannot be used."""


def first_line(exc: BaseException) -> str:
    """The first line of the exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def one_line(exc: BaseException) -> str:
    """The user-facing one-line form of an exception: costmodel's own errors as they are, anything
    else prefixed with its type (it was unexpected, so say what kind it was)."""
    text = str(exc).strip()
    message = text.splitlines()[0] if text else ""
    if not isinstance(exc, CostmodelError):
        message = f"{type(exc).__name__}: {message}".rstrip(": ")
    return message
