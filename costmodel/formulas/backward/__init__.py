"""Backward rules, one file per op family (the same names as `ops/` and `forward/`)."""
from . import contraction, conv, detection, movement, norm, pointwise, pool, recurrent  # noqa: F401
