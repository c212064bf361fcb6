"""Formulas: pure cost functions of an `OpCall` (no torch), forward and backward.

(The complete "add an op" recipe is written below by the registry refactor.)
"""
from . import backward, forward  # noqa: F401  (fill the registries)
from .registry import (BACKWARD, FORMULAS, NO_BACKWARD, Backward, GradCall, OpCall, backward_of,
                       cost_of, formula)

__all__ = ["BACKWARD", "FORMULAS", "NO_BACKWARD", "Backward", "GradCall", "OpCall", "backward_of",
           "cost_of", "formula"]
