"""costmodel: static MAdds, FLOPs, params and memory access cost (MAC) of PyTorch models.

`import costmodel` is light: torch is imported on the first call of `analyze`. The analyses are
reachable as `costmodel.fusion`, `costmodel.guidelines`, `costmodel.latency`, `costmodel.moe` and
`costmodel.structure`
(lazy aliases of `costmodel.analysis.*`); `costmodel.active_params(report)` gives a MoE model's
active parameters per token.
"""
from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from .errors import AnalysisError, CostmodelError

__version__ = "0.1.0"
__all__ = ["AnalysisError", "CostmodelError", "Report", "__version__", "active_params", "analyze",
           "analyze_generation", "fusion", "guidelines", "latency", "moe", "structure"]

if TYPE_CHECKING:  # pragma: no cover
    from .analysis import fusion, guidelines, latency, moe, structure
    from .analysis.moe import active_params
    from .api import analyze
    from .core.report import Report
    from .generation import analyze_generation

_LAZY = {"analyze": ("costmodel.api", "analyze"), "Report": ("costmodel.core.report", "Report"),
         "active_params": ("costmodel.analysis.moe", "active_params"),
         "analyze_generation": ("costmodel.generation", "analyze_generation")}
#: public module names kept from the flat layout: `costmodel.latency` is costmodel.analysis.latency
_ALIASES = {f"costmodel.{name}": f"costmodel.analysis.{name}"
            for name in ("fusion", "guidelines", "latency", "moe", "structure")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if f"costmodel.{name}" in _ALIASES:
        return importlib.import_module(f"costmodel.{name}")
    raise AttributeError(f"module 'costmodel' has no attribute {name!r}")


class _AliasFinder:
    """Lets `import costmodel.latency` (the statement form) find its module under analysis/."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _ALIASES:
            return None
        from importlib.util import spec_from_loader
        return spec_from_loader(fullname, _AliasFinder)

    @staticmethod
    def create_module(spec: Any) -> Any:
        return importlib.import_module(_ALIASES[spec.name])

    @staticmethod
    def exec_module(module: Any) -> None:
        """The real module ran when it was imported."""


if not any(isinstance(f, type) and f.__name__ == "_AliasFinder" for f in sys.meta_path):
    sys.meta_path.append(_AliasFinder)
