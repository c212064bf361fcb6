"""What each torch callable means: one binding per callable (ops/registry.py), the fast shape
rules (ops/shape_rules.py) and one bind table per op family, with the same file names as
`formulas/forward/` and `formulas/backward/`."""
from . import (  # noqa: F401  (fill BINDINGS)
    contraction,
    conv,
    detection,
    loss,
    movement,
    norm,
    pointwise,
    pool,
    recurrent,
    spectral,
)
from .registry import BINDINGS, Binding, Rule, bound_ops, lookup
from .shape_rules import META

__all__ = ["BINDINGS", "META", "Binding", "Rule", "bound_ops", "lookup"]
