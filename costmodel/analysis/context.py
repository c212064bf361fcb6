"""One analysis context per cost graph: each analysis computed once, then kept.

A text report reads the model structure, the blocks, the latency estimate and G1-G4; the HTML page
and the graph figure read them again. They all ask the graph's context (`context(report)`), which
computes each on first use: the kernel counts, the kernel DAG, the model structure, the blocks
per depth, the latency estimate per device profile and the guideline findings per (thresholds,
profile, depth). The graph is annotated once by analyze() and not changed afterwards, so nothing
goes stale. The context lives on the graph (`CostGraph.context`); renderers never compute an
analysis themselves.
"""
from __future__ import annotations

from functools import cached_property
from typing import Any

from ..core.graph import CostGraph
from . import structure

NO_GRAPH = "this report has no graph (read back from JSON?); analyse the model"


def graph_of(source: Any) -> CostGraph:
    """The cost graph of a Report (or the graph itself); ValueError when there is none."""
    g = source if isinstance(source, CostGraph) else getattr(source, "graph", None)
    if g is None:
        raise ValueError(NO_GRAPH)
    return g


def context(source: Any) -> AnalysisContext:
    """The analysis context of a Report or a cost graph, made on first use."""
    g = graph_of(source)
    if g.context is None:
        g.context = AnalysisContext(g)
    return g.context


class AnalysisContext:
    """The analyses of one annotated cost graph, each computed on first use."""

    def __init__(self, graph: CostGraph) -> None:
        self.graph = graph
        self._blocks: dict[int | None, list[structure.BlockStructure]] = {}
        self._estimates: dict[Any, Any] = {}
        self._guidelines: dict[tuple, tuple] = {}

    @cached_property
    def kernels(self) -> dict[str, int]:
        """Node name -> kernels it launches (structure.kernels)."""
        return structure.kernels(self.graph)

    @cached_property
    def kernel_dag(self) -> Any:
        """The kernel DAG (structure.kernel_dag), a networkx DiGraph."""
        return structure.kernel_dag(self.graph, self.kernels)

    @cached_property
    def model_structure(self) -> structure.ModelStructure:
        return structure.model_structure(self.graph, self.kernel_dag)

    def blocks(self, depth: int | None = None) -> list[structure.BlockStructure]:
        found = self._blocks.get(depth)
        if found is None:
            found = self._blocks[depth] = structure.blocks(self.graph, depth, self.kernels)
        return found

    @cached_property
    def fused(self) -> tuple:
        """The kernels of the deployed graph (fusion.fuse)."""
        from . import fusion
        return fusion.fuse(self.graph, self.kernels)

    def estimate(self, profile: Any = None, execution: str = "eager") -> Any:
        """The latency estimate on `profile` (a DeviceProfile, a name or a path), for
        `execution` "eager" or "fused"."""
        from . import fusion, latency
        profile = latency.load_profile(profile)
        key = (profile, fusion.check_execution(execution))
        found = self._estimates.get(key)
        if found is None:
            found = self._estimates[key] = (
                latency.compute_estimate(self, profile) if execution == "eager"
                else fusion.compute_estimate(self, profile))
        return found

    def guidelines(self, thresholds: Any = None, profile: Any = None,
                   depth: int | None = None) -> tuple:
        """G1-G4 (guidelines.check) with these thresholds, profile and block depth."""
        from . import guidelines, latency
        thresholds = thresholds or guidelines.Thresholds()
        key = (thresholds, latency.load_profile(profile), depth)
        found = self._guidelines.get(key)
        if found is None:
            found = self._guidelines[key] = tuple(guidelines.compute_check(self, *key))
        return found
