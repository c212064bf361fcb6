"""The four ShuffleNet V2 guidelines (Ma et al., 2018, Section 2) as diagnostics.

One function per guideline, each a plain function of the annotated graph (`report.graph`)
returning `GuidelineDiagnostic`s: a stable code, the layer or block, the measured quantity and a
concrete suggestion. `check()` runs all four, once per graph and arguments (analysis/context.py
keeps the findings; `Report.guidelines` reads them from there). No torch import.

- G1 (equal channel width minimises MAC). For a 1x1 conv, c1 -> c2 channels on an h x w map,
  B = hw*c1*c2 and MAC = hw(c1 + c2) + c1*c2 >= 2*sqrt(hw*B) + B/hw, with equality at c1 = c2;
  the excess is hw*(sqrt(c1) - sqrt(c2))^2. Other convs (k x k, strided, grouped) get the same
  AM-GM bound on their feature maps: at fixed MAdds and kernel, in_elems * out_elems is fixed, so
  in_elems + out_elems >= 2*sqrt(in_elems * out_elems) and the excess is
  (sqrt(in_elems) - sqrt(out_elems))^2; weights are the same on both sides. For a 1x1 stride-1
  conv this is exactly the paper's bound. A strided conv is balanced when c2 = stride^2 * c1.
  Linear layers are not checked (at batch 1 their MAC is their weights).
- G2 (excessive group convolution increases MAC). A group conv with g groups against the dense
  conv with the same input and the same MAdds (c2 / g outputs): the paper's MAC = hw*c1 + B*g/c1
  + B/hw at fixed B and c1, so the overhead is the output elements times (1 - 1/g). Depthwise
  convs are left to G4, as in the paper.
  Not actionable, so not reported: a conv with at most 4 input channels (a stem reading an RGB,
  RGBA or depth image: c1 is the data's, not a design choice; `Thresholds.g1_min_in_channels`).
- G3 (network fragmentation reduces parallelism). Blocks (structure.find_blocks) with more
  fragments or parallel branches than the thresholds, and the whole model's average parallelism.
  Blocks that compute attention (an attention or softmax op under them) are not judged against
  these convolutional block norms: their Q/K/V branches are the attention's own structure.
- G4 (element-wise operations are not negligible). Element-wise ops as the paper counts them:
  activations, element-wise arithmetic (Add, AddBias), inference norms (a folded scale and bias)
  and depthwise convs; their share of MAC and of estimated time against their share of FLOPs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..core.graph import CostGraph, Node
from ..core.report import Diagnostic
from ..core.vocab import Category, Code, NodeStatus, Severity
from . import latency
from .context import context, graph_of

#: what the paper counts as element-wise (G4).
ELEMENTWISE = frozenset({Category.ACTIVATION, Category.ELEMENTWISE, Category.NORM,
                         Category.DEPTHWISE_CONV})


@dataclass(frozen=True)
class Thresholds:
    """When a guideline finding is material enough to report. Fractions are of the layer's own
    MAC unless stated."""

    g1_excess: float = 0.15        # MAC above the G1 bound (1:1 is 0, 1:2 0.06, 1:4 0.2, 1:6 0.3)
    g1_min_share: float = 0.002    # ...and the conv's MAC is at least this share of the model's
    g1_min_in_channels: int = 5    # convs with fewer input channels read the data's own (RGB)
    g2_overhead: float = 0.10      # MAC above a dense conv of equal MAdds (g=3 1x1: 0.13-0.53)
    g3_fragments: int = 4          # more fragments than this in one block (ResNet: 3, 4)
    g3_branches: int = 3           # more parallel branches than this in one block
    g3_parallelism: float = 1.5    # whole model: kernels / critical-path kernels above this
    g4_mac_share: float = 0.6      # element-wise ops' share of the model's MAC...
    g4_over_flops: float = 2.0     # ...and at least this many times their share of FLOPs
    g4_add_share: float = 0.01     # residual adds' share of the model's MAC


@dataclass(frozen=True)
class GuidelineDiagnostic(Diagnostic):
    """A Diagnostic with the measured quantities (by name) and the suggestion on their own."""

    quantity: dict[str, Any] = field(default_factory=dict, compare=False)
    suggestion: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "quantity": dict(self.quantity), "suggestion": self.suggestion}


def _diag(code: Code, message: str, suggestion: str, quantity: dict, *, node=None, module=None,
          op=None, severity: Severity = Severity.WARNING) -> GuidelineDiagnostic:
    return GuidelineDiagnostic(code, severity, f"{message}; {suggestion}", node, module, op,
                               quantity, suggestion)


_graph = graph_of


def _costed(g: CostGraph):
    for node in g:
        if node.status is NodeStatus.COSTED:
            yield node.name, node


def _model_mac(g: CostGraph) -> int:
    return sum(node.cost.mac for _, node in _costed(g))


def _conv_call(node: Node):
    for rec in node.calls:
        if rec.call.op == "conv":
            return rec.call
    return None


def _where(name: str, node: Node) -> str:
    return node.module or name


# ---- G1 --------------------------------------------------------------------------------------

def g1_excess(in_elems: int, out_elems: int) -> float:
    """MAC above the G1 bound: (sqrt(in) - sqrt(out))^2 feature-map elements."""
    return (math.sqrt(in_elems) - math.sqrt(out_elems)) ** 2


def g1(source: Any, thresholds: Thresholds = Thresholds()) -> list[GuidelineDiagnostic]:
    """Convs whose input and output feature maps are unbalanced (G1)."""
    g = _graph(source)
    model_mac = _model_mac(g)
    found = []
    for name, data in _costed(g):
        call = _conv_call(data)
        if call is None or data.category not in (Category.CONV, Category.GROUP_CONV):
            continue
        x, out = call.t("input"), call.out
        mac = data.cost.mac
        excess = g1_excess(x.numel, out.numel)
        if (not mac or excess < thresholds.g1_excess * mac
                or mac < thresholds.g1_min_share * model_mac):
            continue
        c1, c2 = x.shape[1], out.shape[1]
        if c1 < thresholds.g1_min_in_channels:   # a stem on the image: its c1 is the data's
            continue
        stride = max(x.numel // x.shape[1] // max(out.numel // out.shape[1], 1), 1)
        balanced = f"c2 = {stride} x c1 for its stride" if stride > 1 else "c1 = c2"
        ratio = f"1:{c2 / c1:.3g}" if c2 >= c1 else f"{c1 / c2:.3g}:1"
        found.append(_diag(
            Code.G1_CHANNEL_RATIO,
            f"G1: {_where(name, data)} maps {c1} -> {c2} channels ({ratio}); its MAC "
            f"{mac:,} is {excess:,.0f} ({excess / mac:.0%}) above the G1 bound for its MAdds",
            f"widths closer to {balanced} cost less memory traffic at the same MAdds",
            {"c1": c1, "c2": c2, "mac": mac, "excess": round(excess), "excess_share": excess / mac},
            node=name, module=data.module, op=data.target))
    return found


# ---- G2 --------------------------------------------------------------------------------------

def g2_overhead(out_elems: int, groups: int) -> float:
    """MAC of a group conv above the dense conv of equal input and MAdds: out * (1 - 1/g)."""
    return out_elems * (1 - 1 / groups)


def g2(source: Any, thresholds: Thresholds = Thresholds()) -> list[GuidelineDiagnostic]:
    """Group convs (not depthwise) whose MAC overhead over a dense conv is material (G2)."""
    g = _graph(source)
    found = []
    for name, data in _costed(g):
        call = _conv_call(data)
        if call is None or data.category is not Category.GROUP_CONV:
            continue
        groups = call.attr("groups", 1)
        mac = data.cost.mac
        overhead = g2_overhead(call.out.numel, groups)
        if not mac or overhead < thresholds.g2_overhead * mac:
            continue
        found.append(_diag(
            Code.G2_GROUP_CONV,
            f"G2: {_where(name, data)} is a group conv with g={groups}; its MAC {mac:,} is "
            f"{overhead:,.0f} ({overhead / mac:.0%}) above a dense conv with the same input "
            f"and MAdds",
            "use fewer groups (ShuffleNet V2 splits channels and uses dense 1x1 convs)",
            {"groups": groups, "mac": mac, "overhead": round(overhead),
             "overhead_share": overhead / mac},
            node=name, module=data.module, op=data.target))
    return found


# ---- G3 --------------------------------------------------------------------------------------

def g3(source: Any, thresholds: Thresholds = Thresholds(), depth: int | None = None
       ) -> list[GuidelineDiagnostic]:
    """Fragmented blocks, and a model whose work is spread over parallel branches (G3)."""
    ctx = context(source)
    model = ctx.model_structure
    overall = (f"model: {model.kernels} kernels, critical path {model.critical_path_kernels}, "
               f"average parallelism {model.parallelism:.2f}")
    found = []
    attention = {node.module for node in _graph(source)
                 if node.category in (Category.ATTENTION, Category.SOFTMAX)}
    for block in ctx.blocks(depth):
        if block.fragments <= thresholds.g3_fragments and block.branches <= thresholds.g3_branches:
            continue
        if any(m == block.path or m.startswith(block.path + ".") for m in attention):
            continue   # attention's Q/K/V branches are not a convolutional block's fragments
        found.append(_diag(
            Code.G3_FRAGMENTED_BLOCK,
            f"G3: block {block.path} has {block.fragments} fragments in {block.branches} parallel "
            f"branches (longest chain {block.longest_chain}, {block.kernels} kernels; {overall})",
            "merge branches and fuse small ops: fewer, larger kernels keep a parallel device busy "
            "(ResNet and ShuffleNet V2 blocks have 2-4 fragments)",
            {"fragments": block.fragments, "branches": block.branches,
             "longest_chain": block.longest_chain, "kernels": block.kernels},
            module=block.path))
    if model.parallelism > thresholds.g3_parallelism:
        found.append(_diag(
            Code.G3_PARALLEL_BRANCHES,
            f"G3: {overall} (widest generation {model.max_width}): the work is split into "
            f"parallel branches of small kernels",
            "fewer, wider branches run faster than many narrow ones on GPUs",
            {"kernels": model.kernels, "critical_path": model.critical_path_kernels,
             "parallelism": model.parallelism}))
    return found


# ---- G4 --------------------------------------------------------------------------------------

def _is_residual_add(node: Node) -> bool:
    if node.category is not Category.ELEMENTWISE:
        return False
    for rec in node.calls:
        if rec.call.op in ("add", "sub"):
            specs = [s for s in rec.call.inputs() if s.role == "activation"]
            return len(specs) >= 2 and len({s.shape for s in specs}) == 1
    return False


def g4_shares(source: Any, profile: latency.DeviceProfile | str | None = None) -> dict[str, float]:
    """Element-wise ops' share of MAC, FLOPs and estimated time, and residual adds' MAC share."""
    ctx = context(source)
    est = ctx.estimate(profile).by_name()
    mac = flops = seconds = ew_mac = ew_flops = ew_seconds = add_mac = 0.0
    adds = 0
    for name, data in _costed(ctx.graph):
        cost = data.cost
        t = est[name].seconds if name in est else 0.0
        mac, flops, seconds = mac + cost.mac, flops + cost.flops, seconds + t
        if data.category in ELEMENTWISE:
            ew_mac, ew_flops, ew_seconds = ew_mac + cost.mac, ew_flops + cost.flops, ew_seconds + t
        if _is_residual_add(data):
            adds += 1
            add_mac += cost.mac
    share = lambda a, b: a / b if b else 0.0  # noqa: E731
    return {"mac": share(ew_mac, mac), "flops": share(ew_flops, flops),
            "time": share(ew_seconds, seconds), "adds": adds, "add_mac": share(add_mac, mac)}


def g4(source: Any, thresholds: Thresholds = Thresholds(),
       profile: latency.DeviceProfile | str | None = None) -> list[GuidelineDiagnostic]:
    """Element-wise ops whose MAC (and estimated time) far outweighs their FLOPs (G4)."""
    profile = latency.load_profile(profile)
    s = g4_shares(source, profile)
    found = []
    if s["mac"] >= thresholds.g4_mac_share and s["mac"] >= thresholds.g4_over_flops * s["flops"]:
        found.append(_diag(
            Code.G4_ELEMENTWISE_SHARE,
            f"G4: element-wise ops (activations, adds, norms, depthwise convs) make "
            f"{s['mac']:.0%} of MAC and {s['time']:.0%} of the estimated time on {profile.name}, "
            f"for {s['flops']:.1%} of FLOPs",
            "drop activations that do not help (ShuffleNet V2 has none after its depthwise "
            "convs), fold norms into convs for deployment, and keep wide tensors out of "
            "element-wise ops",
            {"mac_share": s["mac"], "flops_share": s["flops"], "time_share": s["time"]}))
    if s["adds"] and s["add_mac"] >= thresholds.g4_add_share:
        found.append(_diag(
            Code.G4_RESIDUAL_ADDS,
            f"G4: {s['adds']} element-wise residual adds make {s['add_mac']:.1%} of MAC",
            "ShuffleNet V2 replaces the residual add with a channel split and a concat",
            {"adds": s["adds"], "mac_share": s["add_mac"]}))
    return found


def check(source: Any, thresholds: Thresholds | None = None,
          profile: latency.DeviceProfile | str | None = None, depth: int | None = None
          ) -> list[GuidelineDiagnostic]:
    """G1-G4 on an analysed model (a Report or its graph), in guideline order; computed once
    per graph and arguments."""
    return list(context(source).guidelines(thresholds, profile, depth))


def compute_check(ctx: Any, thresholds: Thresholds, profile: latency.DeviceProfile,
                  depth: int | None) -> list[GuidelineDiagnostic]:
    """G1-G4 themselves, on an analysis context."""
    source = ctx.graph
    return [*g1(source, thresholds), *g2(source, thresholds), *g3(source, thresholds, depth),
            *g4(source, thresholds, profile)]
