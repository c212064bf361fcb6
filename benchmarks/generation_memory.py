"""Generation memory: costmodel's peak live bytes per phase against torch.profiler's on CPU.

For LLaMA-style models (random weights, float32, eval, no_grad), run the real prefill and one
real decode step under `torch.profiler.profile(profile_memory=True)` and take the peak of the
running sum of every event's self memory (allocations minus frees, in start order): the bytes
the step allocated above what existed before it (the weights, and for the decode step the cache
it starts from). Compare with costmodel's per-phase figures from `peak_memory_bytes`:

- prefill: KV cache after the prompt + peak live activations (the cache is written during it);
- decode: peak live activations (DynamicCache's concatenation makes the grown cache a new
  tensor in the step, so it is among the activations).

    python benchmarks/generation_memory.py [--prompt 128 512] [--batch 1 4]
"""
from __future__ import annotations

import argparse
import warnings

import torch
from generation_latency import build  # the same LLaMA-style models (benchmarks/)
from torch.profiler import ProfilerActivity, profile

import costmodel

#: the sizes measured here (generation_latency.SIZES has their shapes)
SIZES = ("10M", "50M")


def profiled_peak(fn) -> tuple[int, object]:
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    parser.add_argument("--prompt", nargs="+", type=int, default=[128, 512])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 4])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print("| model | batch | prompt | phase | costmodel | torch.profiler | error |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        model = build(size)
        for batch in args.batch:
            for prompt in args.prompt:
                g = costmodel.analyze_generation(model, prompt_len=prompt, new_tokens=2,
                                                 batch=batch)
                ids = torch.randint(0, 32000, (batch, prompt))
                pre, out = profiled_peak(lambda m=model, i=ids: m(i, use_cache=True))
                step, _ = profiled_peak(lambda m=model, i=ids, o=out: m(
                    i[:, :1], use_cache=True, past_key_values=o.past_key_values))
                mem = g.peak_memory_bytes
                ours = {"prefill": mem["prefill"]["kv_cache"] + mem["prefill"]["activations"],
                        "decode": mem["decode"]["activations"]}
                for phase, real in (("prefill", pre), ("decode", step)):
                    mine = ours[phase]
                    print(f"| {size} | {batch} | {prompt} | {phase} | {mine / 2**20:.2f} MiB "
                          f"| {real / 2**20:.2f} MiB | {100 * (mine - real) / real:+.0f}% |",
                          flush=True)


if __name__ == "__main__":
    main()
