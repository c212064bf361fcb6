"""costmodel: static MAdds, FLOPs, params and memory access cost (MAC) of PyTorch models.

`import costmodel` is light: torch is imported on the first call of `analyze`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["analyze", "Report", "AnalysisError", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .api import AnalysisError, analyze
    from .report import Report


def __getattr__(name: str) -> Any:
    if name in ("analyze", "AnalysisError"):
        from . import api
        return getattr(api, name)
    if name == "Report":
        from .report import Report
        return Report
    raise AttributeError(f"module 'costmodel' has no attribute {name!r}")
