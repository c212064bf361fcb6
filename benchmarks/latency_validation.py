"""Does costmodel's latency estimate rank models by real CPU speed better than MAdds and MAC?

In one process: calibrate this machine's DeviceProfile, then for each torchvision classification
model (random init, no download, eval, no_grad, batch 1 at 224x224) measure the median CPU
latency of a forward pass and compute its MAdds, MAC and estimated time. Prints a markdown table
and the Spearman rank correlation of each metric with the measured latency. Every model is
measured in two interleaved passes; the second table line compares the passes (run-to-run noise).

Then the paper's Table 1 (G1) and Table 2 (G2) nets from examples/guidelines.py: the paper's
published GPU speed ranking, the speed ranking measured here, and costmodel's rankings by MAC
and by estimated time, side by side.

    python benchmarks/latency_validation.py [--threads 1] [--runs 11] [--calibrate 4] [models...]
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torchvision

import costmodel
from costmodel import latency
from costmodel.calibrate import calibrate, describe

MODELS = (
    "alexnet", "squeezenet1_0", "squeezenet1_1", "resnet18", "resnet34", "resnet50",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
    "efficientnet_b0", "efficientnet_b1", "regnet_x_400mf", "regnet_y_400mf", "regnet_x_800mf",
    "regnet_y_800mf", "regnet_x_1_6gf", "regnet_y_1_6gf", "densenet121", "googlenet",
    "resnext50_32x4d", "vgg11", "convnext_tiny",
)
EXTRA = {"googlenet": {"aux_logits": False, "init_weights": False}}


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties get the average of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float:
    """Pearson correlation of the ranks (correct with ties)."""
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else float("nan")


def latency_of(model: torch.nn.Module, x: torch.Tensor, runs: int) -> list[float]:
    with torch.no_grad():
        model(x)                      # warm up: allocator, oneDNN kernel selection
        model(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return times


def load_examples():
    path = Path(__file__).resolve().parent.parent / "examples" / "guidelines.py"
    spec = importlib.util.spec_from_file_location("cm_guidelines", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _order(rows: list[tuple], index: int, reverse: bool = False) -> str:
    """The labels of `rows`, sorted by column `index`."""
    return " > ".join(r[0] for r in sorted(rows, key=lambda r: r[index], reverse=reverse))


def paper_tables(profile: latency.DeviceProfile, runs: int) -> list[str]:
    """Table 1 (G1) and Table 2 (G2): paper ranking, measured ranking, costmodel's rankings."""
    g = load_examples()
    lines = []
    for key in ("g1", "g2"):
        table = g.PAPER_TABLES[key]
        rows = []
        for row in table["rows"]:
            model = g.build(key, **row["kwargs"]).eval()
            report = costmodel.analyze(model, model.input_shape)
            x = torch.randn(*(int(d) for d in model.input_shape.split("x")))
            measured = statistics.median(latency_of(model, x, runs))
            rows.append((row["label"], row["speed"], measured, report.totals.mac,
                         latency.estimate(report, profile).total_s))

        lines += [f"### {key.upper()}: {table['source']}", "",
                  "| config | paper speed (batches/s) | measured here (ms) | MAC | estimate (ms) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r[0]} | {r[1]} | {r[2] * 1e3:.2f} | {r[3] / 1e6:.1f}M | {r[4] * 1e3:.2f} |"
                  for r in rows]
        lines += ["", f"- paper (fastest first):    {_order(rows, 1, reverse=True)}",
                  f"- measured here:            {_order(rows, 2)}",
                  f"- costmodel by MAC:         {_order(rows, 3)}",
                  f"- costmodel by estimate:    {_order(rows, 4)}", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=MODELS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=11, help="timed runs per model and pass")
    parser.add_argument("--calibrate", type=float, default=4.0, help="calibration seconds")
    parser.add_argument("--no-tables", action="store_true", help="skip the G1/G2 paper tables")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    start = time.perf_counter()

    profile = calibrate(args.calibrate, name="validation", threads=args.threads)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{args.threads} thread(s), batch 1, 224x224, median of {args.runs} runs x 2 passes\n")
    print("```\n" + describe(profile) + "\n```\n")

    rows = []
    for name in args.models:
        model = torchvision.models.get_model(name, **EXTRA.get(name, {})).eval()
        report = costmodel.analyze(model, "1x3x224x224")
        est = latency.estimate(report, profile)
        rows.append({"name": name, "model": model, "madds": report.totals.madds,
                     "mac": report.totals.mac, "estimate": est.total_s,
                     "kernels": sum(op.kernels for op in est.ops), "times": ([], [])})
    x = torch.randn(1, 3, 224, 224)
    for p in range(2):                  # two interleaved passes: drift hits every model alike
        for row in rows:
            row["times"][p].extend(latency_of(row["model"], x, args.runs))
    for row in rows:
        a, b = row["times"]
        row["measured"] = statistics.median(a + b)
        row["best"] = min(a + b)
        row["pass_a"], row["pass_b"] = statistics.median(a), statistics.median(b)
        row.pop("model")

    measured = [r["measured"] for r in rows]
    print("| model | MAdds | MAC | kernels | median (ms) | fastest (ms) | estimate (ms) | "
          "estimate / median |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["measured"]):
        print(f"| {r['name']} | {r['madds'] / 1e6:.0f}M | {r['mac'] / 1e6:.1f}M | {r['kernels']} | "
              f"{r['measured'] * 1e3:.2f} | {r['best'] * 1e3:.2f} | {r['estimate'] * 1e3:.2f} | "
              f"{r['estimate'] / r['measured']:.2f} |")
    best = [r["best"] for r in rows]
    print(f"\nSpearman rank correlation with measured latency ({len(rows)} models):\n")
    print("| metric | vs median latency | vs fastest run |\n|---|---|---|")
    for label, key in (("MAdds", "madds"), ("MAC", "mac"), ("costmodel estimate", "estimate")):
        values = [r[key] for r in rows]
        print(f"| {label} | {spearman(values, measured):.3f} | {spearman(values, best):.3f} |")
    noise = statistics.median(abs(r["pass_a"] - r["pass_b"]) / r["measured"] for r in rows)
    worst = max(abs(r["pass_a"] - r["pass_b"]) / r["measured"] for r in rows)
    print(f"| (noise) pass 1 vs pass 2 medians | "
          f"{spearman([r['pass_a'] for r in rows], [r['pass_b'] for r in rows]):.3f} | |")
    print(f"\nrun-to-run: median |pass 1 - pass 2| = {noise * 100:.1f}% of the latency, "
          f"worst {worst * 100:.1f}%")
    if not args.no_tables:
        print("\n" + "\n".join(paper_tables(profile, max(args.runs, 5))))
    print(f"total time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
