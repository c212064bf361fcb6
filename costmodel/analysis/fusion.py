"""The deployed (fused) view of a model: which graph nodes a deployment runtime runs as one kernel,
and the memory access cost (MAC) of each fused kernel.

A deployment runtime (ONNX Runtime, TensorRT, torch.compile) does not run a model op by op as
eager PyTorch does. `fuse(graph)` walks the annotated cost graph in execution order and groups its
kernels (structure.kernels: nodes that launch work; views and reshapes that only change metadata
launch none and never break a chain) into fused kernels:

- a **producer** (a conv, linear, matmul, attention, pooling or any other kernel) starts a group;
- a **batch norm** (eval: running statistics) that reads a conv's or linear's output directly
  is folded into it: its scale goes into the weights and its shift into the bias, so it does no
  work and reads no statistics at run time (its FLOPs and MAC vanish; a producer without a bias
  gains one of `C` elements);
- an **activation or element-wise op** (bias add, residual add, the multiply of a
  squeeze-excite gate, clamp, ...) joins the group of the kernel whose output it reads, when it
  is that output's only consumer (the value never goes to memory); a residual add's other
  operand becomes an external input of the group;
- **data movement** (cat, the copy of a channel shuffle's transpose, a contiguous copy) that reads
  the output of another data-movement group, as its only consumer, joins that group: the
  ShuffleNet V2 split, concat and channel shuffle become one data-movement kernel (the paper,
  Section 3: "the three successive element-wise operations ... are merged");
- anything else (a batch norm after a non-contraction, softmax, a reduction, an op costmodel
  cannot cost) starts its own group; an unsupported op never absorbs another.

**MAC as deployed** of a fused kernel = the bytes of the tensors it reads from outside the group
(each distinct tensor once) + its weights (parameters and buffers; folded batch norms replaced
by their bias) + the tensors it writes that anything outside the group reads. Intermediate
values stay in registers or cache. `mac_per_op` keeps the sum of the members' own MAC (the
ShuffleNet V2 count per op), so a report can print both.

Pure Python on the annotated graph (no torch import); analysis/context.py keeps the result per
graph (`context(report).fused`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..core.graph import CostGraph, Node
from ..core.vocab import Category, NodeKind, NodeStatus

#: categories whose batch norm can be folded into them (a conv or linear followed by BN)
FOLDS_BN = frozenset({Category.CONV, Category.DEPTHWISE_CONV, Category.GROUP_CONV,
                      Category.TRANSPOSED_CONV, Category.LINEAR})
#: categories that join the group of their producer
JOINS = frozenset({Category.ACTIVATION, Category.ELEMENTWISE, Category.DROPOUT})
EXECUTIONS = ("eager", "fused")


@dataclass(frozen=True)
class FusedKernel:
    """One kernel of the deployed graph: a producer and what was fused into it."""

    name: str                         # the group's first node (its producer)
    members: tuple[str, ...]          # graph node names, in execution order
    category: str                     # the producer's category
    kernels: int                      # kernels the producer launches (1 for most ops)
    madds: int
    flops: int                        # the members' FLOPs, less those of folded batch norms
    mac: int                          # MAC as deployed: external inputs + weights + outputs
    mac_bytes: int
    weight_bytes: int                 # the part of mac_bytes that is weights
    mac_per_op: int                   # the members' own MAC summed (counted per op)
    mac_bytes_per_op: int
    folded: tuple[str, ...] = ()      # batch norms folded into the producer
    supported: bool = True            # False when a member has no cost formula

    def to_dict(self) -> dict:
        return {"name": self.name, "members": list(self.members), "category": self.category,
                "kernels": self.kernels, "madds": self.madds, "flops": self.flops,
                "mac": self.mac, "mac_bytes": self.mac_bytes, "weight_bytes": self.weight_bytes,
                "mac_per_op": self.mac_per_op, "mac_bytes_per_op": self.mac_bytes_per_op,
                "folded": list(self.folded), "supported": self.supported}


def check_execution(execution: str) -> str:
    """`execution` itself, or ValueError naming the choices."""
    if execution not in EXECUTIONS:
        raise ValueError(f"execution={execution!r} is not one of {', '.join(EXECUTIONS)}")
    return execution


def _is_batch_norm(node: Node) -> bool:
    """An eval-mode batch norm (running statistics): one that can be folded."""
    return node.category is Category.NORM and len(node.calls) == 1 \
        and node.calls[0].call.op == "batch_norm" and not node.calls[0].call.attr("training")


class _Walk:
    """The graph with its kernel nodes; views and other free nodes are transparent."""

    def __init__(self, graph: CostGraph, kernels: Mapping[str, int]) -> None:
        self.graph, self.kernels = graph, kernels
        self._consumers: dict[str, frozenset[str]] = {}

    def consumers(self, name: str) -> frozenset[str]:
        """Kernel nodes (and the output node) that read `name`'s output, through free nodes."""
        found = self._consumers.get(name)
        if found is None:
            out, stack, seen = set(), list(self.graph.successors(name)), set()
            while stack:
                succ = stack.pop()
                if succ in seen:
                    continue
                seen.add(succ)
                if succ in self.kernels or self.graph.nodes[succ].kind is NodeKind.OUTPUT:
                    out.add(succ)
                else:
                    stack.extend(self.graph.successors(succ))
            found = self._consumers[name] = frozenset(out)
        return found

    def producer(self, source: tuple[str, int] | None) -> str | None:
        """The kernel node (or placeholder) that made a tensor, through free nodes."""
        name = source[0] if source else None
        seen = set()
        while name is not None and name not in self.kernels and name not in seen:
            seen.add(name)
            node = self.graph.nodes[name]
            if node.kind is NodeKind.PLACEHOLDER or not node.sources:
                return name
            first = next((s for s in node.sources if s is not None), None)
            name = first[0] if first else None
        return name

    def kernel_preds(self, node: Node) -> list[str]:
        found = {self.producer(s) for s in node.sources}
        return sorted((p for p in found if p in self.kernels),
                      key=lambda p: -self.graph.nodes[p].order)


def groups(graph: CostGraph, kernels: Mapping[str, int]) -> list[list[str]]:
    """The kernel nodes of `graph` grouped into fused kernels (see the module docstring)."""
    walk = _Walk(graph, kernels)
    group_of: dict[str, int] = {}
    out: list[list[str]] = []
    for node in graph:
        if node.name not in kernels:
            continue
        target = _join(node, walk, group_of, out, graph)
        if target is None:
            group_of[node.name] = len(out)
            out.append([node.name])
        else:
            group_of[node.name] = target
            out[target].append(node.name)
    return out


def _join(node: Node, walk: _Walk, group_of: dict[str, int], out: list[list[str]],
          graph: CostGraph) -> int | None:
    """The group `node` joins, or None when it starts one."""
    if node.status is NodeStatus.UNSUPPORTED:
        return None
    category = node.category
    for pred in walk.kernel_preds(node):
        index = group_of[pred]
        members = out[index]
        if members[-1] != pred or walk.consumers(pred) != {node.name}:
            continue
        head = graph.nodes[members[0]]
        if head.status is NodeStatus.UNSUPPORTED:
            continue
        if _is_batch_norm(node):
            if len(members) == 1 and head.category in FOLDS_BN:
                return index
            return None
        if category in JOINS:
            return index
        if category is Category.DATA_MOVEMENT and head.category is Category.DATA_MOVEMENT:
            return index
    return None


def _bytes(spec) -> tuple[int, int]:
    return spec.reads, spec.reads * spec.itemsize


def _params(node: Node) -> tuple[int, int]:
    elems = nbytes = 0
    for rec in node.calls:
        for s in rec.call.inputs():
            if s.role != "activation":
                elems += s.reads
                nbytes += s.reads * s.itemsize
    return elems, nbytes


def _has_bias(node: Node) -> bool:
    return any(rec.call.t("bias") is not None for rec in node.calls)


def fused_kernel(members: list[str], graph: CostGraph, walk: _Walk) -> FusedKernel:
    """The record of one group: its FLOPs, and its MAC as deployed and per op."""
    nodes = [graph.nodes[m] for m in members]
    inside = set(members)
    head = nodes[0]
    folded = tuple(n.name for n in nodes[1:] if _is_batch_norm(n))
    seen: set[tuple[str, int]] = set()
    mac = mac_bytes = weights = weight_bytes = 0
    for n in nodes:
        if n.name in folded:
            if not _has_bias(head):             # the folded shift becomes the producer's bias
                c = n.outputs[0].shape[1] if n.outputs and len(n.outputs[0].shape) > 1 else 1
                weights, weight_bytes = weights + c, weight_bytes + c * n.outputs[0].itemsize
            continue
        e, b = _params(n)
        weights, weight_bytes = weights + e, weight_bytes + b
        for spec, source in zip(n.inputs, n.sources or (None,) * len(n.inputs)):
            if source is not None and walk.producer(source) in inside:
                continue
            key = source if source is not None else (n.name, id(spec))
            if key in seen:
                continue
            seen.add(key)
            e, b = _bytes(spec)
            mac, mac_bytes = mac + e, mac_bytes + b
        if walk.consumers(n.name) - inside:
            for spec in n.outputs:
                e, b = _bytes(spec)
                mac, mac_bytes = mac + e, mac_bytes + b
    costs = [n.cost for n in nodes if n.cost is not None]
    flops = sum(n.cost.flops for n in nodes if n.cost is not None and n.name not in folded)
    return FusedKernel(
        head.name, tuple(members), str(head.category or ""), walk.kernels[head.name],
        sum(c.madds for c in costs), flops, mac + weights, mac_bytes + weight_bytes,
        weight_bytes, sum(c.mac for c in costs), sum(c.mac_bytes for c in costs), folded,
        all(n.status is not NodeStatus.UNSUPPORTED for n in nodes))


def fuse(graph: CostGraph, kernels: Mapping[str, int]) -> tuple[FusedKernel, ...]:
    """The fused kernels of an annotated graph, in execution order (`kernels`:
    structure.kernels)."""
    walk = _Walk(graph, kernels)
    return tuple(fused_kernel(g, graph, walk) for g in groups(graph, kernels))


def fused(source) -> tuple[FusedKernel, ...]:
    """The fused kernels of a Report (or its graph), computed once per graph."""
    from .context import context
    return context(source).fused


def totals(kernels: tuple[FusedKernel, ...]) -> dict[str, int]:
    """MAC as deployed next to MAC per op (elements and bytes), and the kernel counts."""
    return {"kernels": len(kernels), "mac": sum(k.mac for k in kernels),
            "mac_bytes": sum(k.mac_bytes for k in kernels),
            "mac_per_op": sum(k.mac_per_op for k in kernels),
            "mac_bytes_per_op": sum(k.mac_bytes_per_op for k in kernels),
            "folded_batch_norms": sum(len(k.folded) for k in kernels),
            "fused_ops": sum(len(k.members) - 1 for k in kernels)}



# ---- the fused estimate ----------------------------------------------------------------------

#: keys of DeviceProfile.fused (the deployment runtime's figures) and what they replace
RUNTIME_FLOATS = ("peak_flops", "overhead_s", "in_model_scale", "light_scale", "overhead_scale",
                  "interval_level", "run_s")


def check_runtime(name: str, data: Mapping) -> dict:
    """DeviceProfile.fused read from JSON, checked (ValueError with one line when invalid)."""
    out: dict = {"source": str(data.get("source", ""))}
    for key in RUNTIME_FLOATS:
        if data.get(key) is not None:
            out[key] = float(data[key])
            if out[key] < 0 or (key == "peak_flops" and out[key] == 0):
                raise ValueError(f"device profile {name!r}: fused.{key} must be positive")
    for key in ("rates", "overheads"):
        table = {str(k): float(v) for k, v in (data.get(key) or {}).items()}
        if any(v <= 0 if key == "rates" else v < 0 for v in table.values()):
            raise ValueError(f"device profile {name!r}: fused.{key} must be positive")
        out[key] = table
    if data.get("interval") is not None:
        low, high = (float(v) for v in data["interval"])
        if not 0 < low <= 1 <= high:
            raise ValueError(f"device profile {name!r}: fused.interval must be "
                             f"(low <= 1 <= high), positive")
        out["interval"] = (low, high)
    return out


def runtime_profile(profile):
    """The profile the fused estimate runs on: `profile` with its deployment-runtime figures
    (profile.fused) in place of the eager ones, and no Python costs (a deployed graph makes no
    nn.Module calls and dispatches no views). Rates and fixed costs by kind merge over the
    eager ones, and the eager rate tables (by GEMM shape) give way to the runtime's rates;
    bandwidths and the cache are the machine's. Without figures, the eager ones."""
    import dataclasses
    runtime = dict(profile.fused)
    changes = {k: runtime[k] for k in RUNTIME_FLOATS if k in runtime and k != "run_s"}
    for key in ("rates", "overheads"):
        if runtime.get(key):
            changes[key] = {**getattr(profile, key), **runtime[key]}
    if runtime.get("rates"):       # the tables are eager PyTorch's kernels' (oneDNN): a runtime
        changes["tables"] = {}     # with its own rates uses them instead
    if "interval" in runtime:
        changes["interval"] = tuple(runtime["interval"])
    return dataclasses.replace(profile, module_call_s=0.0, free_op_s=0.0, **changes)


def kernel_terms(k: FusedKernel, graph: CostGraph, runtime) -> tuple[float, float, str]:
    """(roofline seconds, fixed-cost seconds, bound) of one fused kernel on a runtime profile:
    compute = the sum of its members' FLOPs / the rate of each member's kind; memory = its MAC
    bytes as deployed (weights at the streaming bandwidth) under the producer's kind; one fixed
    cost of the producer's kind per kernel it launches."""
    from .latency import op_kinds, op_shape, op_terms
    compute = 0.0
    for name in k.members:
        node = graph.nodes[name]
        if name not in k.folded and node.cost is not None and node.cost.flops:
            compute += op_terms(node.cost.flops, 0, 0, op_kinds(node), runtime,
                                shape=op_shape(node))[0]
    head = op_kinds(graph.nodes[k.name])
    memory, fixed, _ = op_terms(0, k.mac_bytes, k.kernels, head, runtime, k.weight_bytes)
    bound = max((compute, "compute"), (memory, "memory"), (fixed, "overhead"))[1]
    return max(compute, memory), fixed, bound


def compute_estimate(ctx, profile):
    """The fused estimate on an analysis context: per fused kernel, one fixed cost of the
    deployment runtime (times the producer's kernels) + the roofline of its MAC as deployed and of
    its members' FLOPs, each member's at the rate of its own kind (fusion saves memory traffic
    and dispatch, not arithmetic: a fused SiLU still computes its exponentials), on
    runtime_profile(profile); plus the runtime's fixed cost per inference."""
    import networkx as nx

    from . import structure
    from .latency import Estimate, OpEstimate
    runtime = runtime_profile(profile)
    graph = ctx.graph
    ops = []
    for k in ctx.fused:
        roof, fixed, bound = kernel_terms(k, graph, runtime)
        ops.append(OpEstimate(k.name, graph.nodes[k.name].module, k.category, k.flops,
                              k.mac_bytes, k.kernels, roof + fixed, bound, fixed))
    owner = {m: k.name for k in ctx.fused for m in k.members}
    dag = nx.DiGraph()
    dag.add_nodes_from(owner.values())
    dag.add_edges_from((owner[u], owner[v]) for u, v in ctx.kernel_dag.edges
                       if u in owner and v in owner and owner[u] != owner[v])
    seconds = {op.name: op.seconds for op in ops}
    length, path = structure.longest_path(dag, lambda n: seconds.get(n, 0.0))
    run_s = float(profile.fused.get("run_s", 0.0)) * runtime.overhead_scale
    return Estimate(runtime, tuple(ops), float(length), path, 0, 0, "fused", run_s)
