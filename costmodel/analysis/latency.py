"""Latency estimate: a roofline per op plus the fixed costs of eager PyTorch, on a device profile.

    time(op)    = max(FLOPs / rate, MAC bytes / bandwidth) * in_model_scale
                  + kernels(op) * overhead(kind) * overhead_scale
    time(model) = sum of time(op) + free ops * free_op_s * overhead_scale
                  + module calls * module_call_s * overhead_scale

Four terms, reported separately (`Estimate.terms()`): compute (ops whose FLOPs term is the larger),
memory (ops whose bytes term is the larger), dispatch (the per-kernel fixed cost, and the dispatch
of ops that launch no kernel: views, reshapes, dropout in eval) and module calls (the Python cost
of each `nn.Module.__call__`, leaf and container, counted from the graph's module paths).
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

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..core.graph import Node
from ..core.vocab import CONTRACTION, Category, NodeKind
from . import structure


@dataclass(frozen=True)
class DeviceProfile:
    """What the roofline needs to know about a device.

    peak_flops:            achieved FLOP/s of a large dense fp32 GEMM (2 FLOPs per multiply-add)
    bandwidth_bytes_per_s: streaming memory bandwidth (bytes read + written per second)
    overhead_s:            fixed cost of one kernel (framework dispatch + launch), in seconds
    source:                where the numbers come from (a datasheet, or "calibrated on ...")
    rates:                 FLOP/s of kinds of op that run above or below GEMM peak, by op name
                           ("max_pool"), "spatial conv" (a dense conv with a kernel > 1, which
                           CPUs and GPUs run with Winograd or direct kernels) or category
                           ("conv", "depthwise conv", "group conv"); calibrate() measures them
                           with micro-benchmarks. Other ops use peak_flops.
    overheads:             the fixed cost of one kernel of a kind (same keys as rates), where it
                           differs from overhead_s (a depthwise conv costs far more on a CPU).
    cache_bytes, cache_bandwidth_bytes_per_s: an op whose MAC bytes fit in this much cache
                           moves them at the cache bandwidth (batch-1 activations on a CPU).
    module_call_s:         Python cost of one nn.Module.__call__ (leaf or container)
    free_op_s:             dispatch cost of an op that launches no kernel (a view, a reshape)
    in_model_scale, light_scale, overhead_scale: how much slower the roofline of dense
                           contractions (convs, linear, matmul, attention), the roofline of every
                           other op (depthwise convs, norms, activations, pooling, element-wise,
                           data movement) and the fixed costs run inside a network than in the
                           single-op micro-benchmarks (fitted on synthetic blocks by
                           calibrate.py; 1.0 when not calibrated)
    interval:              (low, high) factors on the estimate: the spread of the calibration's
                           residuals on held-out synthetic blocks; interval_level is the share
                           of them it covers. (1, 1) and 0 when not measured.
    fused:                 the deployment runtime's figures for execution="fused" (fusion.py):
                           the keys of this profile it replaces (peak_flops, overhead_s, rates,
                           overheads, in_model_scale, light_scale, overhead_scale, interval,
                           interval_level) plus run_s (the runtime's fixed cost per inference)
                           and source; measured by `costmodel calibrate --execution fused`.
                           Empty: the eager figures, without the Python costs.
    """

    name: str
    peak_flops: float
    bandwidth_bytes_per_s: float
    overhead_s: float
    source: str = ""
    rates: Mapping[str, float] = field(default_factory=dict, hash=False)
    overheads: Mapping[str, float] = field(default_factory=dict, hash=False)
    cache_bytes: int = 0
    cache_bandwidth_bytes_per_s: float | None = None
    module_call_s: float = 0.0
    free_op_s: float = 0.0
    in_model_scale: float = 1.0
    light_scale: float = 1.0
    overhead_scale: float = 1.0
    interval: tuple[float, float] = (1.0, 1.0)
    interval_level: float = 0.0
    fused: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rates"] = dict(self.rates)
        out["overheads"] = dict(self.overheads)
        out["interval"] = list(self.interval)
        out["fused"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.fused.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceProfile:
        known = {f.name for f in fields(cls)}
        missing = {"name", "peak_flops", "bandwidth_bytes_per_s", "overhead_s"} - set(data)
        if missing:
            raise ValueError(f"device profile lacks {', '.join(sorted(missing))}")
        values = {k: v for k, v in data.items() if k in known}
        for key in ("peak_flops", "bandwidth_bytes_per_s", "cache_bandwidth_bytes_per_s"):
            if values.get(key) is not None:
                values[key] = float(values[key])
                if values[key] <= 0:
                    raise ValueError(f"device profile {values['name']!r}: {key} must be positive")
        values["overhead_s"] = float(values["overhead_s"])
        if values["overhead_s"] < 0:
            raise ValueError(f"device profile {values['name']!r}: overhead_s must be >= 0")
        values["rates"] = {str(k): float(v) for k, v in (values.get("rates") or {}).items()}
        if any(v <= 0 for v in values["rates"].values()):
            raise ValueError(f"device profile {values['name']!r}: rates must be positive")
        values["overheads"] = {str(k): float(v) for k, v in (values.get("overheads") or {}).items()}
        if any(v < 0 for v in values["overheads"].values()):
            raise ValueError(f"device profile {values['name']!r}: overheads must be >= 0")
        values["cache_bytes"] = int(values.get("cache_bytes") or 0)
        for key in ("module_call_s", "free_op_s", "in_model_scale", "light_scale",
                    "overhead_scale", "interval_level"):
            if key in values:
                values[key] = float(values[key])
                if values[key] < 0:
                    raise ValueError(f"device profile {values['name']!r}: {key} must be >= 0")
        if "interval" in values:
            low, high = (float(v) for v in values["interval"])
            if not 0 < low <= 1 <= high:
                raise ValueError(f"device profile {values['name']!r}: interval must be "
                                 f"(low <= 1 <= high), positive")
            values["interval"] = (low, high)
        if values.get("fused"):
            from .fusion import check_runtime
            values["fused"] = check_runtime(values["name"], values["fused"])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> DeviceProfile:
        return cls.from_dict(json.loads(text))


# Shipped profiles, from published specifications (theoretical peaks: a real run achieves less;
# `costmodel calibrate` measures this machine). fp32 throughout. The per-kernel overhead is not
# on any datasheet: ~5 us is the usual PyTorch eager dispatch cost on a CPU, ~8 us the usual
# dispatch + launch cost of one CUDA kernel from eager PyTorch. Every `source` says so (UNMEASURED).
UNMEASURED = ("datasheet peaks with guessed overheads, not measured: expect real latency to be "
              "higher; run `costmodel calibrate` on the target for a measured profile")
PROFILES: dict[str, DeviceProfile] = {p.name: p for p in (
    # Intel Core i7-8650U (Kaby Lake R, 4 cores, 1.9 GHz base): 4 cores x 2 AVX2 FMA units x
    # 8 fp32 lanes x 2 FLOPs x 1.9 GHz = 486 GFLOP/s; dual-channel DDR4-2400 = 38.4 GB/s
    # (ark.intel.com, product 124968).
    DeviceProfile("laptop-cpu", 486e9, 38.4e9, 5e-6,
                  "Intel Core i7-8650U datasheet (ark.intel.com 124968): 4 x 2 x 8 x 2 x 1.9 GHz; "
                  "DDR4-2400 x 2 channels; " + UNMEASURED),
    # Intel Xeon Platinum 8380 (Ice Lake SP, 40 cores, 2.3 GHz base): 40 x 2 AVX-512 FMA units x
    # 16 lanes x 2 FLOPs x 2.3 GHz = 5.9 TFLOP/s; 8 channels DDR4-3200 = 204.8 GB/s
    # (ark.intel.com, product 212287).
    DeviceProfile("server-cpu", 5.89e12, 204.8e9, 5e-6,
                  "Intel Xeon Platinum 8380 datasheet (ark.intel.com 212287): 40 x 2 x 16 x 2 x "
                  "2.3 GHz; DDR4-3200 x 8 channels; " + UNMEASURED),
    # Qualcomm Snapdragon 855, one Cortex-A76 prime core at 2.84 GHz: 2 x 128-bit NEON FMA pipes
    # = 8 fp32 FMA/cycle = 45 GFLOP/s; LPDDR4X-2133, 4 x 16-bit channels = 34.1 GB/s.
    DeviceProfile("phone-cpu", 45.4e9, 34.1e9, 10e-6,
                  "Snapdragon 855 (Arm Cortex-A76 TRM: 2 x 128-bit FMA pipes; 2.84 GHz prime "
                  "core); LPDDR4X-2133 4 x 16-bit; " + UNMEASURED),
    # NVIDIA A100 SXM4 80GB: 19.5 TFLOP/s fp32 (non-tensor-core), 2,039 GB/s HBM2e
    # (NVIDIA A100 datasheet, 2021).
    DeviceProfile("a100", 19.5e12, 2.039e12, 8e-6,
                  "NVIDIA A100 SXM4 80GB datasheet: FP32 19.5 TFLOPS, HBM2e 2,039 GB/s; "
                  + UNMEASURED),
    # NVIDIA H100 SXM5: 67 TFLOP/s fp32 (non-tensor-core), 3.35 TB/s HBM3
    # (NVIDIA H100 datasheet, 2023).
    DeviceProfile("h100", 67e12, 3.35e12, 8e-6,
                  "NVIDIA H100 SXM5 datasheet: FP32 67 TFLOPS, HBM3 3.35 TB/s; " + UNMEASURED),
)}

# The Python side of eager PyTorch is the same on every device: ~1.5 us per nn.Module.__call__
# and ~1 us per op that launches no kernel (guesses of the usual CPython cost, like overhead_s).
PROFILES = {name: replace(p, module_call_s=1.5e-6, free_op_s=1e-6) for name, p in PROFILES.items()}

DEFAULT_PROFILE = "laptop-cpu"


def profile_dir() -> Path:
    """Where calibrated profiles go: $COSTMODEL_PROFILE_DIR, else ~/.cache/costmodel/profiles."""
    env = os.environ.get("COSTMODEL_PROFILE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "costmodel" / "profiles"


def save_profile(profile: DeviceProfile, path: str | os.PathLike | None = None) -> Path:
    """Write `profile` as JSON to `path` (default: profile_dir() / NAME.json); returns the path."""
    target = Path(path) if path is not None else profile_dir() / f"{profile.name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(profile.to_json() + "\n")
    return target


def load_profile(spec: str | os.PathLike | DeviceProfile | None = None) -> DeviceProfile:
    """A profile by name or path: an existing JSON file, a saved profile (profile_dir()/NAME.json,
    which wins over a shipped one of the same name, so a calibration of "laptop-cpu" replaces the
    datasheet one) or a shipped profile (PROFILES). None gives DEFAULT_PROFILE.
    Raises ValueError naming the choices when nothing matches."""
    if isinstance(spec, DeviceProfile):
        return spec
    spec = DEFAULT_PROFILE if spec is None else spec
    path = Path(spec)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise ValueError(f"device profile file {str(path)!r} does not exist")
        return DeviceProfile.from_json(path.read_text())
    saved = profile_dir() / f"{spec}.json"
    if saved.is_file():
        return DeviceProfile.from_json(saved.read_text())
    if str(spec) in PROFILES:
        return PROFILES[str(spec)]
    raise ValueError(f"unknown device profile {str(spec)!r}; use one of {', '.join(available())} "
                     f"or a path to a profile JSON (`costmodel calibrate` writes one)")


def available() -> list[str]:
    """Names of the shipped profiles and of those saved in profile_dir()."""
    saved = sorted(p.stem for p in profile_dir().glob("*.json")) if profile_dir().is_dir() else []
    return list(PROFILES) + [n for n in saved if n not in PROFILES]


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
    dispatch_s: float = 0.0   # the fixed-cost part of `seconds` (the rest is the roofline)

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
        ops), dispatch (per-kernel fixed costs and free ops), module calls. They sum to total_s."""
        out = {"compute": 0.0, "memory": 0.0, "dispatch": self.free_ops_s + self.run_s,
               "module calls": self.module_calls_s}
        for op in self.ops:
            roof = op.seconds - op.dispatch_s
            out["memory" if roof > 0 and op.bound == "memory" else "compute"] += roof
            out["dispatch"] += op.dispatch_s
        return out

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
               profile: DeviceProfile, weight_bytes: int = 0) -> tuple[float, str]:
    """max(FLOPs / rate, bytes / bandwidth) * in_model_scale + kernels * overhead *
    overhead_scale, and which term is largest (op_terms() gives the two parts).

    kinds: what the op is, most specific first (op_kinds()); the first with an entry in
    profile.rates (profile.overheads) gives the rate (the fixed cost), else peak_flops
    (overhead_s). Bandwidth: `weight_bytes` (parameters, read once per inference, so cold) move at
    the streaming bandwidth; the other bytes (activations, just written by the op before) at the
    cache bandwidth when they fit in profile.cache_bytes, else at the streaming bandwidth."""
    roof, fixed, bound = op_terms(flops, nbytes, kernels, kinds, profile, weight_bytes)
    return roof + fixed, bound


def op_terms(flops: int, nbytes: int, kernels: int, kinds: tuple[str, ...] | str | None,
             profile: DeviceProfile, weight_bytes: int = 0) -> tuple[float, float, str]:
    """(roofline seconds, fixed-cost seconds, bound) of one op (see op_seconds)."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(str(k) for k in kinds or ())
    rate = _lookup(profile.rates, kinds, profile.peak_flops)
    activations = max(nbytes - weight_bytes, 0)
    act_bandwidth = profile.bandwidth_bytes_per_s
    if profile.cache_bandwidth_bytes_per_s and activations <= profile.cache_bytes:
        act_bandwidth = profile.cache_bandwidth_bytes_per_s
    compute = flops / rate
    memory = (nbytes - activations) / profile.bandwidth_bytes_per_s + activations / act_bandwidth
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
    """The kinds of a graph node, most specific first: "spatial conv" for a dense conv whose
    kernel is larger than 1x1, its op name (when it makes one call, and the name is not also a
    category: the op "conv" covers every category of conv), and its category."""
    calls = node.calls
    category = node.category
    kinds = []
    if category is Category.CONV:
        weight = next((rec.call.t("weight") for rec in calls if rec.call.op == "conv"), None)
        if weight is not None and any(k > 1 for k in weight.shape[2:]):
            kinds.append("spatial conv")
    if len(calls) == 1 and calls[0].call.op not in _CATEGORIES:
        kinds.append(calls[0].call.op)
    if category is not None:
        kinds.append(str(category))
    return tuple(kinds)


def weight_bytes(node: Node) -> int:
    """Bytes of parameters a graph node reads (its MAC bytes that are weights)."""
    return sum(s.reads * s.itemsize for rec in node.calls
               for s in rec.call.inputs() if s.role == "param")


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
                                      weight_bytes(node))
        ops.append(OpEstimate(name, node.module, str(node.category or ""),
                              cost.flops, cost.mac_bytes, k, roof + fixed, bound, fixed))
    seconds = {op.name: op.seconds for op in ops}
    length, path = structure.longest_path(ctx.kernel_dag, lambda n: seconds.get(n, 0.0))
    calls, free = call_counts(ctx.graph, ctx.kernels)
    return Estimate(profile, tuple(ops), float(length), path, calls, free)


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
