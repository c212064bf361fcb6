"""Calibrate a DeviceProfile for this machine with short micro-benchmarks.

The only place costmodel runs real kernels, on synthetic tensors and only when asked:

- GEMM peak:     a square fp32 matmul, FLOPs = 2 n^3;
- bandwidth:     a copy of a 64 MiB tensor (past most caches), bytes = read + written;
- cache:         ReLU and Add on a 0.8 MB tensor (a batch-1 activation), bytes = read + written;
- weights:       batch-1 linear layers over 64 MiB of distinct weights (each read cold), bytes =
                 weights read: the streaming bandwidth a model's weights actually move at;
- new pages:     a 64 MiB tensor allocated and filled per call against the fill of a kept one:
                 the page faults of a new tensor too large for malloc to reuse, per page;
- fixed costs:   one functional op of each kind (1x1 / 3x3 / depthwise / group conv, batch norm,
                 ReLU, add, max pooling, linear) on a tiny tensor: the cost of an eager op doing
                 ~nothing; a view (the dispatch of an op that launches no kernel); and one
                 nn.Module.__call__ (an nn.Sequential of nn.Identity, per module);
- rates:         the FLOP/s (costmodel's FLOPs) that 1x1 convs, 3x3 convs, depthwise convs,
                 group convs, batch norm, the activations (ReLU, SiLU, Hardswish, Sigmoid,
                 Hardsigmoid, GELU) and max pooling reach on shapes typical of CNNs at batch 1,
                 after their fixed cost;
- synthetic blocks (when an `analyze` function is passed, as the CLI does): small networks that
  costmodel builds itself from a seeded generator (stacks of ResNet basic units, inverted
  residuals with and without squeeze-excite, ShuffleNet V2 units, a pooled linear head), timed,
  and estimated with the single-op profile. Three scales, how much slower the roofline of dense
  contractions, the roofline of the other ops and the fixed costs run inside a network than
  alone, are fitted on half of the blocks (relative least squares), and the spread of the
  residuals on the other, held-out half gives the estimate's interval (10th to 90th
  percentile: an 80% interval).

Each figure is the best of several timed calls (the least disturbed by other work). Nothing here
sees a user's model. The GEMM peak is measured before and after the rest and checked
(`settle_peak`): two measurements that disagree by more than SPREAD, or a peak below what a conv
reached in the same run by more than CONV_SPREAD, are disturbed measurements; calibrate measures
again (up to RETRIES times), keeps the fastest, and says so in a warning (and in the profile's
`source`) when it still does not settle.
"""
from __future__ import annotations

import itertools
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from .latency import DeviceProfile, save_profile
from .measure import _best_seconds, _fit_blocks
from .rates import (
    attention_table,
    conv_tables,
    conv_weight_pass,
    gemm_tables,
    light_rates,
    page_fault_seconds,
    weight_bandwidths,
)

GEMM_N = 512          # ~2.5 ms: short enough to find undisturbed calls
SPREAD = 1.5          # two GEMM peaks within this factor agree
CONV_SPREAD = 2.0     # a GEMM peak this far below a conv rate of the same run is disturbed
RETRIES = 3           # extra GEMM measurements when the first two do not settle


def _gemm_seconds(budget: float) -> float:
    """Seconds of one GEMM_N x GEMM_N fp32 matmul (2 n^3 FLOPs), best of several."""
    import torch

    a, b = torch.randn(GEMM_N, GEMM_N), torch.randn(GEMM_N, GEMM_N)
    out = torch.empty(GEMM_N, GEMM_N)
    return _best_seconds(lambda: torch.mm(a, b, out=out), budget)


def _gemm_peak(budget: float) -> float:
    return 2 * GEMM_N ** 3 / _gemm_seconds(budget)


def settle_peak(samples: list[float], conv_rate: float, remeasure: Callable[[], float],
                retries: int = RETRIES) -> tuple[float, list[str]]:
    """The GEMM peak from `samples` (FLOP/s): measured again with `remeasure` until two
    measurements agree within SPREAD and the fastest is not CONV_SPREAD below `conv_rate` (the
    fastest conv rate of the same run), at most `retries` more times. Returns the fastest and
    a warning per check that still fails."""
    samples = list(samples)

    def agree() -> bool:
        best = max(samples)
        return sum(s >= best / SPREAD for s in samples) >= 2

    def above_convs() -> bool:
        return max(samples) >= conv_rate / CONV_SPREAD

    while retries > 0 and not (agree() and above_convs()):
        samples.append(remeasure())
        retries -= 1
    peak, warnings = max(samples), []
    if not agree():
        warnings.append(
            f"the GEMM peak varied from {min(samples) / 1e9:.1f} to {peak / 1e9:.1f} GFLOP/s over "
            f"{len(samples)} measurements (this machine was busy); the fastest is kept: run "
            f"`costmodel calibrate` again on a quiet machine")
    if not above_convs():
        warnings.append(
            f"the GEMM peak {peak / 1e9:.1f} GFLOP/s is far below the {conv_rate / 1e9:.1f} "
            f"GFLOP/s a conv reached in the same run (measured {len(samples)} times); the "
            f"compute-bound estimates will be too slow: run `costmodel calibrate` again on a "
            f"quiet machine")
    return peak, warnings


#: (in, out, size, kernel, stride, groups) of the convs timed for each rate: shapes of
#: ResNet / MobileNet / ShuffleNet / RegNet layers at batch 1.
CONVS = {
    "conv": ((64, 256, 56, 1, 1, 1), (116, 116, 28, 1, 1, 1), (960, 160, 7, 1, 1, 1),
             (24, 144, 56, 1, 1, 1)),
    "spatial conv": ((64, 64, 56, 3, 1, 1), (128, 128, 28, 3, 1, 1), (256, 256, 14, 3, 1, 1),
                     (128, 128, 56, 3, 2, 1)),
    "depthwise conv": ((32, 32, 112, 3, 1, 32), (96, 96, 112, 3, 2, 96), (144, 144, 56, 3, 1, 144),
                       (116, 116, 28, 3, 1, 116), (384, 384, 14, 3, 1, 384),
                       (240, 240, 28, 5, 1, 240)),
    "group conv": ((240, 60, 28, 1, 1, 3), (60, 240, 28, 1, 1, 3), (128, 128, 28, 3, 1, 8),
                   (256, 256, 14, 3, 1, 16)),
}
#: (channels, size) of the batch norms and ReLUs timed (FLOPs: 2 and 1 per element).
ELEMENTWISE = ((32, 112), (144, 56), (256, 28), (672, 14))
#: (channels, size) of the 3x3 stride-2 max poolings timed (CNN stems).
MAX_POOL = ((64, 112), (96, 55), (192, 28))
#: activation op name -> its module; FLOPs 1 per element (as costmodel counts them)
ACTIVATIONS = ("silu", "hardswish", "sigmoid", "hardsigmoid", "gelu")
def _cache_bytes() -> int:
    """The last-level cache of CPU 0 from sysfs, else 8 MiB."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    size = 0
    for index in sorted(base.glob("index*")) if base.is_dir() else ():
        try:
            text = (index / "size").read_text().strip().upper()
            size = max(size, int(text.rstrip("KMG")) * {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}
                       .get(text[-1], 1))
        except (OSError, ValueError):
            continue
    return size or 8 * 2 ** 20


def _conv_flops(cin: int, cout: int, size: int, k: int, stride: int, groups: int) -> int:
    out = (size + 2 * (k // 2) - k) // stride + 1
    return 2 * k * k * cin // groups * cout * out * out


def calibrate(seconds: float = 20.0, name: str | None = None, threads: int | None = None,
              analyze: Callable | None = None, warnings: list[str] | None = None
              ) -> DeviceProfile:
    """Measure this machine's profile in about `seconds` (fp32, torch's current thread count
    unless `threads` is given). The name defaults to the host name. With `analyze`
    (costmodel.analyze), synthetic blocks fit the in-model scales and measure the interval.
    Measurements that do not settle (see settle_peak) are appended to `warnings` and to the
    profile's source."""
    import torch
    profile = _single_ops(seconds * (0.5 if analyze else 1.0), name, threads, warnings)
    if analyze is None:
        return profile
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _fit_blocks(profile, analyze, seconds * 0.5)
    finally:
        torch.set_num_threads(old_threads)


def _single_ops(seconds: float, name: str | None, threads: int | None,
                warnings: list[str] | None = None) -> DeviceProfile:
    import torch
    import torch.nn.functional as F
    from torch import nn

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    share = seconds / 24
    try:
        with torch.no_grad():
            peaks = [_gemm_peak(share)]           # measured again after the rest: see below

            # weights read once, cold: 64 MiB of batch-1 linear layers, past most caches
            fcs = [torch.randn(1024, 1024) for _ in range(16)]
            v = torch.randn(1, 1024)

            def stream():
                for w in fcs:
                    F.linear(v, w)
            bandwidth = sum(w.nbytes for w in fcs) / _best_seconds(stream, share)
            fcs.clear()

            act = torch.randn(1, 64, 56, 56)       # 0.8 MB, a typical batch-1 activation
            res = torch.empty_like(act)
            relu = _best_seconds(lambda: torch.relu_(res), share / 2)
            add = _best_seconds(lambda: torch.add(act, act, out=res), share / 2)
            cache_bw = (2 * act.nbytes + 3 * act.nbytes) / (relu + add)

            def conv(cin, cout, k, stride=1, groups=1):
                return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False).eval()

            tiny = torch.randn(1, 8, 4, 4)
            w1, w3, wd, wg = (torch.randn(8, 8, 1, 1), torch.randn(8, 8, 3, 3),
                              torch.randn(8, 1, 3, 3), torch.randn(8, 4, 1, 1))
            ones, zeros, wl = torch.ones(8), torch.zeros(8), torch.randn(8, 16)
            # functional calls: the module call around them is its own term (module_call_s)
            fixed_ops = {
                "conv": lambda x: F.conv2d(x, w1), "spatial conv": lambda x: F.conv2d(x, w3,
                                                                                    padding=1),
                "depthwise conv": lambda x: F.conv2d(x, wd, padding=1, groups=8),
                "group conv": lambda x: F.conv2d(x, wg, groups=2),
                "norm": lambda x: F.batch_norm(x, zeros, ones, ones, zeros, False),
                "activation": F.relu, "elementwise": lambda x: x + x,
                "max_pool": lambda x: F.max_pool2d(x, 3, 2, 1),
                "linear": lambda x: F.linear(x.view(8, 16), wl),
            }
            fc = nn.Linear(16, 8)                  # built last, as before: the same random draws
            fixed_ops["linear"] = lambda x: fc(x.view(8, 16))
            overheads = {kind: _best_seconds(lambda m=m: m(tiny), share / 2 / len(fixed_ops))
                         for kind, m in fixed_ops.items()}
            overhead = sorted(overheads.values())[len(overheads) // 2]   # the median kind
            one = torch.randn(1, 1, 1, 8)        # attention's own fixed cost (outside the median)
            overheads["sdpa"] = _best_seconds(
                lambda: F.scaled_dot_product_attention(one, one, one), share / 2 / len(fixed_ops))
            free_op = _best_seconds(lambda: tiny.view(8, 16), share / 8)
            chain = nn.Sequential(*(nn.Identity() for _ in range(64)))
            module_call = _best_seconds(lambda: chain(tiny), share / 8) / 65

            def rate(kind: str, cases) -> float:
                """FLOPs / seconds over `cases` of (module, input shape, FLOPs), less fixed cost."""
                total_flops = total_time = 0.0
                for module, shape, flops in cases:
                    # cycle through inputs that overflow a 4 MiB cache, as in a model, where an
                    # op reads what the op before it wrote, not what it read itself a moment ago
                    xs = itertools.cycle([torch.randn(shape)
                                          for _ in range(-(-2 ** 22 // (4 * math.prod(shape))))])
                    t = _best_seconds(lambda m=module, xs=xs: m(next(xs)), share / len(cases))
                    total_flops += flops
                    total_time += max(t - overheads[kind], t / 2)
                return total_flops / total_time

            rates = {kind: rate(kind, [(conv(ci, co, k, s, g), (1, ci, size, size),
                                        _conv_flops(ci, co, size, k, s, g))
                                       for ci, co, size, k, s, g in shapes])
                     for kind, shapes in CONVS.items()}
            rates["norm"] = rate("norm", [(nn.BatchNorm2d(c).eval(), (1, c, size, size),
                                           2 * c * size * size) for c, size in ELEMENTWISE])
            rates["activation"] = rate("activation", [(nn.ReLU(inplace=True), (1, c, size, size),
                                                       c * size * size) for c, size in ELEMENTWISE])
            for act in ACTIVATIONS:
                fn = getattr(F, act)
                overheads[act] = _best_seconds(lambda fn=fn: fn(tiny), share / 32)
                rates[act] = rate(act, [(fn, (1, c, size, size), c * size * size)
                                        for c, size in ELEMENTWISE])
            rates["max_pool"] = rate("max_pool", [(nn.MaxPool2d(3, 2, 1), (1, c, size, size),
                                                   9 * c * ((size - 1) // 2 + 1) ** 2)
                                                  for c, size in MAX_POOL])
            tables = {**conv_tables(4 * share, overheads),
                      **gemm_tables(2 * share, overheads, _cache_bytes()),
                      **attention_table(share / 2, overheads)}
            weights = weight_bandwidths(share, overheads["linear"])
            weight_pass = conv_weight_pass(share, _cache_bytes())
            page_fault = page_fault_seconds(share / 4)
            from .skinny import measure as measure_skinny
            skinny = measure_skinny(share, overheads["linear"])
            light, bandwidths = light_rates(2 * share, overheads)
            rates.update(light)
            peaks.append(_gemm_peak(share))
            conv_rate = max(rates[kind] for kind in CONVS)
            peak, found = settle_peak(peaks, conv_rate, lambda: _gemm_peak(share))
    finally:
        torch.set_num_threads(old_threads)
    if warnings is not None:
        warnings += found
    used = threads if threads is not None else old_threads
    host = platform.node() or "this-machine"
    return DeviceProfile(
        name or host, peak, bandwidth, overhead,
        f"calibrated on {host} ({platform.processor() or platform.machine()}), torch "
        f"{torch.__version__}, {used} threads, {time.strftime('%Y-%m-%d')}"
        + "".join(f"; warning: {w}" for w in found),
        rates=rates, overheads=overheads,
        cache_bytes=_cache_bytes(), cache_bandwidth_bytes_per_s=max(cache_bw, bandwidth),
        module_call_s=module_call, free_op_s=free_op, tables=tables, bandwidths=bandwidths,
        weight_bandwidths=weights, skinny=skinny, weight_pass_s=weight_pass,
        page_fault_s=page_fault)


def calibrate_and_save(name: str | None = None, path: str | os.PathLike | None = None,
                       seconds: float = 20.0, threads: int | None = None,
                       analyze: Callable | None = None, warnings: list[str] | None = None
                       ) -> tuple[DeviceProfile, Path]:
    """calibrate(), then save the profile (default: latency.profile_dir() / NAME.json)."""
    profile = calibrate(seconds, name, threads, analyze, warnings)
    return profile, save_profile(profile, path)


def describe(profile: DeviceProfile) -> str:
    lines = [f"profile   {profile.name}",
             f"peak      {profile.peak_flops / 1e9:.1f} GFLOP/s (fp32 GEMM)",
             f"bandwidth {profile.bandwidth_bytes_per_s / 1e9:.1f} GB/s"]
    if profile.cache_bandwidth_bytes_per_s:
        lines.append(f"cache     {profile.cache_bandwidth_bytes_per_s / 1e9:.1f} GB/s up to "
                     f"{profile.cache_bytes / 2 ** 20:.0f} MiB per op")
    lines.append(f"overhead  {profile.overhead_s * 1e6:.2f} us per kernel"
                 + (" (by kind: " + ", ".join(f"{k} {v * 1e6:.1f}" for k, v in
                                              profile.overheads.items()) + ")"
                    if profile.overheads else ""))
    lines += [f"rate      {key}: {value / 1e9:.1f} GFLOP/s" for key, value in profile.rates.items()]
    for kind, table in profile.tables.items():
        rates = [r for row in table["rates"] for r in row]
        lines.append(f"table     {kind}: {min(rates) / 1e9:.1f}-{max(rates) / 1e9:.1f} GFLOP/s "
                     f"over {len(table['rows'])} x {len(table['width'])} shapes")
    lines += [f"bandwidth {kind}: {value / 1e9:.1f} GB/s" for kind, value in
              profile.bandwidths.items()]
    if profile.skinny:
        lines.append("skinny    linear weights GB/s by rows x input width: " + ", ".join(
            f"{k} {v / 1e9:.1f}" for k, v in profile.skinny.items()))
    if profile.weight_bandwidths:
        lines.append("weights   " + ", ".join(f"{b / 2 ** 20:.2g} MiB {bw / 1e9:.1f} GB/s"
                                               for b, bw in profile.weight_bandwidths))
    if profile.weight_pass_s:
        lines.append(f"conv pass {1 / profile.weight_pass_s / 1e9:.1f} GB/s of cold conv weights "
                     f"(an eager conv's pass over its weights, beyond its rate)")
    if profile.page_fault_s:
        lines.append(f"new pages {profile.page_fault_s * 1e6:.2f} us per 4 KiB page of a new "
                     f"tensor over {profile.mmap_bytes / 2 ** 20:.0f} MiB (mapped anew per call)")
    if profile.module_call_s or profile.free_op_s:
        lines.append(f"calls     {profile.module_call_s * 1e6:.2f} us per nn.Module call, "
                     f"{profile.free_op_s * 1e6:.2f} us per op without a kernel")
    lines.append(f"in model  dense contractions x{profile.in_model_scale:.2f}, other ops "
                 f"x{profile.light_scale:.2f}, fixed costs x{profile.overhead_scale:.2f} "
                 f"(fixed costs on floor blocks, the others fitted on synthetic blocks)")
    if profile.interval_level:
        lines.append(f"interval  x{profile.interval[0]:.2f} to x{profile.interval[1]:.2f} "
                     f"({profile.interval_level:.0%} of held-out synthetic blocks)")
    lines.append(f"source    {profile.source}")
    return "\n".join(lines)
