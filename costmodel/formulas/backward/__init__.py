"""Backward rules, one file per op family (the same names as `ops/` and `forward/`)."""
from . import (  # noqa: F401
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
