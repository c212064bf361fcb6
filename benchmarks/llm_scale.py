"""LLM scale: a LLaMA-70B-sized decoder built on the meta device, analysed at a long sequence.

Prints the analysis time, the process's peak RSS (VmHWM), and MAdds against the closed form of a
decoder forward pass:

    MAdds = seq * (params of the matmul weights: layers * (q, k, v, o, gate, up, down) + lm_head)
            + layers * heads * seq^2 * head_dim * 2
              (attention scores and weighted sum, full square)

Usage: python benchmarks/llm_scale.py [--layers 80] [--seq 4096] [--head]
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


def llama_70b_config(layers: int):
    from transformers import LlamaConfig
    return LlamaConfig(hidden_size=8192, num_hidden_layers=layers, num_attention_heads=64,
                       num_key_value_heads=8, intermediate_size=28672, vocab_size=32000,
                       max_position_embeddings=4096)


def closed_form(cfg, seq: int, head: bool) -> int:
    """Multiply-adds of a LLaMA forward pass at batch 1, written out from the config."""
    d, ff, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = d // heads
    per_layer_weights = d * d + 2 * d * kv * hd + d * d + 3 * d * ff    # q, k, v, o, gate/up/down
    attention = heads * seq * seq * hd * 2                              # q k^T and p v, every head
    lm_head = d * cfg.vocab_size if head else 0
    return seq * (layers * per_layer_weights + lm_head) + layers * attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=80)
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--head", action="store_true", help="LlamaForCausalLM (with lm_head)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    import torch
    import transformers

    import costmodel

    cfg = llama_70b_config(args.layers)
    start = time.perf_counter()
    with torch.device("meta"):
        cls = transformers.LlamaForCausalLM if args.head else transformers.LlamaModel
        model = cls(cfg).eval()
    built = time.perf_counter() - start
    rss_built = peak_rss_mib()

    start = time.perf_counter()
    report = costmodel.analyze(model, kwargs={"input_ids": f"1x{args.seq}:int64"})
    elapsed = time.perf_counter() - start
    expected = closed_form(cfg, args.seq, args.head)
    params = report.totals.params
    print(f"model        {cls.__name__}, {args.layers} layers, hidden 8192, 64 heads / 8 kv heads, "
          f"ffn 28672, vocab 32000; input 1x{args.seq}")
    print(f"capture      {report.capture} ({report.graph.number_of_nodes()} graph nodes)")
    print(f"build (meta) {built:.2f} s")
    print(f"analyze      {elapsed:.2f} s")
    print(f"peak RSS     {peak_rss_mib():.0f} MiB "
          f"(VmHWM; {rss_built:.0f} MiB after imports and build)")
    print(f"params       {params:,} ({params / 1e9:.2f} B)")
    print(f"MAdds        {report.totals.madds:,} ({report.totals.madds / 1e12:.2f} T), "
          f"status {report.totals.status}")
    print(f"closed form  {expected:,} (seq x matmul weights + full-square attention); "
          f"difference {report.totals.madds - expected:,}")
    embedding = cfg.vocab_size * cfg.hidden_size
    rule = (params - embedding) * args.seq      # the "2 N FLOPs per token" rule, in MAdds
    print(f"rule of thumb  N x seq = {rule:,} MAdds (N = {params - embedding:,} non-embedding "
          f"params; 2N FLOPs per token); costmodel / rule = {report.totals.madds / rule:.4f} "
          f"(the rest is attention, which grows with seq^2, minus the norm weights)")


if __name__ == "__main__":
    main()
