"""Structure: kernels, critical path, parallelism and fragmentation (ShuffleNet V2, G3).

Plain functions of the annotated cost graph (`report.graph`, a core.graph.CostGraph); they walk
its edges with networkx (`graph.dag`). No torch import. analysis/context.py keeps their results
per graph, so a report computes each of them once.

Definitions (docs/guidelines.md states the same):

- **kernel**: a graph node that launches work: a costed (or unsupported) call. Views, `getitem`,
  placeholders, outputs, eval dropout and other zero-cost nodes are not kernels. A torch.nn leaf
  that makes several costed torch calls (nn.MultiheadAttention) counts one kernel per call.
- **kernel DAG**: kernels, with an edge u -> v when v reads u's output, directly or through
  non-kernel nodes (views).
- **critical path**: the longest path through the kernel DAG, in kernels or in estimated time.
- **width profile**: kernels per topological generation of the kernel DAG (kernels that could run
  at once). **average parallelism** = kernels / critical-path kernels.
- **fragment** (the paper's "operators in series and branches in parallel"): one *anchor*
  kernel (a convolution, linear, matmul or attention op, or a pooling op) together with the
  element-wise, norm, activation and data-movement kernels around it, which never start a fragment
  of their own. A depthwise conv whose output reaches a 1x1 dense conv through such kernels only
  (a depthwise-separable conv, as in NASNet, MobileNet and ShuffleNet) is one fragment. With
  this definition the paper's G3 nets count 1, 2, 4, 2 and 4 fragments, NASNet-A's normal cell 13
  (5 separable convs applied twice + 3 poolings) and ResNet's blocks 2 (basic) or 3 (bottleneck);
  a block whose shortcut is a 1x1 projection counts that conv too (3 and 4).
- **branches** of a block: the largest number of its fragments that can run at once (the widest
  topological generation of the fragment DAG). **longest chain**: fragments on the longest path
  through the block; `serial_kernels` is the same in kernels.
- **block**: by default each child of a *repeated stage*. A stage is the parent of the deepest
  modules that contain at least two anchors and have a sibling with the same sequence of anchor
  ops (ResNet's layer1..4, ShuffleNet's stages, MobileNet's `features`, Inception's root, whose
  Mixed_* modules repeat). Its children with at least two anchors are blocks (a ResNet
  bottleneck, a ShuffleNet unit, an Inception module). `depth=N` instead takes every module at
  depth N that has a kernel.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import networkx as nx

from ..core.graph import CostGraph, Node
from ..core.vocab import COMPUTE, CONTRACTION, Category, NodeStatus

#: categories that start a fragment: the contraction ops and pooling.
ANCHORS = CONTRACTION | {Category.POOL}


@dataclass(frozen=True)
class ModelStructure:
    """Whole-model parallelism figures."""

    kernels: int                       # ops that launch work
    critical_path_kernels: int         # kernels on the longest dependency chain
    critical_path: tuple[str, ...]     # its node names
    width_profile: tuple[int, ...]     # kernels per topological generation
    parallelism: float                 # kernels / critical_path_kernels

    @property
    def max_width(self) -> int:
        return max(self.width_profile, default=0)


@dataclass(frozen=True)
class BlockStructure:
    """Fragmentation of one block (a module path)."""

    path: str
    kernels: int
    fragments: int
    branches: int
    longest_chain: int                 # fragments on the longest path through the block
    serial_kernels: int                # kernels on the longest path through the block


# ---- kernels ---------------------------------------------------------------------------------

def kernel_count(node: Node) -> int:
    """Kernels one graph node launches: 0 for views and other zero-cost nodes, else one per
    costed torch call (at least 1; an unsupported op is assumed to launch one). Reads the
    per-call costs annotate wrote (`node.call_costs`); runs no formula."""
    if node.kind not in COMPUTE:
        return 0
    status = node.status
    if status is NodeStatus.UNSUPPORTED:
        return max(1, len(node.calls))
    if status is not NodeStatus.COSTED:
        return 0
    if len(node.calls) <= 1:
        return 1
    return max(1, sum(1 for c in node.call_costs if not c.supported or c.cost.flops or c.cost.mac))


def kernels(g: CostGraph) -> dict[str, int]:
    """Node name -> kernels it launches, for every node that launches at least one."""
    out = {}
    for node in g:
        k = kernel_count(node)
        if k:
            out[node.name] = k
    return out


def _topological(g: CostGraph) -> Iterable[str]:
    """Graph nodes in execution order (the builder's order) when it is topological, which it
    always is for a captured graph."""
    nodes = g.nodes
    return nodes if all(nodes[u].order < nodes[v].order for u, v in g.dag.edges) \
        else nx.topological_sort(g.dag)


def contract(g: CostGraph, keep: Callable[[str], bool],
             nodes: Iterable[str] | None = None) -> nx.DiGraph:
    """The DAG of the nodes `keep` selects, with an edge u -> v when v depends on u through
    nodes that are not kept. `nodes` (in execution order) limits the walk to a block."""
    dag = nx.DiGraph()
    frontier: dict[str, frozenset[str]] = {}
    empty: frozenset[str] = frozenset()
    preds = g.dag.pred
    for name in _topological(g) if nodes is None else nodes:
        upstream = empty
        for pred in preds[name]:
            f = frontier.get(pred)
            if f:
                upstream = upstream | f
        if keep(name):
            dag.add_node(name)
            dag.add_edges_from((u, name) for u in upstream)
            frontier[name] = frozenset((name,))
        else:
            frontier[name] = upstream
    return dag


def kernel_dag(g: CostGraph, counts: Mapping[str, int] | None = None) -> nx.DiGraph:
    """Kernels only, each with a `kernels` attribute (how many it launches). `counts` (kernels)
    may be passed to save recomputing it."""
    counts = kernels(g) if counts is None else counts
    dag = contract(g, counts.__contains__)
    nx.set_node_attributes(dag, counts, "kernels")
    return dag


def longest_path(dag: nx.DiGraph, weight: Mapping[str, float] | Callable[[str], float]
                 ) -> tuple[float, tuple[str, ...]]:
    """The heaviest path through `dag`, weighting each node (not edge); (length, nodes)."""
    w = weight if callable(weight) else weight.__getitem__
    best: dict[str, float] = {}
    back: dict[str, str | None] = {}
    for node in nx.topological_sort(dag):
        prev = max(dag.predecessors(node), key=best.__getitem__, default=None)
        best[node] = w(node) + (best[prev] if prev is not None else 0)
        back[node] = prev
    if not best:
        return 0, ()
    end = max(best, key=best.__getitem__)
    path = [end]
    while back[path[-1]] is not None:
        path.append(back[path[-1]])
    return best[end], tuple(reversed(path))


def critical_path(g: CostGraph, weight: Mapping[str, float] | None = None
                  ) -> tuple[float, tuple[str, ...]]:
    """The critical path of the model: in kernels by default, or in `weight` per node (e.g. the
    estimated seconds of each node, from latency.estimate)."""
    dag = kernel_dag(g)
    if weight is None:
        return longest_path(dag, lambda n: dag.nodes[n]["kernels"])
    return longest_path(dag, lambda n: weight.get(n, 0.0))


def model_structure(g: CostGraph, dag: nx.DiGraph | None = None) -> ModelStructure:
    """Kernels, critical path and width profile; `dag` (kernel_dag) may be passed."""
    dag = kernel_dag(g) if dag is None else dag
    count = lambda n: dag.nodes[n]["kernels"]  # noqa: E731
    total = sum(count(n) for n in dag)
    length, path = longest_path(dag, count)
    widths = tuple(sum(count(n) for n in gen) for gen in nx.topological_generations(dag))
    return ModelStructure(total, int(length), path, widths, total / length if length else 0.0)


# ---- fragments and blocks --------------------------------------------------------------------

def _in_block(module: str, path: str) -> bool:
    return not path or module == path or module.startswith(path + ".")


def is_anchor(node: Node) -> bool:
    return kernel_count(node) > 0 and node.category in ANCHORS


def _conv_weight(node: Node):
    for rec in node.calls:
        if rec.call.op == "conv":
            return rec.call.t("weight"), rec.call.attr("groups", 1)
    return None, 1


def _is_pointwise(node: Node) -> bool:
    weight, groups = _conv_weight(node)
    return (node.category is Category.CONV and weight is not None and groups == 1
            and all(k == 1 for k in weight.shape[2:]))


def block_nodes(g: CostGraph, path: str) -> list[str]:
    """The nodes of module `path` ('' = the whole model), in execution order."""
    return [n for n in _topological(g) if _in_block(g.nodes[n].module, path)]


def fragment_dag(g: CostGraph, path: str = "", nodes: list[str] | None = None) -> nx.DiGraph:
    """The fragments of the block at module `path` ('' = the whole model) as a DAG. Each node is
    a fragment, named after its first anchor, with `members` (its anchor nodes)."""
    nodes = block_nodes(g, path) if nodes is None else nodes
    anchors = contract(g, lambda n: is_anchor(g.nodes[n]), nodes)
    owner: dict[str, str] = {}
    dag = nx.DiGraph()
    for node in nx.topological_sort(anchors):
        upstream = {owner[u] for u in anchors.predecessors(node)}
        if len(upstream) == 1 and _is_pointwise(g.nodes[node]):
            (frag,) = upstream
            members = dag.nodes[frag]["members"]
            if len(members) == 1 and g.nodes[members[0]].category is Category.DEPTHWISE_CONV:
                owner[node] = frag                       # depthwise-separable: one fragment
                dag.nodes[frag]["members"] = members + (node,)
                continue
        owner[node] = node
        dag.add_node(node, members=(node,))
        dag.add_edges_from((u, node) for u in upstream)
    return dag


def block_structure(g: CostGraph, path: str, *, nodes: list[str] | None = None,
                    counts: Mapping[str, int] | None = None) -> BlockStructure:
    """Fragments, branches, longest chain and kernels of the block at module `path`.
    `nodes` (block_nodes) and `counts` (kernels) may be passed to save recomputing them."""
    nodes = block_nodes(g, path) if nodes is None else nodes
    counts = kernels(g) if counts is None else counts
    frags = fragment_dag(g, path, nodes)
    kdag = contract(g, counts.__contains__, nodes)
    chain, _ = longest_path(frags, lambda n: 1)
    serial, _ = longest_path(kdag, counts.__getitem__)
    branches = max((len(gen) for gen in nx.topological_generations(frags)), default=0)
    return BlockStructure(path, sum(counts[n] for n in kdag), frags.number_of_nodes(), branches,
                          int(chain), int(serial))


def _anchors_by_module(g: CostGraph) -> dict[str, list[str]]:
    """Module path -> the anchor nodes under it, in execution order."""
    found: dict[str, list[str]] = {}
    for name in _topological(g):
        node = g.nodes[name]
        if node.module and is_anchor(node):
            parts = node.module.split(".")
            for i in range(1, len(parts) + 1):
                found.setdefault(".".join(parts[:i]), []).append(name)
    return found


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


def _is_stage(g: CostGraph, children: list[str], anchors: Mapping[str, list[str]]) -> bool:
    """Children that run one after another (each reads what the previous one made), at least
    two of which use the same kinds of anchor ops: a stage of repeated blocks."""
    kinds = [frozenset((g.nodes[n].target, g.nodes[n].category) for n in anchors[c])
             for c in children]
    if len(children) < 2 or len(set(kinds)) == len(kinds):
        return False
    return all(_feeds(g, anchors[before][-1], after)
               for before, after in zip(children, children[1:]))


def _feeds(g: CostGraph, start: str, path: str) -> bool:
    """Whether a node of module `path` depends on `start` (a forward walk from `start` that stops
    at the first node of `path` or gives up past the last node of `path` in execution order)."""
    stop = -1
    for node in g:
        if _in_block(node.module, path):
            stop = max(stop, node.order)
    nodes = g.nodes
    seen, todo = {start}, [start]
    while todo:
        for nxt in g.successors(todo.pop()):
            if nxt in seen or nodes[nxt].order > stop:
                continue
            if _in_block(nodes[nxt].module, path):
                return True
            seen.add(nxt)
            todo.append(nxt)
    return False


def find_blocks(g: CostGraph, depth: int | None = None) -> list[str]:
    """Module paths of the blocks, in execution order (see the module docstring)."""
    order = _module_order(g)
    if depth is not None:
        return [p for p in order if p.count(".") + 1 == depth]
    anchors = _anchors_by_module(g)
    children: dict[str, list[str]] = {}
    for path in order:   # children with at least two anchors, in execution order
        if len(anchors.get(path, ())) >= 2:
            children.setdefault(_parent(path), []).append(path)
    found = {c for parent, kids in children.items() if _is_stage(g, kids, anchors) for c in kids}
    if not found:   # nothing repeats: the top-level modules with at least two anchors
        found = set(children.get("", ()))
    found = {p for p in found if not any(q.startswith(p + ".") for q in found)}
    return [p for p in order if p in found]


def _module_order(g: CostGraph) -> list[str]:
    """Every module path that holds a kernel, in the order its first kernel runs."""
    seen: dict[str, None] = {}
    for name in _topological(g):
        node = g.nodes[name]
        if node.module and kernel_count(node):
            parts = node.module.split(".")
            for i in range(1, len(parts) + 1):
                seen.setdefault(".".join(parts[:i]))
    return list(seen)


def blocks(g: CostGraph, depth: int | None = None,
           counts: Mapping[str, int] | None = None) -> list[BlockStructure]:
    """The structure of every block (find_blocks), in execution order. `counts` (kernels) may
    be passed to save recomputing it."""
    paths = find_blocks(g, depth)
    counts = kernels(g) if counts is None else counts
    members: dict[str, list[str]] = {p: [] for p in paths}
    for name in _topological(g):
        module = g.nodes[name].module
        parts = module.split(".") if module else []
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in members:
                members[prefix].append(name)
    return [block_structure(g, p, nodes=members[p], counts=counts) for p in paths]
