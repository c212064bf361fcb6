"""analyze() time of two checkouts of costmodel, interleaved in one run: the ratio B / A per model.

Each round times every model in a fresh subprocess per checkout (A, then B, then the next round
starts with B), best of `--repeat` calls after a warm-up, so both sides see the same machine
load. The table gives each side's best over all rounds and B / A (below 1: B is faster).

    python benchmarks/compare_checkouts.py /path/to/old/checkout /path/to/new/checkout \
        [--rounds 5] [--repeat 7] [--threads 1] [models...]

A model is a torchvision name (analysed at 1x3x224x224 and 32x3x224x224) or `timm:NAME` (built
with pretrained=False, analysed at batch 1 and 32 of its default input size, as benchmarks/zoo.py
does). The timed call is a warm one (after one analyze() of the same model), in both checkouts.
`--clock cpu` times with the process's CPU time (time.process_time) instead of the wall clock: on a
shared machine it leaves out the time the process waits for a core.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

MODELS = ("resnet50", "mobilenet_v2", "shufflenet_v2_x1_0", "vit_b_16", "densenet121")

CHILD = r"""
import json, sys, time, warnings
import torch, torchvision
torch.set_num_threads({threads})
warnings.filterwarnings("ignore")
import costmodel
out = {{}}
for name in {models!r}:
    if name.startswith("timm:"):
        import timm, timm.data
        model = timm.create_model(name[5:], pretrained=False).eval()
        image = "x".join(map(str, timm.data.resolve_data_config({{}}, model=model)["input_size"]))
    else:
        model = torchvision.models.get_model(name).eval()
        image = "3x224x224"
    costmodel.analyze(model, "1x" + image)                   # warm-up: imports, first-call caches
    best = {{}}
    for batch in ("1", "32"):
        times = []
        for _ in range({repeat}):
            start = {clock}()
            costmodel.analyze(model, batch + "x" + image)
            times.append({clock}() - start)
        best["b" + batch] = min(times)
    out[name] = best
print(json.dumps(out))
"""


def run_side(checkout: str, models: list[str], repeat: int, threads: int,
             clock: str = "wall") -> dict:
    timer = "time.process_time" if clock == "cpu" else "time.perf_counter"
    code = CHILD.format(models=list(models), repeat=repeat, threads=threads, clock=timer)
    env = {**os.environ, "PYTHONPATH": checkout}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=checkout, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="baseline checkout (its folder holds the costmodel package)")
    parser.add_argument("b", help="checkout compared with the baseline")
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time with the wall clock or with the process's CPU time")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_intermixed_args()
    best: dict[str, dict[str, dict[str, float]]] = {"a": {}, "b": {}}
    for r in range(args.rounds):
        order = ("a", "b") if r % 2 == 0 else ("b", "a")
        for side in order:
            found = run_side(getattr(args, side), args.models, args.repeat, args.threads,
                             args.clock)
            for model, sizes in found.items():
                for size, t in sizes.items():
                    slot = best[side].setdefault(model, {})
                    slot[size] = min(slot.get(size, float("inf")), t)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    import torch
    print(f"{platform.node()} ({platform.machine()}), torch {torch.__version__}, "
          f"{args.threads} thread(s), {args.rounds} interleaved rounds x best of {args.repeat}, "
          f"{args.clock} clock, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"A = {args.a}\nB = {args.b}")
    print(f"{'model':30s} {'A b1':>9s} {'B b1':>9s} {'B/A b1':>7s} {'A b32':>9s} {'B b32':>9s} "
          f"{'B/A b32':>8s}")
    ratios = []
    ratios_by_model = {}
    for model in args.models:
        a, b = best["a"][model], best["b"][model]
        r1 = b["b1"] / a["b1"]
        r32 = b["b32"] / a["b32"]
        ratios += [r1, r32]
        ratios_by_model[model] = {"b1": round(r1, 4), "b32": round(r32, 4)}
        print(f"{model:30s} {a['b1'] * 1e3:7.1f}ms {b['b1'] * 1e3:7.1f}ms "
              f"{r1:6.2f}x {a['b32'] * 1e3:7.1f}ms {b['b32'] * 1e3:7.1f}ms "
              f"{r32:7.2f}x")
    geo = 1.0
    for r in ratios:
        geo *= r
    print(f"geometric mean B/A: {geo ** (1 / len(ratios)):.3f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"a": args.a, "b": args.b, "best_s": best, "torch": torch.__version__,
                       "threads": args.threads, "rounds": args.rounds, "repeat": args.repeat,
                       "clock": args.clock, "ratios_b_over_a": ratios_by_model,
                       "machine": platform.node(), "load_average": os.getloadavg(),
                       "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, fh,
                      indent=2)


if __name__ == "__main__":
    main()
