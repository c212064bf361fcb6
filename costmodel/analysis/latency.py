"""Latency estimate: a roofline per op plus the fixed costs of eager PyTorch, on a device profile.

    time(op)    = max(FLOPs / rate, MAC bytes / bandwidth) * in_model_scale
                  + kernels(op) * overhead(kind) * overhead_scale
                  + conv weight bytes * weight_pass_s                  (convs, eager)
                  + pages of new tensors > mmap_bytes * page_fault_s   (eager)
    time(model) = sum of time(op) + free ops * free_op_s * overhead_scale
                  + module calls * module_call_s * overhead_scale

Six terms, reported separately (`Estimate.terms()`): compute (ops whose FLOPs term is the larger),
memory (ops whose bytes term is the larger), weights (the pass eager convs make over their cold
weights: oneDNN reorders them on every call, apart from the compute), allocation (the page
faults of new tensors too large for the allocator to reuse: each is mapped anew per call, and
every page faults in on its first write), dispatch (the per-kernel
fixed cost, and the dispatch of ops that launch no kernel: views, reshapes, dropout in eval) and
module calls (the Python cost of each `nn.Module.__call__`, leaf and container, counted from the
graph's module paths).
`in_model_scale` and `overhead_scale` are fitted by `calibrate.py` on synthetic blocks it builds
itself (never on a user's model); the interval (`Estimate.interval()`) is the spread of the
calibration's residuals on held-out synthetic blocks.

`rate` is the profile's dense GEMM peak, or its calibrated rate for kinds of op that run faster
or slower (on a CPU: spatial convs, depthwise and group convs, norms, activations, max pooling),
and the overhead is per kind too where the profile says so. Weights stream from memory at the
streaming bandwidth (an inference reads each once); activations move at the cache bandwidth
when the op's activations fit in the profile's cache (batch-1 activations on a CPU). Every op's
bytes are its ShuffleNet V2 MAC at each tensor's dtype, so the estimate reflects G1 and G2
(bytes), G3 (the per-kernel overhead, and the critical path) and G4 together.

Pure Python on the annotated cost graph (no torch import). Profiles are JSON files; `calibrate.py`
measures one for this machine.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.graph import Node
from ..core.vocab import CONTRACTION, Category, NodeKind, NodeStatus
from . import structure
from .profiles import (  # noqa: F401
    DEFAULT_PROFILE,
    HEAP_FLOOR,
    PAGE_BYTES,
    PROFILES,
    UNMEASURED,
    DeviceProfile,
    available,
    load_profile,
    profile_dir,
    save_profile,
    table_rate,
)
from .skinny import bandwidth, linear_shape

# ---- the estimate ----------------------------------------------------------------------------

@dataclass(frozen=True)
class OpEstimate:
    """The estimate of one graph node."""

    name: str
    module: str
    category: str
    flops: int
    bytes: int
    kernels: int
    seconds: float
    bound: str            # "compute", "memory" or "overhead": the largest of the three terms
    dispatch_s: float = 0.0   # the fixed-cost part of `seconds`
    weights_s: float = 0.0    # the conv weight pass in `seconds`
    faults_s: float = 0.0     # the page faults of its new tensors in `seconds` (the rest is the
                              # roofline)

    @property
    def intensity(self) -> float:
        """Arithmetic intensity: FLOPs per byte of memory access."""
        return self.flops / self.bytes if self.bytes else 0.0


@dataclass(frozen=True)
class Estimate:
    profile: DeviceProfile
    ops: tuple[OpEstimate, ...]
    critical_path_s: float
    critical_path: tuple[str, ...]
    module_calls: int = 0         # nn.Module.__call__s one forward makes (leaves and containers)
    free_ops: int = 0             # ops that launch no kernel (views, reshapes, dropout in eval)
    execution: str = "eager"      # "eager" (op by op) or "fused" (the deployed view, fusion.py)
    run_s: float = 0.0            # fused: the runtime's fixed cost per inference
    heap_pages: int = 0           # pages of new tensors from the heap (HEAP_FLOOR..mmap_bytes)

    @property
    def total_s(self) -> float:
        """Every kernel one after another, as eager PyTorch runs them, plus the dispatch of free
        ops and the Python cost of the module calls."""
        return (sum(op.seconds for op in self.ops) + self.free_ops_s + self.module_calls_s
                + self.run_s)

    @property
    def free_ops_s(self) -> float:
        return self.free_ops * self.profile.free_op_s * self.profile.overhead_scale

    @property
    def module_calls_s(self) -> float:
        return self.module_calls * self.profile.module_call_s * self.profile.overhead_scale

    def terms(self) -> dict[str, float]:
        """Seconds by term: compute (the roofline of compute-bound ops), memory (of memory-bound
        ops), weights (the conv weight pass), allocation (page faults of new large tensors),
        dispatch (per-kernel fixed costs and free ops), module calls. They sum to total_s."""
        out = {"compute": 0.0, "memory": 0.0, "weights": 0.0, "allocation": 0.0,
               "dispatch": self.free_ops_s + self.run_s, "module calls": self.module_calls_s}
        for op in self.ops:
            roof = op.seconds - op.dispatch_s - op.weights_s - op.faults_s
            out["memory" if roof > 0 and op.bound == "memory" else "compute"] += roof
            out["dispatch"] += op.dispatch_s
            out["weights"] += op.weights_s
            out["allocation"] += op.faults_s
        return out

    @property
    def heap_faults_s(self) -> float:
        """At most how much longer one forward takes if every new tensor glibc serves from its
        heap (HEAP_FLOOR up to the profile's mmap_bytes) faults its pages in: the case of a heap
        trimmed between calls, as in a short-lived process. Not in total_s or the interval,
        which assume a settled heap that reuses its pages: glibc trims when more than twice its
        mmap threshold lies free at the heap's top, and the threshold rises with the largest
        block freed so far, so how much faults depends on what the process ran before, not on
        the model (benchmarks/allocator_faults.py measures it)."""
        return self.heap_pages * self.profile.page_fault_s

    def interval(self) -> tuple[float, float]:
        """(low, high) seconds: total_s times the profile's interval factors (the spread of the
        calibration's residuals on held-out synthetic blocks; see profile.interval_level)."""
        low, high = self.profile.interval
        return self.total_s * low, self.total_s * high

    def by_name(self) -> dict[str, OpEstimate]:
        return {op.name: op for op in self.ops}

    def by_category(self) -> dict[str, float]:
        """Seconds per op category, largest first."""
        out: dict[str, float] = {}
        for op in self.ops:
            out[op.category] = out.get(op.category, 0.0) + op.seconds
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval()
        return {"profile": self.profile.to_dict(), "execution": self.execution,
                "total_s": self.total_s,
                "interval_s": [low, high], "interval_level": self.profile.interval_level,
                "heap_faults_s_max": self.heap_faults_s,
                "terms": self.terms(), "module_calls": self.module_calls,
                "free_ops": self.free_ops, "critical_path_s": self.critical_path_s,
                "ops": [{"name": o.name, "module": o.module, "category": o.category,
                         "seconds": o.seconds, "intensity": o.intensity, "bound": o.bound,
                         "kernels": o.kernels} for o in self.ops]}


def _lookup(table: Mapping[str, float], kinds: tuple[str, ...], default: float) -> float:
    for kind in kinds:
        if kind in table:
            return table[kind]
    return default


def op_seconds(flops: int, nbytes: int, kernels: int, kinds: tuple[str, ...] | str | None,
               profile: DeviceProfile, weight_bytes: int = 0,
               shape: tuple[float, float, int] | None = None) -> tuple[float, str]:
    """max(FLOPs / rate, bytes / bandwidth) * in_model_scale + kernels * overhead *
    overhead_scale, and which term is largest (op_terms() gives the two parts).

    kinds: what the op is, most specific first (op_kinds()); the first with a table in
    profile.tables (when `shape`, the op's (rows, width, groups) from op_shape(), is given) or
    an entry in profile.rates gives the rate (op_rate()), else peak_flops; profile.overheads
    gives the fixed cost, else overhead_s. Bandwidth: `weight_bytes` (parameters, read once
    per inference, so cold) stream at profile.weight_bandwidth(weight_bytes); the other bytes
    (activations, just written by the op before) at the kind's bandwidth (profile.bandwidths),
    else at the cache bandwidth when they fit in profile.cache_bytes, else at the streaming
    bandwidth."""
    roof, fixed, bound = op_terms(flops, nbytes, kernels, kinds, profile, weight_bytes, shape)
    return roof + fixed, bound


_GROUPED = ("group conv", "spatial group conv")
_BY_CHANNELS = ("depthwise conv/2", "depthwise conv")


def op_rate(kinds: tuple[str, ...], profile: DeviceProfile,
            shape: tuple[float, float, int] | None = None) -> float:
    """FLOP/s of an op of `kinds` (and GEMM `shape`: rows, width, groups) on `profile` (see
    op_seconds). A grouped conv takes its kind's group tables (profile.grouped_rate); a
    depthwise conv's table is by rows and channels (its groups)."""
    for kind in kinds:
        if shape is not None:
            rows, width, groups = shape
            if kind in _GROUPED:
                rate = profile.grouped_rate(kind, rows, width, groups)
                if rate is not None:
                    return rate
            elif kind in _BY_CHANNELS and kind in profile.tables:   # by channels
                return table_rate(profile.tables[kind], rows, groups)
            elif kind in profile.tables:
                return table_rate(profile.tables[kind], rows, width)
        if kind in profile.rates:
            return profile.rates[kind]
    return profile.peak_flops


def op_terms(flops: int, nbytes: int, kernels: int, kinds: tuple[str, ...] | str | None,
             profile: DeviceProfile, weight_bytes: int = 0,
             shape: tuple[float, float, int] | None = None,
             linear: tuple[int, int] | None = None) -> tuple[float, float, str]:
    """(roofline seconds, fixed-cost seconds, bound) of one op (see op_seconds). `linear`:
    (rows, input width) of a linear on parameter weights, whose weights stream at the profile's
    skinny bandwidth where it covers the rows (analysis/skinny.py); such a linear is memory
    bound by measurement (the skinny table times the whole op per weight byte), so the rate
    table's compute term, which at 1-16 rows measures the same stream, is not added."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(str(k) for k in kinds or ())
    rate = op_rate(kinds, profile, shape)
    activations = max(nbytes - weight_bytes, 0)
    act_bandwidth = _lookup(profile.bandwidths, kinds, 0.0)
    if not act_bandwidth:
        act_bandwidth = profile.bandwidth_bytes_per_s
        if profile.cache_bandwidth_bytes_per_s and activations <= profile.cache_bytes:
            act_bandwidth = profile.cache_bandwidth_bytes_per_s
    compute = flops / rate
    weights = nbytes - activations
    skinny = bandwidth(profile.skinny, *linear) if weights and linear else None
    if skinny:          # the skinny table timed these very linears: their time is the stream
        compute = 0.0
    memory = (weights / (skinny or profile.weight_bandwidth(weights)) if weights else 0.0) \
        + activations / act_bandwidth
    overhead = kernels * _lookup(profile.overheads, kinds, profile.overhead_s)
    scale = profile.in_model_scale if is_dense(kinds) else profile.light_scale
    compute, memory = compute * scale, memory * scale
    overhead *= profile.overhead_scale
    bound = max((compute, "compute"), (memory, "memory"), (overhead, "overhead"))[1]
    return max(compute, memory), overhead, bound


_CATEGORIES = {str(c) for c in Category}
_DENSE = {str(c) for c in CONTRACTION if c is not Category.DEPTHWISE_CONV}


def is_dense(kinds: tuple[str, ...]) -> bool:
    """Whether op kinds (op_kinds(), or a category alone) name a dense contraction: a conv
    that is not depthwise, linear, matmul or attention (in_model_scale applies), rather than
    a light op (light_scale)."""
    return any(k in _DENSE for k in kinds)


def op_kinds(node: Node) -> tuple[str, ...]:
    """The kinds of a graph node, most specific first: "spatial conv" ("spatial group conv")
    for a dense (grouped) conv whose kernel is larger than 1x1, "depthwise conv/2" for a
    strided depthwise conv, its op name (when it makes one
    call, and the name is not also a category: the op "conv" covers every category of conv),
    and its category."""
    calls = node.calls
    category = node.category
    kinds = []
    if category in (Category.CONV, Category.GROUP_CONV):
        weight = next((rec.call.t("weight") for rec in calls if rec.call.op == "conv"), None)
        if weight is not None and any(k > 1 for k in weight.shape[2:]):
            kinds.append("spatial conv" if category is Category.CONV else "spatial group conv")
    if category is Category.DEPTHWISE_CONV and len(calls) == 1 and calls[0].call.op == "conv":
        stride = calls[0].call.attr("stride", 1)
        if max(stride if isinstance(stride, (tuple, list)) else (stride,), default=1) > 1:
            kinds.append("depthwise conv/2")
    if len(calls) == 1 and calls[0].call.op not in _CATEGORIES:
        kinds.append(calls[0].call.op)
    if category is not None:
        kinds.append(str(category))
    return tuple(kinds)


def op_shape(node: Node) -> tuple[float, float, int] | None:
    """(rows, width, groups) of a contraction as one GEMM per group, for the profile's rate
    tables. rows: a conv's output positions (batch included), a linear layer's or attention's
    tokens, a matmul's rows per matrix, attention's query rows. width: for a conv or linear
    layer the geometric mean of
    the GEMM's inner and output dimensions (a conv: in channels per group x kernel positions,
    and out channels per group), which orders the efficiency of unbalanced shapes (64 -> 256
    channels) better than either alone; for a matmul the smaller of the two (an attention
    head's width in both of attention's products); for scaled_dot_product_attention without a
    causal mask (a decode step over its cache) the keys per head, and as rows the query rows
    times the query heads that share each key/value head (grouped-query attention: g query
    heads over one head's keys do the work of g x rows over that head, at g times the FLOPs per
    byte of keys and values that the table's equal-head cells have). groups: a conv's groups,
    else 1. None for other ops (causal attention included), and for nodes of several calls."""
    if len(node.calls) != 1:
        return None
    call = node.calls[0].call
    out = call.outputs[0] if call.outputs else None
    if out is None or not out.shape:
        return None
    if call.op == "conv":
        weight, groups = call.t("weight"), call.attr("groups", 1) or 1
        if weight is None or len(out.shape) < 3:
            return None
        return (out.shape[0] * math.prod(out.shape[2:]),
                math.sqrt(math.prod(weight.shape[1:]) * (weight.shape[0] // groups)), groups)
    if call.op == "linear":
        weight = call.t("weight")
        if weight is None or len(weight.shape) != 2:
            return None
        return out.numel / weight.shape[0], math.sqrt(weight.shape[0] * weight.shape[1]), 1
    if call.op == "mha":
        query = call.t("query")
        return (query.numel / query.shape[-1], query.shape[-1], 1) if query is not None else None
    if call.op == "sdpa" and not call.attr("is_causal"):        # the profile's "sdpa" table
        query, key = call.t("query"), call.t("key")
        if query is None or key is None or query.ndim < 2 or key.ndim < 2:
            return None
        return query.shape[-2] * gqa_group(query.shape, key.shape), key.shape[-2], 1
    if call.op in ("matmul", "einsum") and len(out.shape) >= 2 and node.cost.madds:
        inner = node.cost.madds / out.numel
        return out.shape[-2], max(1.0, min(inner, out.shape[-1])), 1
    return None


def gqa_group(query: tuple[int, ...], key: tuple[int, ...]) -> int:
    """Query heads per key/value head of an attention call laid out (batch, ..., heads, rows,
    width): 1 unless grouped-query attention (fewer key heads than query heads, dividing them,
    in dimension -3). Inputs of fewer than 4 dimensions have no heads dimension: 1."""
    if len(query) < 4 or len(key) < 4 or not key[-3] or query[-3] <= key[-3]:
        return 1
    return query[-3] // key[-3] if query[-3] % key[-3] == 0 else 1


def fresh_pages(node: Node, mmap_bytes: int, at_most: int | None = None) -> int:
    """4 KiB pages of the new tensors larger than `mmap_bytes` (and, given `at_most`, no larger
    than it) that a graph node's kernels write: the outputs of its costed calls that are not in
    place (a view launches no kernel and has no cost). Each tensor over glibc's mmap threshold
    is mapped anew per call, and every page faults in on its first write (profiles.MMAP_BYTES).
    Smaller tensors come from the heap, and fault only when the heap was trimmed before them:
    history-dependent (benchmarks/allocator_faults.py), so the estimate counts none of them."""
    calls = node.calls
    if not calls or node.status is not NodeStatus.COSTED:
        return 0
    costs = node.call_costs or (None,) * len(calls)
    pages = 0
    for rec, cc in zip(calls, costs):
        call = rec.call
        if call.in_place or (cc is not None and not (cc.cost.flops or cc.cost.mac)):
            continue
        for out in call.outputs:
            size = out.numel * out.itemsize
            if size > mmap_bytes and (at_most is None or size <= at_most):
                pages += -(-size // PAGE_BYTES)
    return pages


def weight_bytes(node: Node) -> int:
    """Bytes of parameters a graph node reads (its MAC bytes that are weights)."""
    return sum(s.reads * s.itemsize for rec in node.calls
               for s in rec.call.inputs() if s.role == "param")


def cold_bytes(node: Node, nodes: Mapping[str, Node]) -> int:
    """Bytes a graph node reads that no op of this forward has just written: its parameters
    (weight_bytes), and the inputs that enter the graph (placeholders) or that no graph node
    made (a decode step's KV cache, held in the model's cache object). Like weights they stream
    from memory at the weight bandwidth; what an op before wrote is read at the cache bandwidth
    when it fits (op_terms)."""
    entering = sum(spec.reads * spec.itemsize for spec, src in zip(node.inputs, node.sources)
                   if src is None or nodes[src[0]].kind is NodeKind.PLACEHOLDER)
    return weight_bytes(node) + entering


def estimate(graph: Any, profile: DeviceProfile | str | None = None,
             execution: str = "eager") -> Estimate:
    """The latency estimate of an analysed model: `graph` is `report.graph` or a Report.
    execution: "eager" (PyTorch eager, op by op) or "fused" (the deployed view: batch norm
    folded, element-wise chains fused into their producer; fusion.py). Computed once per graph,
    profile and execution (analysis/context.py keeps it)."""
    from .context import context
    return context(graph).estimate(profile, execution)


def compute_estimate(ctx: Any, profile: DeviceProfile) -> Estimate:
    """The estimate itself, on an analysis context (its kernel counts and kernel DAG)."""
    nodes = ctx.graph.nodes
    ops = []
    for name, k in ctx.kernels.items():
        node = nodes[name]
        cost = node.cost
        roof, fixed, bound = op_terms(cost.flops, cost.mac_bytes, k, op_kinds(node), profile,
                                      cold_bytes(node, nodes), op_shape(node), linear_shape(node))
        passed = weight_bytes(node) * profile.weight_pass_s if node.category in _CONVS else 0.0
        faults = (fresh_pages(node, profile.mmap_bytes) * profile.page_fault_s
                  if profile.page_fault_s else 0.0)
        ops.append(OpEstimate(name, node.module, str(node.category or ""), cost.flops,
                              cost.mac_bytes, k, roof + fixed + passed + faults, bound, fixed,
                              passed, faults))
    seconds = {op.name: op.seconds for op in ops}
    length, path = structure.longest_path(ctx.kernel_dag, lambda n: seconds.get(n, 0.0))
    calls, free = call_counts(ctx.graph, ctx.kernels)
    heap = sum(fresh_pages(nodes[name], HEAP_FLOOR, profile.mmap_bytes) for name in ctx.kernels)
    return Estimate(profile, tuple(ops), float(length), path, calls, free, heap_pages=heap)


_CONVS = {Category.CONV, Category.GROUP_CONV, Category.DEPTHWISE_CONV}
_CALLS = {NodeKind.CALL_MODULE, NodeKind.CALL_FUNCTION, NodeKind.CALL_METHOD}


def call_counts(graph: Any, kernels: Mapping[str, int]) -> tuple[int, int]:
    """(module calls, free ops) of one forward: every leaf-module node is one
    nn.Module.__call__; every container on a node's module path is called once (the root
    included); a torch call that launches no kernel (a view, a reshape, dropout in eval) is a
    free op."""
    leaf_calls = free = 0
    containers: set[str] = {""}
    for node in graph:
        if node.kind not in _CALLS:
            continue
        path = node.module
        if node.kind is NodeKind.CALL_MODULE:
            leaf_calls += 1
            path = path.rpartition(".")[0] if path else ""
        while path and path not in containers:
            containers.add(path)
            path = path.rpartition(".")[0]
        if not kernels.get(node.name):
            free += 1
    return leaf_calls + len(containers), free
