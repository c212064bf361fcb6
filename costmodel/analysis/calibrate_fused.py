"""Calibrate the deployment runtime (execution="fused") of a DeviceProfile in ONNX Runtime.

`costmodel calibrate --execution fused` runs the eager calibration (calibrate.py: bandwidths,
the cache) and then this: tiny networks and synthetic blocks that costmodel builds itself,
exported with torch.onnx.export and timed in an onnxruntime InferenceSession on the CPU with
`intra_op_num_threads` = threads (ONNX Runtime's default graph optimisations: batch norm folded,
Conv + activation fused, as in a deployment). It measures

- fixed costs: chains of 1 and CHAIN tiny ops of one kind (a 1x1 / 3x3 / depthwise / group conv
  with its ReLU, a linear with its ReLU, a max pooling, an add) on a 1x8x4x4 tensor: the slope is
  the runtime's fixed cost per fused kernel of that kind, the intercept of the conv chain its
  fixed cost per inference (`run_s`: InferenceSession.run's own cost);
- rates: the FLOP/s of single convs of each kind on calibrate.CONVS shapes (the ResNet /
  MobileNet / ShuffleNet layers calibration times in eager PyTorch), of max pooling on
  calibrate.MAX_POOL shapes (eager PyTorch's max pooling is ~100x slower than the runtime's, so
  the eager rate must not stand in), and of a 512 x 512 GEMM;
- scales and interval: synthetic blocks (synthetic.synthetic_block, never a scored model) timed in
  ONNX Runtime and estimated with execution="fused": three scales fitted on half of them, the
  interval from the residuals of the other half (10th to 90th percentile).

The figures go to `DeviceProfile.fused` (latency.py; fusion.runtime_profile reads them). torch,
onnx and onnxruntime are imported inside the functions; onnxruntime is optional (`pip install
onnxruntime`), and without it this raises RuntimeError with that advice.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

from .latency import DeviceProfile, estimate, is_dense
from .measure import COLD_BYTES, RIDGE, _best_seconds, _quantile, _relative_fit
from .synthetic import synthetic_block

CHAIN = 17            # ops in the long chain of the fixed-cost measurement
FUSED_BLOCKS = 24     # synthetic blocks timed in the runtime (half fit, half held out)


def ort_runner(model, shape: tuple[int, ...], threads: int, directory: str | Path
               ) -> Callable[[], object]:
    """`model` (eval) exported to ONNX in `directory` (the TorchScript exporter, which folds batch
    norm into convs; the dynamo exporter where it fails) and loaded in an onnxruntime CPU session
    with `threads` intra-op threads; returns a function that runs one inference on a random
    input of `shape`. RuntimeError when onnxruntime is missing or the export fails."""
    import warnings

    import torch
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is in the dev environment
        raise RuntimeError("execution='fused' is measured in ONNX Runtime: pip install "
                           "onnxruntime onnx") from exc
    path = Path(tempfile.mkstemp(suffix=".onnx", dir=directory)[1])
    x = torch.randn(*shape)
    # with grad enabled: under no_grad, nn.MultiheadAttention takes its fast path
    # (aten::_native_multi_head_attention), which the exporter cannot export
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (x,), str(path), dynamo=False, do_constant_folding=True,
                              input_names=["x"])
        except Exception:  # noqa: BLE001 - the TorchScript exporter's gaps (SDPA): try dynamo
            try:
                with contextlib.redirect_stdout(io.StringIO()):   # its progress lines
                    torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["x"])
            except Exception as exc:  # noqa: BLE001 - any exporter failure is one line
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise RuntimeError(f"torch.onnx.export failed: {first}") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


def _fixed_costs(share: float, threads: int, tmp: str) -> tuple[dict[str, float], float]:
    """Per kind, the runtime's fixed cost per fused kernel; and its fixed cost per inference."""
    from torch import nn

    class Add(nn.Module):
        def forward(self, x):
            return x + x

    makers = {
        "conv": lambda: [nn.Conv2d(8, 8, 1), nn.ReLU()],
        "spatial conv": lambda: [nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()],
        "depthwise conv": lambda: [nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU()],
        "group conv": lambda: [nn.Conv2d(8, 8, 1, groups=2), nn.ReLU()],
        "max_pool": lambda: [nn.MaxPool2d(3, 1, 1)],
        "elementwise": lambda: [Add()],
    }
    overheads, run_s = {}, 0.0
    for kind, make in makers.items():
        times = []
        for n in (1, CHAIN):
            model = nn.Sequential(*(m for _ in range(n) for m in make())).eval()
            times.append(_best_seconds(ort_runner(model, (1, 8, 4, 4), threads, tmp),
                                       share / len(makers) / 2))
        overheads[kind] = max(times[1] - times[0], 0.0) / (CHAIN - 1)
        if kind == "conv":
            run_s = max(times[0] - overheads[kind], 0.0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(128, 128), nn.ReLU()).eval()
    chain = nn.Sequential(nn.Flatten(), *(m for _ in range(CHAIN)
                                          for m in (nn.Linear(128, 128), nn.ReLU()))).eval()
    one, many = (_best_seconds(ort_runner(m, (1, 8, 4, 4), threads, tmp), share / 8)
                 for m in (linear, chain))
    overheads["linear"] = max(many - one, 0.0) / (CHAIN - 1)
    return overheads, run_s


def _rates(share: float, threads: int, tmp: str, overheads: dict[str, float], run_s: float
           ) -> tuple[dict[str, float], float]:
    """FLOP/s of the conv kinds on calibrate.CONVS shapes, and the GEMM peak, in the runtime."""
    from torch import nn

    from .calibrate import CONVS, GEMM_N, MAX_POOL, _conv_flops
    rates = {}
    for kind, shapes in CONVS.items():
        flops = seconds = 0.0
        for cin, cout, size, k, stride, groups in shapes:
            conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False).eval()
            t = _best_seconds(ort_runner(conv, (1, cin, size, size), threads, tmp),
                              share / 16 / len(shapes))
            flops += _conv_flops(cin, cout, size, k, stride, groups)
            seconds += max(t - run_s - overheads.get(kind, overheads["conv"]), t / 2)
        rates[kind] = flops / seconds
    flops = seconds = 0.0                      # max pooling (CNN stems), as calibrate.py counts it
    for c, size in MAX_POOL:
        t = _best_seconds(ort_runner(nn.MaxPool2d(3, 2, 1), (1, c, size, size), threads, tmp),
                          share / 16 / len(MAX_POOL))
        flops += 9 * c * ((size - 1) // 2 + 1) ** 2
        seconds += max(t - run_s - overheads["max_pool"], t / 2)
    rates["max_pool"] = flops / seconds
    gemm = nn.Linear(GEMM_N, GEMM_N, bias=False).eval()
    t = _best_seconds(ort_runner(gemm, (GEMM_N, GEMM_N), threads, tmp), share / 8)
    return rates, 2 * GEMM_N ** 3 / max(t - run_s, t / 2)


def _fit_blocks(profile: DeviceProfile, analyze: Callable, threads: int, seconds: float,
                tmp: str) -> dict:
    """Time FUSED_BLOCKS synthetic blocks in the runtime, fit three scales (dense, light, fixed)
    on the even ones, take the interval from the odd (held-out) ones."""
    import torch
    rows = []
    for seed in range(FUSED_BLOCKS):
        model, shape = synthetic_block(seed)
        size = 4 * (sum(p.numel() for p in model.parameters()) + math.prod(shape))
        try:
            runners = [ort_runner(model, shape, threads, tmp)] + [
                ort_runner(synthetic_block(seed)[0], shape, threads, tmp)
                for _ in range(min(3, COLD_BYTES // max(size, 1)))]
        except RuntimeError:       # a block the exporter cannot export is not timed
            continue
        turn = itertools.cycle(runners)
        measured = _best_seconds(lambda turn=turn: next(turn)(), seconds / FUSED_BLOCKS)
        with torch.no_grad():
            est = estimate(analyze(model, "x".join(map(str, shape))), profile, "fused")
        dense = sum(op.seconds - op.dispatch_s for op in est.ops if is_dense((op.category,)))
        light = sum(op.seconds - op.dispatch_s for op in est.ops) - dense
        rows.append((dense, light, est.total_s - dense - light, measured))
    if len(rows) < 4:
        return {}
    fit = rows[0::2]       # the same ridge and clamp as the eager fit (measure._fit_blocks)
    a, c, b = (min(max(k, 1 / 3), 3.0) for k in _relative_fit(fit, RIDGE * len(fit)))
    logs = sorted(math.log(m / (a * x + c * y + b * z)) for x, y, z, m in rows[1::2])
    low, high = _quantile(logs, 0.1), _quantile(logs, 0.9)
    return {"in_model_scale": a, "light_scale": c, "overhead_scale": b,
            "interval": (min(1.0, math.exp(low)), max(1.0, math.exp(high))),
            "interval_level": 0.8}


def calibrate_fused(profile: DeviceProfile, seconds: float = 30.0, threads: int | None = None,
                    analyze: Callable | None = None) -> DeviceProfile:
    """`profile` (an eager calibration of this machine) with its deployment-runtime figures
    (`fused`) measured in ONNX Runtime in about `seconds`; with `analyze` (costmodel.analyze),
    synthetic blocks fit the runtime's scales and interval."""
    import onnxruntime
    import torch
    threads = threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="costmodel-ort-") as tmp:
        share = seconds * (0.5 if analyze else 1.0)
        overheads, run_s = _fixed_costs(share * 0.4, threads, tmp)
        rates, peak = _rates(share * 0.6, threads, tmp, overheads, run_s)
        overhead = sorted(overheads.values())[len(overheads) // 2]
        fused = {"peak_flops": peak, "overhead_s": overhead, "overheads": overheads,
                 "rates": rates, "run_s": run_s, "in_model_scale": 1.0, "light_scale": 1.0,
                 "overhead_scale": 1.0, "interval": (1.0, 1.0), "interval_level": 0.0,
                 "source": f"onnxruntime {onnxruntime.__version__} CPU, {threads} threads"}
        profile = dataclasses.replace(profile, fused=fused)
        if analyze is not None:
            fused = {**fused, **_fit_blocks(profile, analyze, threads, seconds * 0.5, tmp)}
    return dataclasses.replace(profile, fused=fused)


def describe_fused(profile: DeviceProfile) -> str:
    """The fused section of `costmodel calibrate`'s printout ('' without one)."""
    f = profile.fused
    if not f:
        return ""
    lines = [f"fused     {f.get('source', '')}: {f.get('run_s', 0) * 1e6:.1f} us per inference, "
             f"{f.get('overhead_s', profile.overhead_s) * 1e6:.2f} us per fused kernel "
             "(by kind: " + ", ".join(f"{k} {v * 1e6:.1f}" for k, v in
                                      (f.get("overheads") or {}).items()) + ")"]
    if "peak_flops" in f:
        lines.append(f"fused     peak {f['peak_flops'] / 1e9:.1f} GFLOP/s; " + ", ".join(
            f"{k} {v / 1e9:.1f}" for k, v in (f.get("rates") or {}).items()))
    if f.get("interval_level"):
        lines.append(f"fused     in model: dense x{f['in_model_scale']:.2f}, other ops "
                     f"x{f['light_scale']:.2f}, fixed costs x{f['overhead_scale']:.2f}; interval "
                     f"x{f['interval'][0]:.2f} to x{f['interval'][1]:.2f}")
    return "\n".join(lines)
