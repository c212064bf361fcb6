"""Where the time goes: torch.profiler's per-op self time on a real forward, next to the latency
estimate's time for the same kind of op, per model.

    python benchmarks/latency_breakdown.py vit_b_32 swin_t inception_v3 --threads 1
    python benchmarks/latency_breakdown.py mobilenet_v3_small --profile my.json
    python benchmarks/latency_breakdown.py vgg13 mnasnet1_0 --batch 8

Calibrates first (or takes --profile), then for each torchvision model: the measured forward
(fastest of --repeat), the estimate with its four terms, and a table of op kinds: profiler self
time (ms), estimate (ms) and their ratio. The profiler's aten ops are mapped to costmodel's
categories by name (ATEN below); what maps to nothing is listed as "other (aten)". Profiling
adds its own overhead, so the profiled total exceeds the plain measured forward; compare
ratios between kinds, not absolute levels. This is the tool the latency terms were found with
(docs/guidelines.md, "Where the time goes"); nothing here feeds the estimate.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
import warnings

import torch
import torchvision

import costmodel
from costmodel import latency
from costmodel.analysis.calibrate import calibrate

#: aten op name -> costmodel category (the estimate's OpEstimate.category)
ATEN = {
    "aten::mkldnn_convolution": "conv", "aten::_slow_conv2d_forward": "conv",
    "aten::thnn_conv2d": "conv", "aten::_conv_depthwise2d": "depthwise conv",
    "aten::addmm": "linear", "aten::mm": "linear", "aten::bmm": "matmul",
    "aten::baddbmm": "matmul", "aten::_native_multi_head_attention": "attention",
    "aten::native_batch_norm": "norm", "aten::_native_batch_norm_legit_no_training": "norm",
    "aten::native_layer_norm": "norm", "aten::native_group_norm": "norm",
    "aten::relu": "activation", "aten::relu_": "activation", "aten::clamp_min": "activation",
    "aten::clamp_min_": "activation", "aten::gelu": "activation", "aten::silu": "activation",
    "aten::silu_": "activation", "aten::sigmoid": "activation", "aten::hardswish": "activation",
    "aten::hardswish_": "activation", "aten::hardsigmoid": "activation",
    "aten::hardsigmoid_": "activation", "aten::hardtanh_": "activation",
    "aten::add": "elementwise", "aten::add_": "elementwise", "aten::mul": "elementwise",
    "aten::mul_": "elementwise", "aten::div": "elementwise", "aten::sub": "elementwise",
    "aten::_softmax": "softmax", "aten::max_pool2d_with_indices": "pool",
    "aten::avg_pool2d": "pool", "aten::_adaptive_avg_pool2d": "pool", "aten::mean": "pool",
    "aten::copy_": "data movement", "aten::cat": "data movement", "aten::clone": "data movement",
    "aten::roll": "data movement", "aten::constant_pad_nd": "data movement",
    "aten::index": "data movement",
}


def breakdown(name: str, profile, repeat: int, batch: int = 1) -> None:
    model = torchvision.models.get_model(name).eval()
    size = 299 if name == "inception_v3" else 224
    x = torch.randn(batch, 3, size, size)
    est = latency.estimate(costmodel.analyze(model, tuple(x.shape)), profile)
    estimated = collections.Counter()
    for op in est.ops:
        estimated[op.category or "other"] += op.seconds
    with torch.no_grad():
        for _ in range(2):
            model(x)
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - start)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            model(x)
    measured = collections.Counter()
    for event in prof.key_averages():
        measured[ATEN.get(event.key, "other (aten)")] += event.self_cpu_time_total / 1e6
    terms = ", ".join(f"{k} {v * 1e3:.2f}" for k, v in est.terms().items())
    print(f"\n## {name}: measured {best * 1e3:.2f} ms, estimate {est.total_s * 1e3:.2f} ms "
          f"({est.total_s / best:.2f}x); terms (ms): {terms}\n")
    print("| kind | profiler self time (ms) | estimate (ms) | estimate / profiled |")
    print("|---|---|---|---|")
    for kind in sorted(set(measured) | set(estimated), key=lambda k: -measured.get(k, 0.0)):
        m, e = measured.get(kind, 0.0), estimated.get(kind, 0.0)
        ratio = f"{e / m:.2f}" if m > 1e-5 and e > 0 else "-"
        print(f"| {kind} | {m * 1e3:.2f} | {e * 1e3:.2f} | {ratio} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="torchvision model names")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", help="a calibrated profile (name or JSON path); default: "
                                          "calibrate now")
    parser.add_argument("--calibrate", type=float, default=20.0, help="calibration seconds")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    profile = (latency.load_profile(args.profile) if args.profile else
               calibrate(min(args.calibrate, 90.0), f"breakdown-{args.threads}t", args.threads,
                         analyze=costmodel.analyze))
    print(f"profile {profile.name}: {profile.source}")
    for name in args.models:
        breakdown(name, profile, args.repeat, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
