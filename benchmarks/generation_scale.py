"""Generation at scale: analyze_generation on a LLaMA-70B-shaped config (meta weights), 32k-token
prompt and 1,000 new tokens. The issue's budget: under 2 s and under 2 GiB.

Prints the time of analyze_generation + per_token + totals (after the imports), the process's
peak RSS (VmHWM), the number of graphs captured, and the decode MAdds of the first and last step
against the closed form written out from the config:

    decode MAdds(c) = layers * (q, k, v, o, gate, up, down weights) + lm_head
                      + layers * heads * (c + 1) * head_dim * 2     (the new token against c + 1
                                                                      keys, scores and values)

Usage: python benchmarks/generation_scale.py [--prompt 32768] [--new-tokens 1000] [--layers 80]
"""
from __future__ import annotations

import argparse
import time
import warnings


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", type=int, default=32768)
    parser.add_argument("--new-tokens", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=80)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    import torch
    import transformers

    import costmodel

    cfg = transformers.LlamaConfig(hidden_size=8192, num_hidden_layers=args.layers,
                                   num_attention_heads=64, num_key_value_heads=8,
                                   intermediate_size=28672, vocab_size=128256,
                                   max_position_embeddings=131072)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(cfg).eval()
    start = time.perf_counter()
    g = costmodel.analyze_generation(model, prompt_len=args.prompt, new_tokens=args.new_tokens,
                                     dtype="bfloat16")
    rows, totals = g.per_token, g.totals
    seconds = time.perf_counter() - start
    d, ff, layers, heads, kv = 8192, 28672, args.layers, 64, 8
    hd = d // heads
    weights = layers * (2 * d * d + 2 * d * kv * hd + 3 * d * ff) + d * cfg.vocab_size

    def closed(c: int) -> int:
        return weights + layers * heads * (c + 1) * hd * 2

    first, last = rows[0], rows[-1]
    print(f"model      LLaMA-70B shape, {layers} layers, params {g.params:,}")
    print(f"prompt     {args.prompt}, new tokens {args.new_tokens}, bfloat16")
    print(f"time       {seconds:.2f} s   (analyze_generation + per_token + totals)")
    print(f"peak RSS   {peak_rss_mib():.0f} MiB")
    print(f"captures   {1 + len(g._reports)} (prefill + decode steps)")
    print(f"prefill    {g.prefill.totals.madds:,} MAdds")
    print(f"decode[0]  {first.madds:,} MAdds at context {first.context}; closed form "
          f"{closed(first.context):,}")
    print(f"decode[-1] {last.madds:,} MAdds at context {last.context}; closed form "
          f"{closed(last.context):,}")
    print(f"KV cache   {g.kv_cache_bytes(g.last_context + 1) / 2**30:.2f} GiB at "
          f"{g.last_context + 1} tokens (2 x {layers} x {kv} x {hd} x 2 B per token = "
          f"{2 * layers * kv * hd * 2 * (g.last_context + 1) / 2**30:.2f} GiB)")
    print(f"totals     {totals['madds']:,} MAdds, {totals['mac_bytes'] / 2**40:.2f} TiB MAC")


if __name__ == "__main__":
    main()
