"""Calibrate a DeviceProfile for this machine with short micro-benchmarks.

The only place costmodel runs real kernels, on synthetic tensors and only when asked:

- GEMM peak:     a square fp32 matmul, FLOPs = 2 n^3;
- bandwidth:     a copy of a 64 MiB tensor (past most caches), bytes = read + written;
- cache:         ReLU and Add on a 0.8 MB tensor (a batch-1 activation), bytes = read + written;
- fixed costs:   one op of each kind (1x1 / 3x3 / depthwise / group conv, batch norm, ReLU, add,
                 max pooling, linear) on a tiny tensor: the cost of an eager op doing ~nothing;
- rates:         the FLOP/s (costmodel's FLOPs) that 1x1 convs, 3x3 convs, depthwise convs,
                 group convs, batch norm, ReLU and max pooling reach on shapes typical of CNNs at
                 batch 1, after their fixed cost.

Each figure is the best of several timed calls (the least disturbed by other work). The GEMM
peak is measured before and after the rest and checked (`settle_peak`): two measurements that
disagree by more than SPREAD, or a peak below what a conv reached in the same run by more than
CONV_SPREAD, are disturbed measurements; calibrate measures again (up to RETRIES times), keeps the
fastest, and says so in a warning (and in the profile's `source`) when it still does not settle.
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


def _best_seconds(fn: Callable[[], object], budget: float) -> float:
    """Seconds per call of `fn`, the least disturbed by other work: the fastest single call
    (calls of 100 us or more), or the fastest of five rounds of many calls (shorter ones)."""
    fn()                                       # warm up (allocations, kernel selection)
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    if once >= 1e-4:
        best = once
        for _ in range(max(4, int(budget / once))):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        return best
    reps = max(1, int(budget / 5 / once))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - start) / reps)
    return best


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


def calibrate(seconds: float = 4.0, name: str | None = None, threads: int | None = None,
              warnings: list[str] | None = None) -> DeviceProfile:
    """Measure this machine's profile in about `seconds` (fp32, torch's current thread count
    unless `threads` is given). The name defaults to the host name. Measurements that do not
    settle (see settle_peak) are appended to `warnings` and to the profile's source."""
    import torch
    from torch import nn

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    share = seconds / 12
    try:
        with torch.no_grad():
            peaks = [_gemm_peak(share)]           # measured again after the rest: see below

            def copy_bandwidth() -> float:         # frees its 128 MiB on return
                big = torch.randn(16 * 2 ** 20)    # 64 MiB, past the caches of most CPUs
                dst = torch.empty_like(big)
                return 2 * big.nbytes / _best_seconds(lambda: dst.copy_(big), share)

            bandwidth = copy_bandwidth()

            act = torch.randn(1, 64, 56, 56)       # 0.8 MB, a typical batch-1 activation
            res = torch.empty_like(act)
            relu = _best_seconds(lambda: torch.relu_(res), share / 2)
            add = _best_seconds(lambda: torch.add(act, act, out=res), share / 2)
            cache_bw = (2 * act.nbytes + 3 * act.nbytes) / (relu + add)

            def conv(cin, cout, k, stride=1, groups=1):
                return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False).eval()

            tiny = torch.randn(1, 8, 4, 4)
            fixed_ops = {
                "conv": conv(8, 8, 1), "spatial conv": conv(8, 8, 3),
                "depthwise conv": conv(8, 8, 3, groups=8), "group conv": conv(8, 8, 1, groups=2),
                "norm": nn.BatchNorm2d(8).eval(), "activation": nn.ReLU(),
                "elementwise": lambda x: x + x, "max_pool": nn.MaxPool2d(3, 2, 1),
            }
            fc = nn.Linear(16, 8)                  # built last, as before: the same random draws
            fixed_ops["linear"] = lambda x: fc(x.view(8, 16))
            overheads = {kind: _best_seconds(lambda m=m: m(tiny), share / 2 / len(fixed_ops))
                         for kind, m in fixed_ops.items()}
            overhead = sorted(overheads.values())[len(overheads) // 2]   # the median kind

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
            rates["max_pool"] = rate("max_pool", [(nn.MaxPool2d(3, 2, 1), (1, c, size, size),
                                                   9 * c * ((size - 1) // 2 + 1) ** 2)
                                                  for c, size in MAX_POOL])
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
        cache_bytes=_cache_bytes(), cache_bandwidth_bytes_per_s=max(cache_bw, bandwidth))


def calibrate_and_save(name: str | None = None, path: str | os.PathLike | None = None,
                       seconds: float = 4.0, threads: int | None = None,
                       warnings: list[str] | None = None) -> tuple[DeviceProfile, Path]:
    """calibrate(), then save the profile (default: latency.profile_dir() / NAME.json)."""
    profile = calibrate(seconds, name, threads, warnings)
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
    lines.append(f"source    {profile.source}")
    return "\n".join(lines)
