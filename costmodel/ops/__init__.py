"""What each torch callable means: one binding per callable (ops/registry.py), the fast shape
rules (ops/shape_rules.py) and one bind table per op family, with the same file names as
`formulas/forward/` and `formulas/backward/`."""
from . import contraction, conv, detection, movement, norm, pointwise, pool  # noqa: F401  (fill RULES)
from .registry import NAMES, RULES, Rule, lookup
from .shape_rules import META

__all__ = ["META", "NAMES", "RULES", "Rule", "lookup"]
