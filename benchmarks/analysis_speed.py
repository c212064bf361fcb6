"""How long costmodel.analyze() takes, against one real forward pass of the same model.

Runs in one process. For each model it prints the best-of-N time of analyze() at batch 1, at
batch 32 and at 4x the resolution (to show the time does not depend on the input size), the
median time of one real CPU forward pass at batch 1 and at batch 32, and their ratios.

    python benchmarks/analysis_speed.py [--repeat 7] [--threads 2] [models...]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torchvision

import costmodel

MODELS = ("resnet50", "mobilenet_v2", "shufflenet_v2_x1_0", "vit_b_16", "densenet121")


def timings(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def best(fn, repeat: int) -> float:
    return min(timings(fn, repeat))


def median(fn, repeat: int) -> float:
    return statistics.median(timings(fn, repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=MODELS)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    header = (f"{'model':20s} {'analyze b1':>11s} {'analyze b32':>12s} {'analyze 4xres':>14s} "
              f"{'forward b1':>11s} {'forward b32':>12s} {'analyze/fwd b1':>15s} "
              f"{'analyze/fwd b32':>16s}")
    print(f"torch {torch.__version__}, {args.threads} threads, best of {args.repeat} for analyze, "
          f"median for forward")
    print(header)
    for name in args.models:
        model = torchvision.models.get_model(name).eval()
        size = 224
        costmodel.analyze(model, f"1x3x{size}x{size}")  # warm-up: imports, first-call caches
        a1 = best(lambda model=model, size=size: costmodel.analyze(model, f"1x3x{size}x{size}"),
                  args.repeat)
        a32 = best(lambda model=model, size=size: costmodel.analyze(model, f"32x3x{size}x{size}"),
                   args.repeat)
        big = size * 4 if not name.startswith("vit") else size  # ViT's size is fixed by its weights
        a_big = best(lambda model=model, big=big: costmodel.analyze(model, f"1x3x{big}x{big}"),
                     args.repeat)
        with torch.inference_mode():
            x1 = torch.randn(1, 3, size, size)
            x32 = torch.randn(32, 3, size, size)
            model(x1)
            f1 = median(lambda model=model, x1=x1: model(x1), args.repeat)
            f32 = median(lambda model=model, x32=x32: model(x32), max(3, args.repeat // 2))
        print(f"{name:20s} {a1 * 1e3:9.1f}ms {a32 * 1e3:10.1f}ms {a_big * 1e3:12.1f}ms "
              f"{f1 * 1e3:9.1f}ms {f32 * 1e3:10.1f}ms {a1 / f1:14.2f}x {a1 / f32:15.3f}x",
              flush=True)


if __name__ == "__main__":
    main()
