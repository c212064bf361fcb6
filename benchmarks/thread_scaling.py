"""How much faster a conv runs at 2 threads than at 1, and how stable that is on this machine.

The 2-thread latency estimate assumes that a conv's speed-up from a second thread, measured once
by `costmodel calibrate`, holds while the models are measured minutes later. This script checks
that assumption directly: c -> c 1x1 convs on 56 x 56 maps (the G1-G3 nets' ops; channel counts
of real nets, not only powers of two) and one 3x3 conv, each timed at 1 thread and then at 2
threads, back to back, in every pass. The 1-thread time of the same pass is the baseline of each
ratio, so a slow period of the machine moves both. It prints, per conv, the 1-thread rate and the
2-thread speed-up's minimum / median / maximum over the passes.

    python benchmarks/thread_scaling.py                 # 7 passes, ~1 minute
    python benchmarks/thread_scaling.py --passes 3 --widths 58 64 90 128 --out /tmp/ts

Results: benchmarks/results/thread_scaling.md / .json (machine, torch version and date).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from latency_validation import machine  # benchmarks/ is on sys.path when run as a script
from torch import nn

WIDTHS = [32, 40, 48, 58, 64, 80, 90, 96, 116, 128, 160, 192, 232, 256]
SIZE = 56


def best_seconds(module: nn.Module, x: torch.Tensor, calls: int, repeats: int) -> float:
    """Fastest mean time of one call over ``repeats`` loops of ``calls`` calls."""
    with torch.inference_mode():
        for _ in range(3):
            module(x)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                module(x)
            best = min(best, (time.perf_counter() - start) / calls)
    return best


def convs(widths: list[int]) -> list[tuple[str, nn.Module, torch.Tensor, int]]:
    out = []
    for c in widths:
        out.append((f"1x1 {c}->{c}", nn.Conv2d(c, c, 1, bias=False).eval(),
                    torch.randn(1, c, SIZE, SIZE), 2 * c * c * SIZE * SIZE))
    out.append(("3x3 128->128", nn.Conv2d(128, 128, 3, padding=1, bias=False).eval(),
                torch.randn(1, 128, SIZE, SIZE), 2 * 128 * 128 * 9 * SIZE * SIZE))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--widths", type=int, nargs="+", default=WIDTHS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    meta = machine()
    meta["command"] = "python benchmarks/thread_scaling.py " + " ".join(argv or sys.argv[1:])
    torch.manual_seed(0)
    cases = convs(args.widths)
    one = {name: [] for name, *_ in cases}
    speedup = {name: [] for name, *_ in cases}
    for p in range(args.passes):
        for name, module, x, flops in cases:
            calls = max(3, int(1e9 // flops))  # ~20 ms a loop at 1 thread
            torch.set_num_threads(1)
            t1 = best_seconds(module, x, calls, 5)
            torch.set_num_threads(2)
            t2 = best_seconds(module, x, calls, 5)
            one[name].append(flops / t1)
            speedup[name].append(t1 / t2)
        print(f"pass {p + 1}/{args.passes} done", file=sys.stderr, flush=True)
    meta["load_average_end"] = os.getloadavg()
    rows = []
    for name, *_ in cases:
        s = speedup[name]
        rows.append({"conv": name, "rate_1t": statistics.median(one[name]),
                     "speedup": s, "min": min(s), "median": statistics.median(s),
                     "max": max(s)})
    lines = ["# Thread scaling of single convs", "", f"`{meta['command']}`", "",
             f"{meta['date']}; {meta['cpu']}, {meta['cores']} cores; Python {meta['python']}, "
             f"torch {meta['torch']}; load average at start {meta['load_average_start']}, "
             f"at end {meta['load_average_end']}; {args.passes} passes, 1 and 2 threads "
             "interleaved in each.", "",
             "| conv (1 x C x 56 x 56) | 1 thread (GFLOP/s, median) | 2 threads / 1 thread: "
             "min | median | max | max / min |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['conv']} | {r['rate_1t'] / 1e9:.1f} | {r['min']:.2f} | "
                     f"{r['median']:.2f} | {r['max']:.2f} | {r['max'] / r['min']:.2f} |")
    one_spread = [max(one[n]) / min(one[n]) for n, *_ in cases]
    two_spread = [r["max"] / r["min"] for r in rows]
    lines += ["", "1-thread rate, max / min over passes: median "
              f"{statistics.median(one_spread):.2f}, worst {max(one_spread):.2f}. "
              "2-thread speed-up, max / min over passes: median "
              f"{statistics.median(two_spread):.2f}, worst {max(two_spread):.2f}."]
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "thread_scaling.md").write_text("\n".join(lines) + "\n")
    (args.out / "thread_scaling.json").write_text(json.dumps(
        {"machine": meta, "rows": rows, "rate_1t": one}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
