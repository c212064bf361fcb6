"""The only code that creates graph nodes, edges and input sources (core/graph.py's CostGraph).

Both captures hand it each node as it runs: what it is (kind, target, module), the values it read
and the tensors it made. Data edges follow tensor identity: every tensor a node makes (or, for
`x[i] = v`, writes) remembers that node and its index among the node's outputs, so each input of
a later node has an exact `source`. Weights (meta twins of parameters, buffers and constants) are
not inputs. The fx capture passes its own edges (`preds`: every fx input node, including size
arithmetic), so its structure is fx's graph.
"""
from __future__ import annotations

import contextlib
import re
from typing import Any, Iterable

import networkx as nx
from torch import Tensor

from ..core.calls import Recorded
from ..core.graph import CostGraph, Node
from ..core.tensors import TensorSpec
from ..core.vocab import NodeKind
from ..ops import Binding, lookup
from .recorder import Recording, _tensors

# module or function name -> node-name base ("features.3" -> "features_3")
_CLEAN: dict[str, str] = {}
# torch callable -> (its binding, then call_node's answer): made once per callable and binding
_CALL_NODES: dict[Any, tuple[Binding, tuple[str, NodeKind, str]]] = {}


def call_node(func: Any) -> tuple[str, NodeKind, str]:
    """The target, kind and name base of a node that is one torch call outside a layer:
    ('Tensor.add', call_method, 'add'), ('torch.fft.rfft', call_function, 'rfft'), not
    'fft_rfft'. Kept per callable while its binding (and so its printed name) stays the same."""
    binding = lookup(func)
    try:
        known = _CALL_NODES.get(func)
    except TypeError:   # an unhashable callable
        known = None
    if known is not None and known[0] is binding:
        return known[1]
    target = binding.name
    kind = NodeKind.CALL_METHOD if target.startswith("Tensor.") else NodeKind.CALL_FUNCTION
    short = target.rsplit(".", 1)[-1]
    base = short if target.startswith(("torch.fft.", "torch.linalg.", "torch.special.")) else \
        getattr(func, "__name__", short)
    found = (target, kind, base)
    with contextlib.suppress(TypeError):
        _CALL_NODES[func] = (binding, found)
    return found


class GraphBuilder:
    """Collects the nodes of one capture, in execution order."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.nodes: dict[str, Node] = {}
        self.dag = nx.DiGraph()
        # nodes and edges not yet in `dag`, in the order they came: networkx clears its caches on
        # every add_node / add_edge, so they go in together when the graph is read (same order)
        self._pending_nodes: list[str] = []
        self._pending_edges: list[tuple[str, str]] = []
        self.producer: dict[int, tuple[str, int]] = {}   # id(tensor) -> (node that made or last
                                                          # wrote it, index among its outputs)
        self.alive: list[Any] = []             # keeps tensors alive so that ids stay unique
        self._names: dict[str, int] = {}       # name base -> how many nodes have it

    def name(self, base: str) -> str:
        """A fresh node name from a module path or function name: 'features_3', 'add_2'."""
        clean = _CLEAN.get(base)
        if clean is None:
            clean = _CLEAN[base] = re.sub(r"\W+", "_", base).strip("_") or "node"
        names = self._names
        n = names.get(clean, 0)
        names[clean] = n + 1
        return clean if n == 0 else f"{clean}_{n}"

    def reserve(self, name: str) -> None:
        """Keep `name` (an input's own name) from being given to another node."""
        self._names[name] = self._names.get(name, 0) + 1

    def add(self, name: str, kind: NodeKind | str, target: str, module: str, read: Any,
            outputs: tuple[TensorSpec, ...], calls: Iterable[Recorded] = (),
            unrecorded: bool = False, preds: Iterable[str] | None = None) -> Node:
        """A node that read the tensors in `read` (nested args, kwargs): one input per distinct
        activation, with its source; an edge from each source node (or from each of `preds`)."""
        inputs, sources, found, seen = [], [], [], set()
        weights = self.recording.weights
        spec = self.recording.spec
        producer = self.producer
        for t in _tensors(read):
            key = id(t)
            if key in seen or key in weights:
                continue
            seen.add(key)
            inputs.append(spec(t))
            source = producer.get(key)
            sources.append(source)
            if source is not None and source[0] not in found:
                found.append(source[0])
        node = Node(name, len(self.nodes), kind, target, module, tuple(inputs), outputs,
                    tuple(calls), tuple(sources), unrecorded)
        nodes = self.nodes
        nodes[name] = node
        self._pending_nodes.append(name)
        edges = self._pending_edges
        for source in (found if preds is None else preds):
            if source not in nodes:   # an edge from a name that is no node: networkx adds it now
                self._flush()
                self.dag.add_edge(source, name)
            else:
                edges.append((source, name))
        return node

    def _flush(self) -> None:
        """Put the pending nodes and edges into `dag`: the same graph, in the same order, as
        adding each one when it came (every edge joins nodes already added)."""
        if self._pending_nodes:
            self.dag.add_nodes_from(self._pending_nodes)
            self._pending_nodes = []
        if self._pending_edges:
            self.dag.add_edges_from(self._pending_edges)
            self._pending_edges = []

    def made(self, name: str, tensors: list[Tensor]) -> None:
        """`tensors` are the outputs of node `name`, in order (later readers depend on it)."""
        for index, t in enumerate(tensors):
            self.producer[id(t)] = (name, index)
        self.alive.append(tensors)

    def mark_data_dependent(self, assumptions: dict[str, str]) -> None:
        """Nodes whose own output size depends on data (`assumptions`: node -> why), and every
        node downstream of one, are `data_dependent`."""
        self._flush()
        affected = set(assumptions)
        for source in assumptions:
            affected |= nx.descendants(self.dag, source)
        for name in affected:
            self.nodes[name].data_dependent = True
        for name, why in assumptions.items():
            self.nodes[name].assumption = why

    def graph(self) -> CostGraph:
        self._flush()
        return CostGraph(self.nodes, self.dag)
