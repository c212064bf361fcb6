"""Generation latency: costmodel's estimate against measured CPU runs (issue 16's validation).

In one process: calibrate this machine's DeviceProfile, then for LLaMA-style models of a few
sizes (random weights, eval, no_grad, float32) and each batch and prompt length, measure

- time to first token: the median wall time of the prefill (prompt pass with an empty cache),
  over --runs runs after --warmup untimed ones (1: kernel selection and the heap's growth);
- decode tokens/s: batch x new tokens / the wall time of the greedy decode loop that follows
  (one token per step over the model's own DynamicCache);

and print them next to `analyze_generation(...).latency(profile)`, with the ratio
measured / estimated. Prints a markdown table.

    taskset -c 0 python benchmarks/generation_latency.py [--sizes 10M 50M] [--skip-largest]
        [--batch 1 4] [--prompt 128 1024] [--new-tokens 32] [--calibrate 20 | --profile P.json]
        [--threads N]

Pin it to one idle core (`taskset -c N`, with --threads 1): on a shared core the measured
times move by 2-5x between runs and nothing can be concluded. The profile is calibrated in the
same process (micro-benchmarks and costmodel's synthetic blocks, never these models) unless
--profile gives one saved by `costmodel calibrate`. "in" says whether the measured value lies
inside the estimate's interval. It imports the costmodel on sys.path: from a checkout that is
not the installed one, run it with PYTHONPATH=. (the profile's "skinny" line shows the
rows x width table when the checkout has it).
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

import costmodel
from costmodel.analysis.calibrate import calibrate, describe

# LLaMA-style shapes (hidden, layers, heads, kv heads, ffn): about 10M, 50M, 150M, 500M params
# with a 32,000-token vocabulary
SIZES = {"10M": (256, 4, 4, 2, 688), "50M": (512, 8, 8, 2, 1376), "150M": (768, 12, 12, 4, 2048),
         "500M": (1280, 20, 20, 4, 3456)}


def build(size: str):
    import transformers
    d, layers, heads, kv, ff = SIZES[size]
    cfg = transformers.LlamaConfig(hidden_size=d, num_hidden_layers=layers, intermediate_size=ff,
                                   num_attention_heads=heads, num_key_value_heads=kv,
                                   vocab_size=32000)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).eval()


def measure(model, batch: int, prompt: int, new: int, runs: int,
            stat=statistics.median, warmup: int = 1) -> tuple[float, float]:
    """(time to first token, decode tokens/s): the `stat` of `runs` timed runs of a prefill and
    its `new`-step greedy decode loop, after `warmup` untimed runs of the same (the first call
    of a shape selects oneDNN kernels and grows the heap: a one-time cost the estimate, like
    the validation harness, leaves out)."""
    ids = torch.randint(0, 32000, (batch, prompt))
    ttft, decode = [], []
    with torch.no_grad():
        for run in range(warmup + runs):
            start = time.perf_counter()
            out = model(ids, use_cache=True)
            first = time.perf_counter() - start
            cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            start = time.perf_counter()
            for _ in range(new):
                out = model(token, past_key_values=cache, use_cache=True)
                cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            if run >= warmup:                      # warm-up runs are not timed
                ttft.append(first)
                decode.append(time.perf_counter() - start)
    return stat(ttft), batch * new / stat(decode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--prompt", nargs="+", type=int, default=[128, 1024])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed runs first (kernel selection, the heap's growth)")
    parser.add_argument("--calibrate", type=float, default=20.0, help="calibration seconds")
    parser.add_argument("--profile", help="a saved profile JSON instead of calibrating")
    parser.add_argument("--skip-largest", action="store_true", help="leave out the 500M model")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="of the runs: median (a quiet machine), or min (the least "
                             "disturbed run on a shared one, as calibration takes its timings)")
    args = parser.parse_args()
    if args.skip_largest:
        args.sizes = [s for s in args.sizes if s != "500M"]
    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.profile:
        from costmodel.analysis.latency import load_profile
        profile = load_profile(args.profile)
    else:
        from costmodel.api import analyze
        profile = calibrate(args.calibrate, "this-machine", args.threads, analyze)
    print(describe(profile), "\n")
    print(f"measured: the {args.stat} of {args.runs} runs after {args.warmup} untimed\n")
    print("| model | params | batch | prompt | TTFT measured | TTFT estimate [interval] | ratio "
          "| in | tok/s measured | tok/s estimate [interval] | ratio | in |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        model = build(size)
        for batch in args.batch:
            for prompt in args.prompt:
                g = costmodel.analyze_generation(model, prompt_len=prompt,
                                                 new_tokens=args.new_tokens, batch=batch)
                est = g.latency(profile)
                ttft, tps = measure(model, batch, prompt, args.new_tokens, args.runs,
                                    getattr(statistics, args.stat) if args.stat == "median"
                                    else min, args.warmup)
                lo, hi = est.ttft.interval or (est.ttft.seconds,) * 2
                tlo, thi = est.tokens_per_s_interval or (est.tokens_per_s,) * 2
                print(f"| {size} | {g.params / 1e6:.1f}M | {batch} | {prompt} "
                      f"| {ttft * 1e3:.1f} ms | {est.ttft.seconds * 1e3:.1f} ms "
                      f"[{lo * 1e3:.0f}, {hi * 1e3:.0f}] | {ttft / est.ttft.seconds:.2f} "
                      f"| {_inside(ttft, lo, hi)} | {tps:.1f} | {est.tokens_per_s:.1f} "
                      f"[{tlo:.0f}, {thi:.0f}] | {tps / est.tokens_per_s:.2f} "
                      f"| {_inside(tps, tlo, thi)} |", flush=True)


def _inside(value: float, low: float, high: float) -> str:
    return "yes" if low <= value <= high else "no"


if __name__ == "__main__":
    main()
