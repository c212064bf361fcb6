"""Text section: structure (kernels, critical path, fragments), latency estimate and G1-G4.

`render_section(report)` is what the text renderer appends after the totals when the report has
its analysis graph. Every analysis comes from the graph's context (analysis/context.py), computed
once per report; this module only formats. No torch import.
"""
from __future__ import annotations

from collections import Counter

from tabulate import tabulate

from ..analysis import guidelines as gl
from ..analysis import latency
from ..analysis.context import context
from ..core.report import Report
from ..core.vocab import Mode
from .units import clean, duration, human, middle, percent, wrap

#: how many findings of one code to show before summarising the rest.
SHOW_PER_CODE = 3
#: the allocator line shows when heap page faults could add this share of the total or more
HEAP_NOTE = 0.05


def latency_rows(report: Report, profile: latency.DeviceProfile | str | None = None,
                 top: int | None = None, execution: str = "eager") -> list[tuple]:
    """(layer, category, estimated time, FLOPs per byte, bound) per kernel-launching layer,
    slowest first: the per-layer columns for `--device`. The layer is its module path, or the
    node name at the top level (the same label as the layer table)."""
    est = context(report).estimate(profile, execution)
    ops = sorted(est.ops, key=lambda op: -op.seconds)
    return [(clean(op.module or op.name), op.category, duration(op.seconds),
             f"{op.intensity:.3g}", op.bound) for op in (ops if top is None else ops[:top])]


def _slowest(rows: list[tuple], columns: int | None) -> str:
    """The slowest-layers table, its layer names cut in the middle to fit `columns`."""
    headers = ("slowest layers", "category", "time", "FLOPs/byte", "bound")
    text = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
    over = max(map(len, text.splitlines()), default=0) - (columns or 10**9)
    if over > 0 and rows:
        keep = max(max(len(r[0]) for r in rows) - over, len(headers[0]))
        rows = [(middle(r[0], keep), *r[1:]) for r in rows]
        text = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
    return text


def render_section(report: Report, profile: latency.DeviceProfile | str | None = None,
                   thresholds: gl.Thresholds | None = None, depth: int | None = None,
                   top: int = 5, columns: int | None = None, execution: str = "eager") -> str:
    """Structure, latency estimate on `profile` (default latency.DEFAULT_PROFILE) and the G1-G4
    findings, as plain text; prose lines folded to `columns` (None: not folded)."""
    ctx = context(report)
    profile = latency.load_profile(profile)
    model = ctx.model_structure
    blocks = ctx.blocks(depth)
    est = ctx.estimate(profile, execution)
    lines = ["structure: fragmentation (ShuffleNet V2 G3)"
             + (", the forward graph" if report.mode == Mode.TRAIN else ""),
             f"  kernels {model.kernels}, critical path {model.critical_path_kernels} kernels, "
             f"average parallelism {model.parallelism:.2f}, widest generation {model.max_width}"]
    if blocks:
        frags = Counter(b.fragments for b in blocks)
        lines.append(f"  {len(blocks)} blocks; fragments per block: "
                     + ", ".join(f"{k} x{v}" for k, v in sorted(frags.items()))
                     + f"; most branches {max(b.branches for b in blocks)}")
    total = est.total_s
    scope = " of the forward pass" if report.mode == Mode.TRAIN else ""
    measured = "calibrated" if profile.interval_level else "NOT measured: datasheet peaks with " \
        "guessed overheads; `costmodel calibrate` measures this machine"
    fused = execution == "fused"
    lines += ["", f"latency estimate{scope} on {profile.name}"
              + (", fused (the deployed graph)" if fused else "") + f" ({measured})"]
    low, high = est.interval()
    band = (f" ({duration(low)} to {duration(high)}, {profile.interval_level:.0%} interval)"
            if profile.interval_level else "")
    lines.append(f"  total {duration(total)}{band} (kernels one after another), critical path "
                 f"{duration(est.critical_path_s)}")
    lines.append("  by term: " + ", ".join(f"{term} {duration(sec)} {percent(sec, total, digits=0)}"
                                          for term, sec in est.terms().items()
                                          if not (fused and term == "module calls")
                                          and not (term in ("weights", "allocation") and not sec))
                 + ("" if fused else
                    f" ({est.module_calls} module calls, {est.free_ops} ops without a kernel)"))
    if est.heap_faults_s >= HEAP_NOTE * total:
        lines.append(f"  allocator: assumes a settled heap; if glibc trims it between calls (a "
                     f"short-lived process) page faults add up to {duration(est.heap_faults_s)}"
                     f" ({percent(est.heap_faults_s, total, digits=0)}), not in the total")
    if fused:
        from ..analysis.fusion import totals
        d = totals(ctx.fused)
        lines.append(f"  MAC as deployed {human(d['mac'])} ({human(d['mac_bytes'], binary=True)})"
                     f" against {human(d['mac_per_op'])} per op: {d['kernels']} fused kernels "
                     f"from {model.kernels}, {d['folded_batch_norms']} batch norms folded")
    shares = ", ".join(f"{cat} {percent(sec, total, digits=0)}"
                       for cat, sec in list(est.by_category().items())[:5])
    lines.append(f"  by category: {shares}")
    lines = [wrap(line, columns) for line in lines]
    lines.append(_slowest(latency_rows(report, profile, top, execution), columns))
    findings = ctx.guidelines(thresholds, profile, depth)
    lines += ["", "guidelines (ShuffleNet V2 G1-G4)"]
    if not findings:
        lines.append("  no finding above the thresholds")
    shown: Counter = Counter()
    counts = Counter(d.code for d in findings)
    for d in findings:
        shown[d.code] += 1
        if shown[d.code] <= SHOW_PER_CODE:
            lines.append(wrap(f"  {d.code} {d.severity}: {clean(d.message)}", columns))
        elif shown[d.code] == SHOW_PER_CODE + 1:
            lines.append(wrap(f"  {d.code} ... and {counts[d.code] - SHOW_PER_CODE} more like "
                              f"it (report.guidelines lists them all)", columns))
    return "\n".join(lines)
