"""The cost graph: one typed `Node` per graph node, and `CostGraph`, the nodes in execution order
with their data edges. Pure Python: imports neither torch nor networkx.

`capture/builder.py` is the only code that makes nodes and edges; `analysis/annotate.py` fills in
each node's annotation fields (`cost`, `category`, `status`, `reason`,
`call_costs`). Every other stage reads
the fields. `report.graph` is a CostGraph:

    for node in report.graph:                      # Nodes, in execution order
        if node.data_dependent: ...
    report.graph.nodes["conv1"].outputs           # a Node by name
    report.graph.predecessors("relu")             # names of the nodes it reads

The edges live in `graph.dag`, a networkx DiGraph over the node names (no attributes), which the
builder fills and the analyses walk; core/ only holds it.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .calls import Recorded
from .cost import Cost
from .report import CallCost
from .tensors import TensorSpec
from .vocab import Category, NodeKind, NodeStatus


@dataclass(slots=True, eq=False)
class Node:
    """One graph node: a placeholder, a torch.nn leaf (`call_module`), a torch call outside a leaf
    (`call_function` / `call_method`), a `get_attr` (fx only) or the output."""

    name: str
    order: int                                     # position in execution order
    kind: NodeKind
    target: str                                    # "Conv2d", "torch.add", "Tensor.view", input
    module: str = ""                               # qualified module path; "" at the top level
    inputs: tuple[TensorSpec, ...] = ()            # the activations it reads (no weights)
    outputs: tuple[TensorSpec, ...] = ()
    calls: tuple[Recorded, ...] = ()               # the torch calls it made, in order
    sources: tuple[tuple[str, int] | None, ...] = ()  # per input: (node, output index) that made
                                                   # it; None for a tensor made by no graph node
    unrecorded: bool = False                       # made new tensors through no visible torch op
    data_dependent: bool = False                   # its sizes depend on tensor values (upstream)
    assumption: str = ""                           # why its own output size depends on data
    # written by analysis/annotate.py
    cost: Cost | None = None
    category: Category | None = None
    status: NodeStatus | None = None
    reason: str = ""
    call_costs: tuple[CallCost, ...] = ()          # the forward cost of each of `calls`


@dataclass(slots=True, eq=False)
class CostGraph:
    """The nodes of one capture in execution order (`nodes`: name -> Node) and their data edges
    (`dag`: a networkx DiGraph over the names, built by capture/builder.py). Iterating gives the
    Nodes. `context` caches the analyses of this graph (analysis/context.py)."""

    nodes: dict[str, Node]
    #: the networkx.DiGraph, held opaquely here, or a function that makes it: the builder's,
    #: called on the first read of `dag` (an analysis that never walks the edges never builds it)
    make_dag: Any = field(repr=False)
    context: Any = field(default=None, repr=False)

    @property
    def dag(self) -> Any:
        """The data edges: a networkx DiGraph over the node names (no attributes)."""
        dag = self.make_dag
        if callable(dag):
            dag = self.make_dag = dag()
        return dag

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def number_of_nodes(self) -> int:
        return len(self.nodes)

    def predecessors(self, name: str) -> Iterator[str]:
        return self.dag.predecessors(name)

    def successors(self, name: str) -> Iterator[str]:
        return self.dag.successors(name)

    @property
    def edges(self) -> Any:
        return self.dag.edges
