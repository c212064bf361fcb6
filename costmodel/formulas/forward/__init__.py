"""Forward formulas, one file per op family (the same names as `ops/` and `backward/`)."""
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
