"""How much of an eager CPU forward is page faults, and how much that depends on the allocator's
history rather than on the model.

glibc's malloc maps a tensor larger than its mmap threshold anew on every call, and each 4 KiB
page faults in (zeroed by the kernel) on its first write; smaller tensors come from the heap,
whose top glibc returns to the system once more than its trim threshold lies free, so the next
forward faults those pages in again. Both thresholds move: they start at 128 KiB (mmap) and
256 KiB (trim), and each time a mapped chunk is freed the mmap threshold rises to its size (up
to 32 MiB) and the trim threshold to twice that. So the same forward faults a different number
of pages in a fresh process, in one that has run larger tensors before, and in a long-running
server, and costmodel's estimate models only the part every history shares: tensors over
32 MiB, which are mapped anew whatever came before (the "allocation" term,
latency.fresh_pages).

For each model and batch this script times the forward in a fresh subprocess under three
allocator settings, interleaved and repeated (the fastest forward of --calls after two warm-up
calls, the fastest over --rounds rounds):
- `fresh`:     glibc's defaults, as `python my_script.py` runs;
- `settled`:   the thresholds pinned where glibc's own adjustment ends once a tensor over 32 MiB
               has been freed (mmap 32 MiB, trim 64 MiB): a process that ran large tensors before;
- `no faults`: no mapping and no trimming (mmap_max 0, trim threshold 4 GB): every page, once
               faulted in, is kept and reused; the baseline of the ratios.
It prints both ratios, the measured fault time (fresh - no faults) next to the estimate's
allocation term (pages of new tensors over 32 MiB x the page cost measured here) and an upper
bound (pages of every new tensor over 128 KiB x the page cost).

    python benchmarks/allocator_faults.py                        # ~8 minutes
    python benchmarks/allocator_faults.py --models mobilenet_v2 --batch 8 --rounds 3

Results: benchmarks/results/allocator_faults.md / .json (machine, torch version and date).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import torch
import torchvision
from latency_validation import machine  # benchmarks/ is on sys.path when run as a script

import costmodel
from costmodel.analysis.latency import fresh_pages
from costmodel.analysis.profiles import HEAP_FLOOR, MMAP_BYTES
from costmodel.analysis.rates import page_fault_seconds

MODELS = ["mobilenet_v2", "mnasnet1_0", "mobilenet_v3_large", "efficientnet_b0",
          "shufflenet_v2_x1_0", "regnet_x_400mf", "resnet18", "resnet50", "densenet121"]
SETTINGS = {
    "fresh": "",
    "settled": f"glibc.malloc.mmap_threshold={MMAP_BYTES}:"
               f"glibc.malloc.trim_threshold={2 * MMAP_BYTES}",
    "no faults": "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4000000000",
}

CHILD = """
import sys, time, torch, torchvision
torch.set_num_threads(1)
name, batch, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = torchvision.models.get_model(name).eval()
x = torch.randn(batch, 3, 224, 224)
with torch.no_grad():
    model(x); model(x)
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter(); model(x); best = min(best, time.perf_counter() - start)
print(best)
"""


def forward_seconds(name: str, batch: int, calls: int, tunables: str) -> float:
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    if tunables:
        env["GLIBC_TUNABLES"] = tunables
    out = subprocess.run([sys.executable, "-c", CHILD, name, str(batch), str(calls)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def static_pages(name: str, batch: int) -> tuple[int, int]:
    """(pages of new tensors over 32 MiB, pages of every new tensor over 128 KiB) per forward."""
    model = torchvision.models.get_model(name).eval()
    graph = costmodel.analyze(model, (batch, 3, 224, 224)).graph
    mapped = sum(fresh_pages(node, MMAP_BYTES) for node in graph)
    every = sum(fresh_pages(node, HEAP_FLOOR) for node in graph)
    return mapped, every


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    meta = machine()
    meta["command"] = "python benchmarks/allocator_faults.py " + " ".join(argv or sys.argv[1:])
    page_s = page_fault_seconds(4.0)
    cases = [(m, b) for b in args.batch for m in args.models]
    times: dict[tuple[str, int, str], list[float]] = {}
    for r in range(args.rounds):
        for m, b in cases:
            for setting, tunables in SETTINGS.items():
                times.setdefault((m, b, setting), []).append(
                    forward_seconds(m, b, args.calls, tunables))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    page_s_end = page_fault_seconds(4.0)
    meta["load_average_end"] = os.getloadavg()
    rows = []
    for m, b in cases:
        best = {s: min(times[(m, b, s)]) for s in SETTINGS}
        mapped, every = static_pages(m, b)
        rows.append({"model": m, "batch": b, "seconds": best,
                     "all": {s: times[(m, b, s)] for s in SETTINGS},
                     "measured_faults_s": best["fresh"] - best["no faults"],
                     "mapped_pages": mapped, "heap_pages": every - mapped,
                     "modelled_s": mapped * page_s, "bound_s": every * page_s})
    base = "no faults"
    lines = ["# Page faults and the allocator's history", "", f"`{meta['command']}`", "",
             f"{meta['date']}; {meta['cpu']}, {meta['cores']} cores; Python {meta['python']}, "
             f"torch {meta['torch']}, torchvision {meta['torchvision']}; load average at start "
             f"{meta['load_average_start']}, at end {meta['load_average_end']}; 1 thread; "
             f"{args.rounds} rounds, settings interleaved; page cost measured here "
             f"{page_s * 1e6:.2f} us before, {page_s_end * 1e6:.2f} us after.", "",
             "| model | batch | no faults (ms) | fresh / no faults | settled / no faults | "
             "faults measured (ms, fresh - no faults) | estimate's allocation term (ms, "
             "> 32 MiB) | bound (ms, every new tensor > 128 KiB) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["seconds"]
        lines.append(f"| {r['model']} | {r['batch']} | {s[base] * 1e3:.1f} | "
                     f"{s['fresh'] / s[base]:.2f} | {s['settled'] / s[base]:.2f} | "
                     f"{r['measured_faults_s'] * 1e3:.1f} | {r['modelled_s'] * 1e3:.1f} | "
                     f"{r['bound_s'] * 1e3:.1f} |")
    for b in args.batch:
        fresh = [r["seconds"]["fresh"] / r["seconds"][base] for r in rows if r["batch"] == b]
        settled = [r["seconds"]["settled"] / r["seconds"][base] for r in rows
                   if r["batch"] == b]
        lines.append(f"\nbatch {b}: fresh / no faults median x{statistics.median(fresh):.2f} "
                     f"(x{min(fresh):.2f}-x{max(fresh):.2f}); settled / no faults median "
                     f"x{statistics.median(settled):.2f} (x{min(settled):.2f}-"
                     f"x{max(settled):.2f})")
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "allocator_faults.md").write_text("\n".join(lines) + "\n")
    (args.out / "allocator_faults.json").write_text(json.dumps(
        {"machine": meta, "page_fault_s": [page_s, page_s_end], "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
