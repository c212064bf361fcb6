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
import functools
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
_NOT_WORD = re.compile(r"\W+")
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
        # the nodes and edges of the networkx DiGraph, in the order they came, made only when the
        # graph's `dag` is first read (`_digraph`: the same graph, in the same order, as adding
        # each one when it came); a chunk ends at an edge from a name that is no node
        self._chunks: list[tuple[list[str], list[tuple[str, str]]]] = [([], [])]
        self._dag: nx.DiGraph | None = None
        self.producer: dict[int, tuple[str, int]] = {}   # id(tensor) -> (node that made or last
                                                          # wrote it, index among its outputs)
        self.alive: list[Any] = []             # keeps tensors alive so that ids stay unique
        self._names: dict[str, int] = {}       # name base -> how many nodes have it

    def name(self, base: str) -> str:
        """A fresh node name from a module path or function name: 'features_3', 'add_2'."""
        clean = _CLEAN.get(base)
        if clean is None:
            clean = _CLEAN[base] = _NOT_WORD.sub("_", base).strip("_") or "node"
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
        chunks = self._chunks
        chunks[-1][0].append(name)
        for source in (found if preds is None else preds):
            chunks[-1][1].append((source, name))
            if source not in nodes:   # an edge from a name that is no node: networkx adds it now
                chunks.append(([], []))
        return node

    def made(self, name: str, tensors: list[Tensor]) -> None:
        """`tensors` are the outputs of node `name`, in order (later readers depend on it)."""
        for index, t in enumerate(tensors):
            self.producer[id(t)] = (name, index)
        self.alive.append(tensors)

    def mark_data_dependent(self, assumptions: dict[str, str]) -> None:
        """Nodes whose own output size depends on data (`assumptions`: node -> why), and every
        node downstream of one, are `data_dependent`."""
        affected = set(assumptions)
        if assumptions:
            self._dag = _digraph(self._chunks)
        for source in assumptions:
            affected |= nx.descendants(self._dag, source)
        for name in affected:
            self.nodes[name].data_dependent = True
        for name, why in assumptions.items():
            self.nodes[name].assumption = why

    def graph(self) -> CostGraph:
        """The nodes, and their edges as a DiGraph made on first read."""
        return CostGraph(self.nodes, self._dag if self._dag is not None else
                         functools.partial(_digraph, self._chunks))


def _digraph(chunks: list[tuple[list[str], list[tuple[str, str]]]]) -> nx.DiGraph:
    """The DiGraph of the builder's nodes and edges: networkx clears its caches on every add_node
    / add_edge, so each chunk goes in at once (its nodes, then its edges, which join nodes added
    before or, for an edge from a name that is no node, add that name)."""
    dag = nx.DiGraph()
    for nodes, edges in chunks:
        dag.add_nodes_from(nodes)
        dag.add_edges_from(edges)
    return dag
