"""A layered (Sugiyama-like) drawing of the analysis graph, computed in Python with networkx.

`graph_view(g)` picks the nodes to draw (every node but `get_attr`, or, above `max_nodes`, the
modules at the shallowest depth that brings the count under it), and `layered(dag)` places them:

0. metadata nodes (`x.size()`, which make no tensor) and `get_attr` are left out;
1. layers: each node at its topological generation (longest path from the inputs); an input is
   pulled right, next to its first reader, so an attention mask does not stretch across the page;
2. an edge that skips layers gets one dummy point per layer it crosses, so a shortcut runs in its
   own lane instead of through the nodes of the branch beside it;
3. order within a layer: barycenter sweeps (down, up, down, up, down) to cut crossings;
4. coordinates: x = layer, y = rank in the layer, centred on 0.

Pure Python on the graph (no torch, no plotting library): the figure code in `figures.py` draws
the result with plotly, and the tests check the layout without a browser.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from ..core.cost import ZERO, total
from ..core.graph import CostGraph

#: above this many drawn nodes, the graph is collapsed to modules (see `graph_view`).
MAX_NODES = 2500
#: an edge longer than this many layers is drawn straight, without dummy points.
MAX_SPAN = 400
SWEEPS = 5


@dataclass
class View:
    """What the graph figure draws: `dag` holds one node per drawn item with `module`, `target`,
    `category`, `status`, `kind` and `cost` (summed over members when collapsed), plus `members`
    (the graph nodes it stands for). `depth` is the module depth collapsed to, or None."""

    dag: nx.DiGraph
    depth: int | None = None
    total_nodes: int = 0


@dataclass
class Layout:
    pos: dict[str, tuple[float, float]]
    edges: list[list[tuple[float, float]]]          # one polyline per edge, through its dummies
    layers: int = 0
    extent: tuple[float, float] = (0.0, 0.0)       # min and max y
    blocks: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)


def _drawn(g: CostGraph) -> list[str]:
    """Nodes worth a marker: not `get_attr`, and not metadata (`x.size()`: no tensor out)."""
    return [d.name for d in g if d.kind != "get_attr"
            and (d.outputs or d.kind in ("output", "placeholder")
                 or d.cost not in (None, ZERO))]


def full_view(g: CostGraph) -> nx.DiGraph:
    dag = nx.DiGraph()
    for n in _drawn(g):
        d = g.nodes[n]
        dag.add_node(n, module=d.module, target=str(d.target),
                     category=str(d.category or ""), status=str(d.status or ""),
                     kind=str(d.kind), cost=d.cost or ZERO, members=(n,))
    dag.add_edges_from((u, v) for u, v in g.edges if u in dag and v in dag)
    return dag


def collapsed_view(g: CostGraph, depth: int) -> nx.DiGraph | None:
    """One node per module at `depth` (a node in a shallower module stays itself); None when the
    result has a cycle (a module called twice around another)."""
    group: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for n in _drawn(g):
        module = g.nodes[n].module
        parts = module.split(".") if module else []
        key = ".".join(parts[:depth]) if len(parts) >= depth else n
        group[n] = key
        members.setdefault(key, []).append(n)
    dag = nx.DiGraph()
    for key, names in members.items():
        first = g.nodes[names[0]]
        single = len(names) == 1
        dag.add_node(key, module=first.module if single else key,
                     target=str(first.target) if single else f"{len(names)} nodes",
                     category=str(first.category or "") if single else "module",
                     status=str(first.status or ""), kind=str(first.kind)
                     if single else "module",
                     cost=total(g.nodes[n].cost or ZERO for n in names),
                     members=tuple(names))
    dag.add_edges_from((group[u], group[v]) for u, v in g.edges
                       if u in group and v in group and group[u] != group[v])
    return dag if nx.is_directed_acyclic_graph(dag) else None


def graph_view(g: CostGraph, max_nodes: int = MAX_NODES) -> View:
    """Every node when there are at most `max_nodes`; else the modules at the shallowest depth
    whose collapsed graph has at most `max_nodes` nodes (the deepest one that still helps when
    none does)."""
    drawn = _drawn(g)
    if len(drawn) <= max_nodes:
        return View(full_view(g), None, len(drawn))
    depths = max((len(g.nodes[n].module.split(".")) for n in drawn), default=1)
    best = None
    for depth in range(depths, 0, -1):   # deepest first: keep as much detail as fits
        dag = collapsed_view(g, depth)
        if dag is None:
            continue
        if dag.number_of_nodes() <= max_nodes:
            return View(dag, depth, len(drawn))
        best = best or View(dag, depth, len(drawn))
    return best or View(full_view(g), None, len(drawn))


def layered(dag: nx.DiGraph, blocks: dict[str, list[str]] | None = None) -> Layout:
    """Positions and edge polylines of `dag` (see the module docstring). `blocks` maps a name to
    its nodes; the layout gives each block's bounding box (x0, x1, y0, y1)."""
    layer: dict[Any, int] = {}
    for i, generation in enumerate(nx.topological_generations(dag)):
        for n in generation:
            layer[n] = i
    for n in dag:   # inputs next to their first reader
        succ = [layer[s] for s in dag.successors(n)]
        if dag.in_degree(n) == 0 and succ:
            layer[n] = max(layer[n], min(succ) - 1)
    rows: list[list[Any]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    order = {n: i for i, n in enumerate(dag)}
    up: dict[Any, list[Any]] = {}
    down: dict[Any, list[Any]] = {}
    chains: list[list[Any]] = []
    for n in sorted(dag, key=order.__getitem__):
        rows[layer[n]].append(n)
    for u, v in dag.edges:
        span = layer[v] - layer[u]
        chain = [u]
        if 1 < span <= MAX_SPAN:
            for k in range(1, span):
                dummy = ("dummy", u, v, k)
                layer[dummy] = layer[u] + k
                rows[layer[dummy]].append(dummy)
                chain.append(dummy)
        chain.append(v)
        chains.append(chain)
        for a, b in zip(chain, chain[1:]):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    rank: dict[Any, float] = {}
    for row in rows:
        for i, n in enumerate(row):
            rank[n] = i
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        seq = rows if downward else rows[::-1]
        links = up if downward else down
        for row in seq:
            keys = {}
            for n in row:
                near = [rank[m] for m in links.get(n, ()) if layer[m] != layer[n]]
                keys[n] = sum(near) / len(near) if near else rank[n]
            row.sort(key=lambda n: (keys[n], rank[n]))
            for i, n in enumerate(row):
                rank[n] = i
    pos: dict[Any, tuple[float, float]] = {}
    for x, row in enumerate(rows):
        mid = (len(row) - 1) / 2
        for i, n in enumerate(row):
            pos[n] = (float(x), float(i - mid))
    edges = [[pos[n] for n in chain] for chain in chains]
    ys = [p[1] for n, p in pos.items() if not isinstance(n, tuple)] or [0.0]
    boxes = {}
    for name, nodes in (blocks or {}).items():
        pts = [pos[n] for n in nodes if n in pos]
        if pts:
            boxes[name] = (min(p[0] for p in pts), max(p[0] for p in pts),
                           min(p[1] for p in pts), max(p[1] for p in pts))
    return Layout({n: p for n, p in pos.items() if not isinstance(n, tuple)},
                  edges, len(rows), (min(ys), max(ys)), boxes)


def _in_module(module: str, path: str) -> bool:
    return module == path or module.startswith(path + ".")
