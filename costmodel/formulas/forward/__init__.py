"""Forward formulas, one file per op family (the same names as `ops/` and `backward/`)."""
from . import contraction, conv, detection, movement, norm, pointwise, pool, recurrent  # noqa: F401
