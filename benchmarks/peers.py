"""costmodel against the peers: accuracy, coverage, speed and memory, measured in one run.

    python benchmarks/peers.py                      # full run: zoo + transformers + probes +
                                                    # speed + scaling
    python benchmarks/peers.py --quick              # smoke run: a handful of models, small scaling
    python benchmarks/peers.py --models resnet50,probes --tools costmodel,fvcore --repeat 5

Peers (the `bench` extra, `pip install -e ".[bench]"`): fvcore, ptflops (its default pytorch
backend, and its aten backend as `ptflops_aten`), thop, torchinfo, calflops, torchscan, DeepSpeed's
flops profiler, and torch's own FlopCounterMode. A tool that is not installed is recorded as "not
installed" for every model, never dropped.

What is measured, per model and tool:
- accuracy: the tool's multiply-add count normalised to MAdds (TOOLS below says whether its raw
  figure is 1x or 2x MAdds) against torchvision's `weights.meta["_ops"]` (conv + matmul
  multiply-adds at batch 1 and the crop size of the DEFAULT weights), against an analytic formula
  for the transformers models and the probes; params against `num_params` (or the formula).
- coverage: ran / failed (one-line error) / timed out; whether it says when it leaves ops out.
  Tiny probe models (one Linear as a control, q @ k^T alone, F.scaled_dot_product_attention alone,
  F.interpolate alone, nn.MultiheadAttention) show exactly what each tool counts.
- speed: the analysis call alone (model construction and input creation excluded), best of
  --repeat warm runs after one cold run, at batch 1 for every model, and at batch 32 and at
  1x3x1024x1024 (resnet50, mobilenet_v2) for a representative subset. Ratios are to costmodel in
  the same run (the machine is shared and noisy: only ratios mean much).
- memory: peak RSS growth (VmHWM, reset through /proc/self/clear_refs) of the first (cold) call,
  in a fresh process.
- graph-size scaling: costmodel alone on synthetic nets of 1k, 10k and 100k nodes.

Isolation: the orchestrator runs one worker process per model (with a timeout); the worker builds
the model once with real random weights on CPU, using one thread so that forking stays safe, and
then forks one child process per (tool, workload) pair, with its own timeout (--timeout). The child
sets --threads threads, runs the tool and reports back through a file, so a crash, a hang or an
out-of-memory in one pair does not end the run. Each tool is called as its docs show, with grad
enabled unless the tool disables it itself (thop, torchinfo, torchscan do); --no-grad wraps every
call in torch.no_grad(), under which nn.MultiheadAttention takes a fused fast path that most
tools do not count.

Output: markdown (stdout and benchmarks/results/peers.md) and JSON (benchmarks/results/peers.json).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
RESULT_PREFIX = "@@PEERS "

# --------------------------------------------------------------------------------------------
# Tools: how to call each one, and what its raw number is.
# --------------------------------------------------------------------------------------------

TOOLS: dict[str, dict[str, Any]] = {
    "costmodel": dict(
        module="costmodel", factor=1, unit="MAdds",
        counts="contraction ops only (conv, linear, matmul/bmm/einsum, attention); "
               "static, meta tensors",
        source="README 'Conventions'; Report.totals.madds"),
    "flopcounter": dict(
        module="torch.utils.flop_counter", factor=2, unit="FLOPs = 2 x MAdds",
        counts="aten conv/mm/addmm/bmm/baddbmm and the SDPA kernels it registers; "
               "everything else 0",
        source="torch/utils/flop_counter.py: mm_flop returns m * n * 2 * k"),
    "fvcore": dict(
        module="fvcore", factor=1, unit="'flops' = MAdds",
        counts="jit-traced aten ops with a handle (conv, matmul, linear, einsum, bmm, norms, "
               "upsample...); logs 'Unsupported operator' for the rest",
        source="fvcore/nn/flop_count.py docstring: 'We count one fused multiply-add as one flop'"),
    "ptflops": dict(
        module="ptflops", factor=1, unit="MACs = MAdds",
        counts="default pytorch backend: nn.Module hooks (+ patched torch.matmul, F.* functionals);"
               " also counts BN, activations, pooling, bias; divides by batch",
        source="ptflops/flops_counter.py get_model_complexity_info docstring: '(macs, params)'"),
    "ptflops_aten": dict(
        module="ptflops", factor=1, unit="MACs = MAdds",
        counts="backend='aten': aten.mm/matmul/addmm/bmm/convolution only",
        source="ptflops/aten_ops.py"),
    "thop": dict(
        module="thop", factor=1, unit="MACs = MAdds",
        counts="nn.Module hooks for known layer types (conv, linear, BN, pooling, upsample...);"
               " functional ops and unknown modules are 0",
        source="thop/profile.py: profile() returns (total_ops, total_params); count_convNd = MACs"),
    "torchinfo": dict(
        module="torchinfo", factor=1, unit="Mult-Adds = MAdds",
        counts="per module with parameters: param numel x output positions; modules without"
               " parameters (and functional matmul/attention) are 0",
        source="torchinfo/layer_info.py calculate_macs"),
    "calflops": dict(
        module="calflops", factor=1, unit="MACs = MAdds (its FLOPs = 2 x MACs)",
        counts="patched torch/F functions (linear, conv, matmul, bmm, norms, activations, pooling,"
               " upsample, softmax...)",
        source="calflops/pytorch_ops.py: 'return 2 * macs, macs'"),
    "torchscan": dict(
        module="torchscan", factor=1, unit="MACs = MAdds",
        counts="module formulas per nn.Module type (conv, linear, BN, activations, pooling...);"
               " report has complete/partial status",
        source="torchscan report totals['macs'] (unit 'MACs')"),
    "deepspeed": dict(
        module="deepspeed.profiling.flops_profiler", factor=1,
        unit="MACs = MAdds (its FLOPs = 2 x MACs)",
        counts="patched torch/F functions like calflops (linear, conv, matmul, SDPA, norms,"
               " activations, upsample...)",
        source="deepspeed/profiling/flops_profiler/profiler.py: 'return 2 * macs, macs'"),
}
TOOL_ORDER = list(TOOLS)

# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

SPEED_MODELS = ("resnet50", "mobilenet_v2", "shufflenet_v2_x1_0", "efficientnet_b0", "vit_b_16",
                "convnext_tiny", "hf_bert_base")
LARGE_MODELS = ("resnet50", "mobilenet_v2")
QUICK_MODELS = ("resnet50", "mobilenet_v2", "shufflenet_v2_x1_0", "vit_b_16", "hf_bert_base",
                "probe_linear", "probe_matmul", "probe_sdpa", "probe_interpolate", "probe_mha")
HF_MODELS = ("hf_bert_base", "hf_gpt2", "hf_vit_base", "hf_llama_small")
PROBES = ("probe_linear", "probe_matmul", "probe_sdpa", "probe_interpolate", "probe_mha")
SEQ = 128
LLAMA = dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8,
             num_key_value_heads=4, vocab_size=32000)


def zoo_names() -> list[str]:
    import torchvision
    from torchvision.models import list_models
    return list_models(module=torchvision.models)


def builder_kwargs(name: str, weights) -> dict:
    """The constructor arguments torchvision's weights builder sets (as in the zoo test)."""
    kwargs = {}
    if name.startswith("vit_"):
        kwargs["image_size"] = weights.meta["min_size"][0]
    if name == "googlenet":
        kwargs.update(aux_logits=False, init_weights=False, transform_input=True)
    if name == "inception_v3":
        kwargs.update(aux_logits=True, init_weights=False, transform_input=True)
    return kwargs


def transformer_madds(layers: int, d: int, ff: int, s: int, kv_d: int | None = None,
                      mlp_mats: int = 2) -> int:
    """Per-layer projections + attention (q k^T and p v, every head) + MLP, batch 1."""
    kv_d = d if kv_d is None else kv_d
    proj = s * d * d * 2 + s * d * kv_d * 2          # q, o and k, v
    attn = 2 * s * s * d
    mlp = mlp_mats * s * d * ff
    return layers * (proj + attn + mlp)


@dataclass
class Built:
    model: Any
    kind: str                    # zoo | hf | probe
    ref_madds: int | None        # reference multiply-adds at batch 1
    ref_params: int | None
    ref_source: str
    make_input: Callable[[str], tuple[Any, str]]   # workload -> (real tensor, costmodel spec)
    workloads: tuple[str, ...]
    extra: dict


def build(name: str, speed_models: tuple[str, ...]) -> Built:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    speed = name in speed_models

    def image_input(size: int):
        def make(workload: str):
            b, s = {"b1": (1, size), "b32": (32, size), "large": (1, 1024)}[workload]
            return torch.randn(b, 3, s, s), f"{b}x3x{s}x{s}"
        return make

    if name.startswith("probe_"):
        x = torch.randn(1, SEQ, 512)

        class Probe(nn.Module):
            """One unused 1-element parameter: calflops raises StopIteration on a model with
            none."""
            def __init__(self):
                super().__init__()
                self.unused = nn.Parameter(torch.ones(1))

        class Matmul(Probe):          # attention scores alone: q @ k^T, 8 heads of 64
            def forward(self, x):
                q = x.view(1, SEQ, 8, 64).transpose(1, 2)
                return torch.matmul(q, q.transpose(-2, -1))

        class Sdpa(Probe):
            def forward(self, x):
                q = x.view(1, SEQ, 8, 64).transpose(1, 2)
                return F.scaled_dot_product_attention(q, q, q)

        class Interp(Probe):
            def forward(self, x):
                return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

        class Mha(nn.Module):
            def __init__(self):
                super().__init__()
                self.attn = nn.MultiheadAttention(512, 8, batch_first=True)

            def forward(self, x):
                return self.attn(x, x, x, need_weights=False)[0]

        heads_madds = 8 * SEQ * SEQ * 64
        table = {
            "probe_linear": (nn.Linear(512, 512, bias=False), x, SEQ * 512 * 512, 512 * 512,
                             "Linear(512, 512, bias=False) on 1x128x512: 128*512*512"),
            "probe_matmul": (Matmul(), x, heads_madds, 1,
                             "torch.matmul(q, q^T), q 1x8x128x64: 8*128*128*64"),
            "probe_sdpa": (Sdpa(), x, 2 * heads_madds, 1,
                           "F.scaled_dot_product_attention(q, q, q), q 1x8x128x64: 2*8*128*128*64"),
            "probe_interpolate": (Interp(), torch.randn(1, 16, 56, 56), 0, 1,
                                  "F.interpolate bilinear x2 on 1x16x56x56: 0 MAdds; "
                                  "FLOPs 7 per output = 1,404,928"),
            "probe_mha": (Mha(), x, 4 * SEQ * 512 * 512 + 2 * heads_madds,
                          4 * 512 * 512 + 4 * 512,
                          "nn.MultiheadAttention(512, 8), self-attention on 1x128x512: "
                          "4*128*512^2 + 2*8*128*128*64"),
        }
        model, inp, madds, params, how = table[name]
        spec = "x".join(map(str, inp.shape))
        return Built(model.eval(), "probe", madds, params, how,
                     lambda w, inp=inp, spec=spec: (inp, spec), ("b1",),
                     {"flops_formula": 7 * 16 * 112 * 112 if name == "probe_interpolate" else None})

    if name.startswith("hf_"):
        import transformers as T

        def ids(vocab):
            def make(workload):
                b = {"b1": 1, "b32": 32}[workload]
                return torch.randint(0, vocab, (b, SEQ)), f"{b}x{SEQ}:int64"
            return make

        if name == "hf_bert_base":
            cfg = T.BertConfig()
            model = T.BertModel(cfg)
            ref = transformer_madds(12, 768, 3072, SEQ) + 768 * 768     # + pooler on [CLS]
            how = "12 x (4 S d^2 + 2 S^2 d + 2 S d ff) + d^2 pooler, S=128"
            make = ids(cfg.vocab_size)
        elif name == "hf_gpt2":
            cfg = T.GPT2Config()
            model = T.GPT2Model(cfg)
            ref = transformer_madds(12, 768, 3072, SEQ)
            how, make = "12 x (4 S d^2 + 2 S^2 d + 2 S d ff), S=128", ids(cfg.vocab_size)
        elif name == "hf_vit_base":
            cfg = T.ViTConfig()
            model = T.ViTModel(cfg)
            ref = 196 * 3 * 16 * 16 * 768 + transformer_madds(12, 768, 3072, 197) + 768 * 768
            how, make = "patch conv + 12 x (...) at S=197 + pooler", image_input(224)
        elif name == "hf_llama_small":
            cfg = T.LlamaConfig(**LLAMA)
            model = T.LlamaModel(cfg)
            d = LLAMA["hidden_size"]
            kv = d * LLAMA["num_key_value_heads"] // LLAMA["num_attention_heads"]
            ref = transformer_madds(LLAMA["num_hidden_layers"], d, LLAMA["intermediate_size"], SEQ,
                                    kv_d=kv, mlp_mats=3)
            how = ("4 x (2 S d^2 + 2 S d d_kv + 2 S^2 d + 3 S d ff), GQA 8q/4kv heads, S=128 "
                   "(the rotary inv_freq @ positions outer product, 4,096 multiplies, "
                   "is not a MAdd)")
            make = ids(cfg.vocab_size)
        else:
            raise KeyError(name)
        params = sum(p.numel() for p in model.parameters())
        workloads = ("b1", "b32") if speed else ("b1",)
        return Built(model.eval(), "hf", ref, params, how, make, workloads,
                     {"attn_implementation": getattr(cfg, "_attn_implementation", None)})

    from torchvision.models import get_model, get_model_weights
    weights = get_model_weights(name).DEFAULT
    crop = weights.transforms().crop_size[0]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_model(name, **builder_kwargs(name, weights)).eval()
    workloads = ("b1",)
    if speed:
        workloads += ("b32",)
    if name in LARGE_MODELS and speed:
        workloads += ("large",)
    return Built(model, "zoo", round(weights.meta["_ops"] * 1e9), weights.meta["num_params"],
                 f"torchvision {weights} _ops={weights.meta['_ops']} G at {crop}x{crop}",
                 image_input(crop), workloads, {"crop": crop})


# --------------------------------------------------------------------------------------------
# Tool runners: each returns call() -> {"raw": number, "params": int|None, ...}
# --------------------------------------------------------------------------------------------

class ToolFailed(RuntimeError):
    pass


def runner(tool: str, model, x, spec: str, log_path: str, no_grad: bool = False
           ) -> Callable[[], dict]:
    import contextlib

    import torch

    def grad_mode():
        """Each tool as its docs call it (thop, torchinfo and torchscan disable grad themselves);
        --no-grad wraps every call in torch.no_grad(). Under no_grad an eval-mode
        nn.MultiheadAttention takes its fused fast path (aten._native_multi_head_attention),
        which most tools do not see."""
        return torch.no_grad() if no_grad else contextlib.nullcontext()

    def last_log_line(pattern: str = r"") -> str:
        text = Path(log_path).read_text(errors="replace").strip().splitlines()
        hits = [ln for ln in text if re.search(pattern, ln)] if pattern else text
        return (hits or text or ["no output"])[-1][:300]

    if tool == "costmodel":
        import costmodel

        def call():
            r = costmodel.analyze(model, spec)
            return {"raw": r.totals.madds, "params": r.totals.params, "status": r.totals.status,
                    "skipped": list(r.totals.unsupported), "flops": r.totals.flops}
        return call

    if tool == "flopcounter":
        from torch.utils.flop_counter import FlopCounterMode

        def call():
            with grad_mode(), FlopCounterMode(display=False) as fc:
                model(x)
            by_op = {str(k): v for k, v in fc.get_flop_counts().get("Global", {}).items()}
            return {"raw": fc.get_total_flops(), "params": None, "by_op": by_op}
        return call

    if tool == "fvcore":
        from fvcore.nn import FlopCountAnalysis, parameter_count

        def call():
            with grad_mode():
                fa = FlopCountAnalysis(model, x)
                total = fa.total()
                skipped = dict(fa.unsupported_ops())
            return {"raw": total, "params": parameter_count(model)[""], "skipped": skipped}
        return call

    if tool in ("ptflops", "ptflops_aten"):
        from ptflops import get_model_complexity_info
        backend = "aten" if tool == "ptflops_aten" else "pytorch"

        def call():
            with grad_mode():
                macs, params = get_model_complexity_info(
                    model, tuple(x.shape[1:]), as_strings=False, print_per_layer_stat=False,
                    input_constructor=lambda _: x, backend=backend)
            if macs is None:
                raise ToolFailed("returned None: " + last_log_line(r"Error|Exception|error"))
            return {"raw": macs, "params": params, "note": "per sample (divided by batch)"}
        return call

    if tool == "thop":
        from thop import profile

        def call():
            with grad_mode():
                macs, params = profile(model, inputs=(x,), verbose=False)
            return {"raw": macs, "params": params}
        return call

    if tool == "torchinfo":
        from torchinfo import summary

        def call():
            with grad_mode():
                s = summary(model, input_data=[x], verbose=0)
            return {"raw": s.total_mult_adds, "params": s.total_params}
        return call

    if tool == "calflops":
        from calflops import calculate_flops

        def call():
            with grad_mode():
                flops, macs, params = calculate_flops(
                    model, args=[x], output_as_string=False, print_results=False,
                    print_detailed=False)
            return {"raw": macs, "params": params, "flops": flops}
        return call

    if tool == "torchscan":
        import torchscan

        def call():
            with grad_mode():
                r = torchscan.crawl_module(model, args=(x,))
            macs = r["totals"]["macs"]
            raw = macs["value"] if macs["status"] == "complete" else macs["known_value"]
            diag = [d.get("operator") or d.get("path") or d["message"][:80]
                    for d in r["diagnostics"] if d["metric"] == "macs"]
            return {"raw": raw, "params": r["totals"]["parameters"]["value"],
                    "status": macs["status"], "skipped": diag}
        return call

    if tool == "deepspeed":
        from deepspeed.profiling.flops_profiler import get_model_profile

        def call():
            with grad_mode():
                flops, macs, params = get_model_profile(
                    model, args=[x], print_profile=False, detailed=False, as_string=False,
                    warm_up=0)
            return {"raw": macs, "params": params, "flops": flops}
        return call

    raise KeyError(tool)


# --------------------------------------------------------------------------------------------
# Worker: build once, fork one child per (tool, workload)
# --------------------------------------------------------------------------------------------

def read_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:240] if msg else ''}".strip()


def child(tool: str, built: Built, workload: str, args, out_path: str, log_path: str) -> None:
    """Runs in the forked child: never returns."""
    result: dict[str, Any] = {}
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        import warnings
        warnings.simplefilter("default")
        import torch
        torch.set_num_threads(args.threads)
        x, spec = built.make_input(workload)
        try:
            call = runner(tool, built.model, x, spec, log_path, args.no_grad)
        except ImportError as e:
            result = {"state": "not installed", "error": one_line(e)}
            raise SystemExit from None
        deadline = time.perf_counter() + args.timeout * 0.8
        resettable = reset_hwm()
        rss0 = read_status("VmRSS")
        hwm0 = read_status("VmHWM")
        t0 = time.perf_counter()
        out = call()
        first = time.perf_counter() - t0
        hwm1 = read_status("VmHWM")
        mem = hwm1 - (rss0 if resettable else hwm0)
        times = []
        # --repeat runs, and more for a sub-millisecond call (up to 200, until --min-timed
        # seconds are timed): the best of 5 is noise at that scale, for every tool alike
        while len(times) < args.repeat or (sum(times) < args.min_timed and len(times) < 200):
            remaining = deadline - time.perf_counter()
            if times and (min(times) > remaining or sum(times) + first > args.timed_budget):
                break
            if not times and (first > remaining or first > args.timed_budget):
                break
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        result = {"state": "ran", **out, "first_s": first, "times_s": times,
                  "best_s": min(times) if times else first, "mem_bytes": mem,
                  "hwm_reset": resettable}
    except SystemExit:
        pass
    except BaseException as e:  # noqa: BLE001 - every failure is a result
        result = {"state": "failed", "error": one_line(e)}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        text = Path(log_path).read_text(errors="replace")
        result["log_tail"] = text[-1500:]
        Path(out_path).write_text(json.dumps(result, default=str))
    finally:
        os._exit(0)


def run_pair(tool: str, built: Built, workload: str, args) -> dict:
    fd, out_path = tempfile.mkstemp(prefix="peers-", suffix=".json")
    os.close(fd)
    log_path = out_path[:-5] + ".log"
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        child(tool, built, workload, args, out_path, log_path)
    status = None
    while time.perf_counter() - start < args.timeout:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status = None
    try:
        text = Path(out_path).read_text()
        res = json.loads(text) if text else None
    except (OSError, ValueError):
        res = None
    log = Path(log_path).read_text(errors="replace") if os.path.exists(log_path) else ""
    for p in (out_path, log_path):
        try:
            os.unlink(p)
        except OSError:
            pass
    if res is None:
        if status is None:
            res = {"state": "timeout", "error": f"no result within {args.timeout} s"}
        else:
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            last = (log.strip().splitlines() or [""])[-1][:240]
            res = {"state": "failed",
                   "error": (f"child died ({'signal ' + str(sig) if sig else 'exit'}) "
                             f"{last}").strip(),
                   "log_tail": log[-1500:]}
    res["wall_s"] = time.perf_counter() - start
    return res


def preimport(tools: list[str]) -> None:
    """Import each tool once in the worker, so that a forked child does not pay for it per pair.
    None of these imports starts an OpenMP pool (the worker runs with one thread)."""
    import importlib
    for t in tools:
        try:
            importlib.import_module(TOOLS[t]["module"])
        except Exception:  # noqa: BLE001 - the child reports it as "not installed" or failed
            pass


def worker(args) -> None:
    """Builds each model in turn and forks one child per (tool, workload)."""
    import ctypes
    import gc

    import torch
    torch.set_num_threads(1)     # the parent never starts an OpenMP pool, so forking stays safe
    import warnings
    warnings.filterwarnings("ignore")
    tools = args.tools.split(",")
    speed = tuple(args.speed_models.split(","))
    preimport(tools)
    base_repeat = args.repeat
    for name in args.worker.split(","):
        t0 = time.perf_counter()
        try:
            built = build(name, speed)
        except BaseException as e:  # noqa: BLE001
            print(RESULT_PREFIX + json.dumps({"model": name, "build_error": one_line(e)}),
                  flush=True)
            print(RESULT_PREFIX + json.dumps({"done": name}), flush=True)
            continue
        header = {"model": name, "kind": built.kind, "ref_madds": built.ref_madds,
                  "ref_params": built.ref_params, "ref_source": built.ref_source,
                  "workloads": built.workloads, "extra": built.extra,
                  "build_s": time.perf_counter() - t0}
        print(RESULT_PREFIX + json.dumps(header), flush=True)
        # Every model gets a cold run and a warm one; the speed subset gets --repeat warm runs.
        args.repeat = base_repeat if name in speed else min(base_repeat, args.repeat_other)
        for workload in built.workloads:
            for tool in tools:
                res = run_pair(tool, built, workload, args)
                res.update(model=name, tool=tool, workload=workload)
                print(RESULT_PREFIX + json.dumps(res, default=str), flush=True)
        print(RESULT_PREFIX + json.dumps({"done": name}), flush=True)
        del built
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)   # give the freed weights back before forking
        except OSError:
            pass


# --------------------------------------------------------------------------------------------
# Graph-size scaling (costmodel only)
# --------------------------------------------------------------------------------------------

def scale_worker(args) -> None:
    import gc

    import torch
    from torch import nn

    import costmodel
    torch.set_num_threads(1)
    n = args.scale
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(n // 2)
                            for m in (nn.Linear(16, 16), nn.ReLU())]).eval()
    gc.collect()
    resettable = reset_hwm()
    rss0 = read_status("VmRSS")
    t0 = time.perf_counter()
    r = costmodel.analyze(model, "1x16")
    first = time.perf_counter() - t0
    mem = read_status("VmHWM") - rss0
    times = []
    for _ in range(args.repeat if first < 5 else 1):
        t0 = time.perf_counter()
        costmodel.analyze(model, "1x16")
        times.append(time.perf_counter() - t0)
    out = {"nodes": n, "layers": len(r.layers), "madds": r.totals.madds, "first_s": first,
           "times_s": times, "best_s": min(times), "mem_bytes": mem, "hwm_reset": resettable}
    print(RESULT_PREFIX + json.dumps(out), flush=True)


# --------------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------------

def launch(cmd: list[str], timeout: float) -> tuple[list[dict], str | None]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        problem = None if proc.returncode == 0 else (
            f"worker exited {proc.returncode}: "
            + ((err or "").strip().splitlines() or [""])[-1][:240])
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)    # the worker and its forked children, by group id
        out, err = proc.communicate()
        problem = f"worker timed out after {timeout:.0f} s"
    rows = [json.loads(line[len(RESULT_PREFIX):]) for line in out.splitlines()
            if line.startswith(RESULT_PREFIX)]
    return rows, problem


def stream_workers(names: list[str], passthrough: list[str], stall: float):
    """Yields (model, header, rows, problem) per model. One worker runs many models; if it dies or
    makes no progress for `stall` seconds (a hung build), it is killed, the model it was on is
    recorded as failed, and a fresh worker goes on with the rest."""
    import queue
    import threading
    todo = list(names)
    while todo:
        proc = subprocess.Popen([sys.executable, __file__, "--worker", ",".join(todo)]
                                + passthrough,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        lines: queue.Queue = queue.Queue()
        err_tail: list[str] = []

        def pump_out(stream, lines=lines):     # this worker's queue, not the next one's
            for line in stream:
                lines.put(line)
            lines.put(None)           # end of stream: the worker has exited

        def pump_err(stream, err_tail=err_tail):
            for line in stream:
                err_tail.append(line)
                del err_tail[:-20]

        threading.Thread(target=pump_out, args=(proc.stdout,), daemon=True).start()
        threading.Thread(target=pump_err, args=(proc.stderr,), daemon=True).start()
        current, header, rows = todo[0], None, []
        problem = None
        while True:
            try:
                line = lines.get(timeout=stall)
            except queue.Empty:
                os.killpg(proc.pid, signal.SIGKILL)   # the worker I started and its children
                problem = f"no progress for {stall:.0f} s (killed)"
                break
            if line is None:
                proc.wait()
                if todo:
                    problem = (f"worker died (exit {proc.returncode}): "
                               + ("".join(err_tail).strip().splitlines() or [""])[-1][:240])
                break
            if not line.startswith(RESULT_PREFIX):
                continue
            row = json.loads(line[len(RESULT_PREFIX):])
            if "done" in row:
                yield current, header or {"model": current}, rows, None
                todo.remove(current)
                current, header, rows = (todo[0] if todo else None), None, []
            elif "tool" in row:
                rows.append(row)
            else:
                current, header = row["model"], row
        proc.wait()
        if todo and problem:
            yield current, header or {"model": current}, rows, problem
            todo.remove(current)


def select_models(args) -> list[str]:
    if args.quick and not args.models:
        return list(QUICK_MODELS)
    if not args.models:
        return list(PROBES) + list(HF_MODELS) + zoo_names()
    names: list[str] = []
    for item in args.models.split(","):
        item = item.strip()
        if item == "zoo":
            names += zoo_names()
        elif item == "hf":
            names += HF_MODELS
        elif item == "probes":
            names += PROBES
        elif item:
            names.append(item)
    return list(dict.fromkeys(names))


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "transformers", "costmodel", "fvcore", "ptflops", "thop",
                "torchinfo", "calflops", "torchscan", "deepspeed"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="", help="comma list of names, or zoo / hf / probes")
    p.add_argument("--tools", default=",".join(TOOL_ORDER))
    p.add_argument("--quick", action="store_true", help="a handful of models, small scaling")
    p.add_argument("--timeout", type=float, default=120, help="seconds per (model, tool, workload)")
    p.add_argument("--repeat", type=int, default=3, help="warm timed runs after the cold one")
    p.add_argument("--repeat-other", type=int, default=1,
                   help="warm timed runs for models outside the speed subset")
    p.add_argument("--timed-budget", type=float, default=20,
                   help="stop repeating once the timed runs of one pair take this many seconds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--speed-models", default=",".join(SPEED_MODELS))
    p.add_argument("--scale-sizes", default="", help="comma list of node counts; 0 for none")
    p.add_argument("--min-timed", type=float, default=0.1,
                   help="keep repeating a fast call until this many seconds are timed "
                        "(max 200 runs)")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--no-grad", action="store_true",
                   help="wrap every tool call in torch.no_grad() "
                        "(default: each tool's own setting)")
    p.add_argument("--render", metavar="JSON",
                   help="only re-render the markdown of a saved peers.json (no measurement)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--scale", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    if args.scale is not None:
        return scale_worker(args)
    if args.render:
        data = json.loads(Path(args.render).read_text())
        data["summary"] = summarise(data)
        md = render(data)
        Path(args.render).with_suffix(".md").write_text(md)
        Path(args.render).write_text(json.dumps(data, indent=1, default=str))
        print(md)
        return

    tools = [t for t in args.tools.split(",") if t]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        p.error(f"unknown tools {unknown}; known: {', '.join(TOOL_ORDER)}")
    if "costmodel" not in tools:
        tools.insert(0, "costmodel")       # every ratio is to costmodel
    models = select_models(args)
    sizes = [int(s) for s in (args.scale_sizes or ("1000,10000" if args.quick else
                                                    "1000,10000,100000")).split(",")
             if s and int(s) > 0]   # --scale-sizes 0: no scaling runs
    started = time.time()
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "versions": versions(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": args.threads, "repeat": args.repeat, "min_timed_s": args.min_timed,
            "no_grad": args.no_grad, "timeout_s": args.timeout,
            "tools": tools, "models": models, "speed_models": args.speed_models.split(","),
            "command": " ".join([Path(sys.executable).name, "benchmarks/peers.py"] + sys.argv[1:])}
    data = {"meta": meta, "tools": {t: TOOLS[t] for t in tools}, "models": {}, "results": [],
            "scaling": []}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    passthrough = (["--tools", ",".join(tools), "--timeout", str(args.timeout), "--repeat",
                    str(args.repeat), "--threads", str(args.threads), "--speed-models",
                    args.speed_models, "--timed-budget", str(args.timed_budget),
                    "--min-timed", str(args.min_timed),
                    "--repeat-other", str(args.repeat_other)]
                   + (["--no-grad"] if args.no_grad else []))
    stall = max(600.0, 2 * args.timeout + 60)
    workers = stream_workers(models, passthrough, stall)
    for i, (name, header, rows, problem) in enumerate(workers, 1):
        if problem and "ref_madds" not in header:
            header["build_error"] = header.get("build_error") or problem
        data["models"][name] = header
        got = {(r["tool"], r["workload"]) for r in rows}
        data["results"] += rows
        for w in header.get("workloads", ["b1"]):
            for t in tools:
                if (t, w) not in got:
                    data["results"].append({"model": name, "tool": t, "workload": w,
                                            "state": "failed",
                                            "error": (header.get("build_error") or problem
                                                      or "no result")})
        line = " ".join(f"{r['tool']}={fmt_cell_short(r)}" for r in rows
                        if r.get("workload") == "b1")
        print(f"[{i}/{len(models)} {time.time() - started:5.0f}s] {name}: "
              f"{header.get('build_error') or line}", file=sys.stderr, flush=True)
        write_json(out_dir, data)
    for n in sizes:
        rows, problem = launch([sys.executable, __file__, "--scale", str(n), "--repeat",
                                str(args.repeat)], timeout=900)
        data["scaling"].append(rows[0] if rows else {"nodes": n, "error": problem})
        print(f"[scaling] {n} nodes: {data['scaling'][-1]}", file=sys.stderr, flush=True)
    meta["elapsed_s"] = time.time() - started
    data["summary"] = summarise(data)
    write_json(out_dir, data)
    md = render(data)
    (out_dir / "peers.md").write_text(md)
    print(md)


def write_json(out_dir: Path, data: dict) -> None:
    (out_dir / "peers.json").write_text(json.dumps(data, indent=1, default=str))


# --------------------------------------------------------------------------------------------
# Analysis of the results
# --------------------------------------------------------------------------------------------

def fmt_cell_short(r: dict) -> str:
    if r.get("state") != "ran":
        return r.get("state", "?")
    return f"{r['best_s'] * 1e3:.0f}ms"


def madds_of(r: dict) -> float | None:
    if r.get("state") != "ran" or r.get("raw") is None:
        return None
    return float(r["raw"]) / TOOLS[r["tool"]]["factor"]


def rel_err(value: float | None, ref: int | None) -> float | None:
    if value is None or not ref:
        return None
    return (value - ref) / ref


def acc_err(value: float | None, ref: int | None, kind: str) -> float | None:
    """Relative error beyond the reference's own rounding: torchvision publishes `_ops` in G with
    3 decimals (+-0.0005 G, 1.2% of shufflenet_v2_x0_5's 0.040 G); the formulas are exact."""
    e = rel_err(value, ref)
    if e is None or kind != "zoo":
        return e
    slack = 0.0005e9 / ref
    return 0.0 if abs(e) <= slack else math.copysign(abs(e) - slack, e)


def matches(value: float | None, ref: int | None, kind: str) -> bool:
    if value is None or ref is None:
        return False
    tol = max(0.00051e9, 1e-4 * ref) if kind == "zoo" else max(1e-4 * ref, 0.5)
    return abs(value - ref) <= tol


def flagged(r: dict) -> bool:
    """Did the tool say it left something out?"""
    if r.get("skipped"):
        return True
    if r.get("status") == "partial":
        return True
    return bool(re.search(r"unsupported|not supported|uncounted|no flop|not implemented|skipp",
                          r.get("log_tail", ""), re.I))


PROBE_PATTERNS = {"probe_matmul": r"matmul|bmm", "probe_sdpa": r"scaled_dot|attention",
                  "probe_interpolate": r"upsample|interpolate",
                  "probe_mha": r"attention|multi_?head",
                  "probe_linear": r"linear|addmm|mm"}


def probe_verdict(r: dict, built: dict) -> str:
    if r.get("state") != "ran":
        return r.get("state", "?")
    value = madds_of(r)
    ref = built["ref_madds"]
    text = " ".join(map(str, r.get("skipped") or [])) + " " + r.get("log_tail", "")
    warned = bool(re.search(PROBE_PATTERNS[r["model"]], text, re.I)) and flagged(r)
    if built["model"] == "probe_interpolate":
        if not value:
            return "0" + (" (warned)" if warned else "")
        return f"{value:,.0f}"
    if matches(value, ref, "probe"):
        return "exact"
    if not value:
        return "0, " + ("warned" if warned else "**silent**")
    return f"{value / ref:.2f}x" + (" (warned)" if warned else "")


def summarise(data: dict) -> dict:
    models = data["models"]
    by = {(r["model"], r["tool"], r["workload"]): r for r in data["results"]}
    tools = data["meta"]["tools"]
    speed_models = [m for m in data["meta"]["speed_models"] if m in models]
    out = {}
    for t in tools:
        s: dict[str, Any] = {"ran": 0, "failed": 0, "timeout": 0, "not_installed": 0,
                             "exact": 0, "params_exact": 0, "params_reported": 0, "errors": [],
                             "failures": [], "under_silent": [], "over": []}
        for m, h in models.items():
            if h.get("kind") not in ("zoo", "hf"):
                continue
            r = by.get((m, t, "b1"), {})
            state = r.get("state", "failed")
            if state == "ran":
                s["ran"] += 1
                v = madds_of(r)
                e = acc_err(v, h["ref_madds"], h["kind"])
                if e is not None:
                    s["errors"].append((abs(e), e, m))
                if matches(v, h["ref_madds"], h["kind"]):
                    s["exact"] += 1
                elif v is not None and v < h["ref_madds"]:
                    if not flagged(r):
                        s["under_silent"].append(m)
                else:
                    s["over"].append(m)
                if r.get("params") is not None:
                    s["params_reported"] += 1
                    if int(r["params"]) == h["ref_params"]:
                        s["params_exact"] += 1
            elif state == "not installed":
                s["not_installed"] += 1
            else:
                s["timeout" if state == "timeout" else "failed"] += 1
                s["failures"].append((m, r.get("error", "")))
        errs = sorted(s["errors"])
        s["median_abs_err"] = statistics.median([a for a, _, _ in errs]) if errs else None
        s["worst"] = (errs[-1][1], errs[-1][2]) if errs else None
        for w in ("b1", "b32", "large"):
            times, ratios, mems, zoo_ratios = [], [], [], []
            for m in (speed_models if w != "large"
                      else [x for x in speed_models if x in LARGE_MODELS]):
                r, c = by.get((m, t, w)), by.get((m, "costmodel", w))
                if r and r.get("state") == "ran":
                    times.append(r["best_s"])
                    mems.append(r["mem_bytes"])
                    if c and c.get("state") == "ran":
                        ratios.append(r["best_s"] / c["best_s"])
            if w == "b1":
                for m in models:
                    r, c = by.get((m, t, w)), by.get((m, "costmodel", w))
                    if r and c and r.get("state") == "ran" and c.get("state") == "ran" and \
                            models[m].get("kind") in ("zoo", "hf"):
                        zoo_ratios.append(r["best_s"] / c["best_s"])
                s["b1_all_median_ratio"] = statistics.median(zoo_ratios) if zoo_ratios else None
                s["b1_all_n"] = len(zoo_ratios)
            s[w] = {"n": len(times),
                    "median_s": statistics.median(times) if times else None,
                    "median_ratio": statistics.median(ratios) if ratios else None,
                    "min_ratio": min(ratios) if ratios else None,
                    "median_mem": statistics.median(mems) if mems else None,
                    "max_mem": max(mems) if mems else None}
        s["probes"] = {m: probe_verdict(by.get((m, t, "b1"), {"state": "failed", "model": m}),
                                        models[m])
                       for m in models if models[m].get("kind") == "probe"}
        s["errors"] = [(e, m) for _, e, m in errs]
        out[t] = s
    return out


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:+.2f}%"


def ms(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x * 1e3:,.0f} ms" if x >= 0.1 else f"{x * 1e3:.1f} ms"


def mib(x: float | None) -> str:
    return "–" if x is None else f"{x / 2**20:,.0f} MiB"


def ratio(x: float | None) -> str:
    return "–" if x is None else (f"{x:.2f}x" if x < 10 else f"{x:.0f}x")


def slope_table(scaling: list[dict]) -> tuple[list[str], dict]:
    rows = [r for r in scaling if "best_s" in r]
    lines = ["| nodes | layers | analyze (best) | per node | peak RSS growth "
             "| log-log slope vs previous |",
             "|---|---|---|---|---|---|"]
    fit = {}
    prev = None
    for r in rows:
        sl = "–"
        if prev:
            slope = math.log(r['best_s'] / prev['best_s']) / math.log(r['nodes'] / prev['nodes'])
            sl = f"{slope:.2f}"
        lines.append(f"| {r['nodes']:,} | {r['layers']:,} | {r['best_s']:.3f} s | "
                     f"{r['best_s'] / r['nodes'] * 1e6:.1f} µs | {mib(r['mem_bytes'])} | {sl} |")
        prev = r
    for r in scaling:
        if "best_s" not in r:
            lines.append(f"| {r.get('nodes')} | failed: {r.get('error')} | | | | |")
    if len(rows) >= 2:
        xs = [math.log(r["nodes"]) for r in rows]
        ys = [math.log(r["best_s"]) for r in rows]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        fit = {"loglog_slope": b,
               "us_per_node": [r["best_s"] / r["nodes"] * 1e6 for r in rows]}
    return lines, fit


def summary_tables(data: dict) -> tuple[list[str], list[str]]:
    """Accuracy and coverage per tool; speed and memory per tool."""
    s = data["summary"]
    acc = ["| tool | raw figure | ran / failed / timed out | MAdds exact | median abs error "
           "| worst error | above / silently below the reference | params exact "
           "| probes it gets wrong |",
           "|" + "---|" * 9]
    speed = ["| tool | b1: median time (x costmodel) | b32 | 1024x1024 "
             "| b1, all models: median x costmodel | peak RSS growth b1 / b32 / 1024 (median) |",
             "|" + "---|" * 6]
    for t, v in s.items():
        n_models = v["ran"] + v["failed"] + v["timeout"] + v["not_installed"]
        ran = (f"not installable ({v['not_installed']})"
               if n_models and v["not_installed"] == n_models
               else f"{v['ran']} / {v['failed']} / {v['timeout']}")
        worst = (f"{pct(v['worst'][0])} ({v['worst'][1]})" if v["worst"] and v["worst"][0]
                 else "none")
        params = (f"{v['params_exact']}/{v['params_reported']}" if v["params_reported"]
                  else "not reported")
        wrong = [f"{m.removeprefix('probe_')}: {x}" for m, x in v["probes"].items()
                 if x not in ("exact",) and m != "probe_interpolate"]
        acc.append(f"| {t} | {TOOLS[t]['unit']} | {ran} | {v['exact']}/{v['ran']} | "
                   f"{pct(v['median_abs_err'])} | {worst} | {len(v['over'])} / "
                   f"{len(v['under_silent'])} | {params} | {'; '.join(wrong) or 'none'} |")

        def w(key, v=v):
            d = v[key]
            if d["median_s"] is None:
                return "–"
            return f"{ms(d['median_s'])} ({ratio(d['median_ratio'])})"

        mem = " / ".join(mib(v[k]["median_mem"]) for k in ("b1", "b32", "large"))
        speed.append(f"| {t} | {w('b1')} | {w('b32')} | {w('large')} | "
                     f"{ratio(v['b1_all_median_ratio'])} (n={v['b1_all_n']}) | {mem} |")
    return acc, speed


def render(data: dict) -> str:
    meta = data["meta"]
    tools = meta["tools"]
    by = {(r["model"], r["tool"], r["workload"]): r for r in data["results"]}
    models = data["models"]
    v = meta["versions"]
    out = ["# costmodel against the peers", "",
           f"Measured {meta['started']} in one run of `{meta['command']}` "
           f"({meta['elapsed_s'] / 60:.0f} min), {meta['cores']} cores shared with other work, "
           f"{meta['threads']} torch threads per tool call, "
           f"best of up to {meta['repeat']} warm runs after one cold run, "
           f"{meta['timeout_s']:.0f} s timeout per pair. Versions: "
           + ", ".join(f"{k} {x}" for k, x in v.items()) + ".", "",
           "Times are of the analysis call alone (model built beforehand); every peer executes the "
           "model on real tensors ("
           + ("every call under `torch.no_grad()`" if meta.get("no_grad") else
              "each as its docs call it: grad enabled unless the tool disables it itself")
           + "), costmodel does not. Ratios are "
           "tool time / costmodel time for the same model and workload in the same run "
           "(> 1: costmodel is faster). Memory is the peak RSS growth of the first call in a fresh "
           "forked process. MAdds error is (tool MAdds - reference) / reference beyond the "
           "reference's rounding (torchvision's 3 decimals in G), with the tool's "
           "raw figure divided by its factor (FlopCounterMode: 2). References: torchvision "
           "`_ops` (conv + matmul multiply-adds; 'exact' = within its 3-decimal precision) and "
           "`num_params`; analytic formulas for the transformers models and the probes.", "",
           "## Summary: accuracy and coverage", ""]
    acc, speed = summary_tables(data)
    n_ref = sum(1 for h in models.values() if h.get("kind") in ("zoo", "hf"))
    out += acc
    out += ["", f"Over the {n_ref} reference models (torchvision zoo + transformers). 'Exact' is "
            "within the reference's precision. 'Silently below' counts models where the tool's "
            "total is under the reference and it printed no warning about skipped ops.", "",
            "## Summary: speed and memory", ""]
    out += speed
    out += ["", "Speed columns are medians over the speed subset "
            f"({', '.join(m for m in meta['speed_models'] if m in models)}); "
            "1024x1024 is resnet50 and mobilenet_v2 at 1x3x1024x1024. "
            "'b1 all models' is the median per-model ratio over every zoo/transformers model both "
            "tools ran.", ""]

    # probes
    probes = [m for m in models if models[m].get("kind") == "probe"]
    if probes:
        out += ["## Probes: what each tool counts", "",
                "| probe | formula (MAdds) | " + " | ".join(tools) + " |",
                "|---|---|" + "---|" * len(tools)]
        for m in probes:
            h = models[m]
            cells = []
            for t in tools:
                r = by.get((m, t, "b1"), {"state": "failed", "model": m})
                verdict = probe_verdict({**r, "model": m}, h)
                raw = madds_of(r)
                cells.append(verdict if verdict in ("exact",) or raw is None
                             else f"{verdict} [{raw:,.0f}]" if m != "probe_interpolate"
                             else verdict)
            out.append(f"| {m} | {h.get('ref_madds', 0):,} | " + " | ".join(cells) + " |")
        out += ["", "Cells: `exact`, a multiple of the formula, or `0` (**silent** when the tool "
                "did not say it skipped the op); [n] is the tool's count normalised to MAdds. For "
                "interpolate the MAdds formula is 0 and costmodel's FLOPs formula is 7 per output "
                "(1,404,928); a cell shows what the tool adds to its multiply-add total.", ""]

    # speed
    for w, title in (("b1", "batch 1"), ("b32", "batch 32"), ("large", "1x3x1024x1024")):
        names = [m for m in models if (m, "costmodel", w) in by and
                 (w != "b1" or m in meta["speed_models"])]
        if not names:
            continue
        out += [f"## Speed and memory, {title}", "",
                "| model | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
        for m in names:
            c = by.get((m, "costmodel", w), {})
            cells = []
            for t in tools:
                r = by.get((m, t, w), {})
                if r.get("state") != "ran":
                    cells.append(r.get("state", "–"))
                    continue
                rt = (f" ({ratio(r['best_s'] / c['best_s'])})" if c.get("state") == "ran"
                      and t != "costmodel" else "")
                cells.append(f"{ms(r['best_s'])}{rt}, {mib(r['mem_bytes'])}")
            out.append(f"| {m} | " + " | ".join(cells) + " |")
        out.append("")

    # accuracy per model
    out += ["## Accuracy per model (batch 1)", "",
            "MAdds error vs the reference; `P` marks params different from the reference "
            "(`–` where the tool reports none).", "",
            "| model | reference MAdds | " + " | ".join(tools) + " |",
            "|---|---|" + "---|" * len(tools)]
    for m, h in models.items():
        if h.get("kind") not in ("zoo", "hf"):
            if "build_error" in h:
                out.append(f"| {m} | build failed: {h['build_error']} |" + " |" * len(tools))
            continue
        cells = []
        for t in tools:
            r = by.get((m, t, "b1"), {})
            if r.get("state") != "ran":
                cells.append(r.get("state", "–").upper() if r.get("state") != "not installed"
                             else "n/i")
                continue
            val = madds_of(r)
            e = acc_err(val, h["ref_madds"], h["kind"])
            cell = "exact" if matches(val, h["ref_madds"], h["kind"]) else pct(e)
            if r.get("params") is not None and int(r["params"]) != h["ref_params"]:
                cell += " P"
            cells.append(cell)
        out.append(f"| {m} | {h['ref_madds'] / 1e9:.3f} G | " + " | ".join(cells) + " |")
    out.append("")

    # failures
    fails = [(r["tool"], r["model"], r["workload"], r.get("state"), r.get("error", ""))
             for r in data["results"] if r.get("state") in ("failed", "timeout")]
    if fails:
        out += ["## Failures", "", "| tool | model | workload | state | error |",
                "|---|---|---|---|---|"]
        for t, m, w, st, e in sorted(fails):
            out.append(f"| {t} | {m} | {w} | {st} | {e.replace('|', '/')} |")
        out.append("")

    # scaling
    if data["scaling"]:
        lines, fit = slope_table(data["scaling"])
        out += ["## Graph-size scaling (costmodel)", "",
                "`nn.Sequential` of N/2 x (Linear(16, 16), ReLU), analysed at 1x16; best of the "
                "warm runs.", ""] + lines
        if fit:
            out += ["", "Least-squares log-log slope over all sizes: "
                    f"**{fit['loglog_slope']:.2f}** (1.0 = linear)."]
            data["scaling_fit"] = fit
        out.append("")

    # tool notes
    out += ["## Tools", "", "| tool | raw figure | what it counts | source |", "|---|---|---|---|"]
    for t in tools:
        i = TOOLS[t]
        out.append(f"| {t} | {i['unit']} (factor {i['factor']}) | {i['counts']} | {i['source']} |")
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    main()
