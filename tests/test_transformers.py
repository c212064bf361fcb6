"""Hugging Face transformers built from configs on the meta device (nothing downloaded).

torch.fx cannot trace them (they have their own HF tracer), so costmodel falls back to its eager
capture. The oracle is PyTorch's FlopCounterMode on the same meta inputs: on meta, SDPA decomposes
into bmm, which it counts, and its causal SDPA counts the full square of scores, the convention
costmodel uses too (README, "Conventions").
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import costmodel
from costmodel.errors import CostmodelError

transformers = pytest.importorskip("transformers")

SMALL_LLAMA = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                   num_attention_heads=8, num_key_value_heads=2, vocab_size=1000)


def build(cls, config):
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        return cls(config).eval()


def oracle_madds(model, inputs: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> int:
    meta = {k: torch.empty(shape, dtype=dtype, device="meta")
            for k, (shape, dtype) in inputs.items()}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**meta)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


def spec(shape, dtype) -> str:
    return "x".join(map(str, shape)) + ":" + str(dtype).removeprefix("torch.")


CASES = {
    "bert-base": (lambda: build(transformers.BertModel, transformers.BertConfig()),
                  {"input_ids": ((1, 128), torch.int64)}),
    "gpt2": (lambda: build(transformers.GPT2Model, transformers.GPT2Config()),
             {"input_ids": ((2, 64), torch.int64)}),
    "llama-gqa": (lambda: build(transformers.LlamaModel, transformers.LlamaConfig(**SMALL_LLAMA)),
                  {"input_ids": ((1, 64), torch.int64)}),
    "vit-base": (lambda: build(transformers.ViTModel, transformers.ViTConfig()),
                 {"pixel_values": ((1, 3, 224, 224), torch.float32)}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_madds_match_flop_counter(name):
    factory, inputs = CASES[name]
    model = factory()
    expected = oracle_madds(model, inputs)
    report = costmodel.analyze(model, kwargs={k: spec(*v) for k, v in inputs.items()})
    assert report.capture == "eager (meta tensors)"   # fx cannot trace HF models; eager runs them
    with pytest.raises(CostmodelError):
        costmodel.analyze(model, kwargs={k: spec(*v) for k, v in inputs.items()}, capture="fx")
    assert report.totals.status == "complete", report.totals.unsupported
    assert report.totals.madds == expected
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert sum(layer.params for layer in report.layers) + report.totals.params_unused == \
        report.totals.params
    assert any(layer.category == "attention" for layer in report.layers)


def test_grouped_query_attention_written_out():
    """LLaMA with 8 query heads sharing 2 key/value heads, at 64 tokens, causal, full square."""
    cfg = transformers.LlamaConfig(**SMALL_LLAMA)
    report = costmodel.analyze(build(transformers.LlamaModel, cfg),
                               kwargs={"input_ids": "1x64:int64"})
    seq, d, heads, kv, hd, ff, layers = 64, 256, 8, 2, 32, 512, 2
    projections = seq * (d * heads * hd + 2 * d * kv * hd + heads * hd * d)   # q, k, v, o
    mlp = seq * 3 * d * ff                                                    # gate, up, down
    attention = heads * seq * seq * hd + heads * seq * seq * hd               # q k^T, p v: every
    assert report.totals.madds == layers * (projections + mlp + attention)    # query head counts
    sdpa = [layer for layer in report.layers if layer.op == "sdpa"]
    assert len(sdpa) == layers
    assert sdpa[0].inputs[:3] == ((1, heads, seq, hd), (1, kv, seq, hd), (1, kv, seq, hd))
    assert sdpa[0].madds == attention
    # FLOPs: 2 per MAdd, plus per score 1 scale + 1 causal mask + 5 softmax
    assert sdpa[0].flops == 2 * attention + heads * seq * seq * (1 + 1 + 5)
    assert sdpa[0].module == "layers.0.self_attn"


def test_causal_attention_counts_the_full_square():
    """GPT-2 at 64 tokens: attention is 12 heads x 64 x 64 scores x 64 dims, twice, per layer;
    half of the scores are masked out, and still counted (FlopCounterMode does the same)."""
    cfg = transformers.GPT2Config(n_layer=1)
    report = costmodel.analyze(build(transformers.GPT2Model, cfg),
                               kwargs={"input_ids": "1x64:int64"})
    (attention,) = [layer for layer in report.layers if layer.category == "attention"]
    assert attention.madds == 2 * 12 * 64 * 64 * 64
    assert report.totals.madds == 64 * (768 * 3 * 768 + 768 * 768 + 2 * 768 * 3072) + \
        attention.madds


def test_a_padding_mask_is_costed_as_the_compile_path_runs_it():
    """HF skips its causal mask when `attention_mask.all()`, unless it sees a trace: the eager
    capture says it is one (torch.compiler.is_compiling()), so HF builds the mask from the
    attention_mask without reading its values. Per layer and token: q and o 256x256, k and v
    256x64 (2 KV heads of 32), the MLP 3x256x512; attention 2 x 8 heads x 64 x 64 x 32."""
    model = build(transformers.LlamaModel, transformers.LlamaConfig(**SMALL_LLAMA))
    report = costmodel.analyze(model, kwargs={"input_ids": "1x64:int64",
                                              "attention_mask": "1x64:int64"}, capture="eager")
    per_layer = 64 * (2 * 256 * 256 + 2 * 256 * 64 + 3 * 256 * 512) + 2 * 8 * 64 * 64 * 32
    assert report.totals.madds == 2 * per_layer


def test_longformer_einsum_over_a_size1_dim_matches_flop_counter():
    """Longformer's sliding-chunk attention multiplies its diagonal mask by einsum
    "bcxd,bcyd->bcxy" with d = 1: an outer product, which torch runs as a broadcast aten.mul
    (0 multiply-adds, as costmodel's element-wise einsums). It used to be counted as a
    contraction: 2*7*4*4 = 224 MAdds above FlopCounterMode / 2 (benchmarks/hf_capture_gaps.py)."""
    import transformers as T
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    cfg = T.LongformerConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64, vocab_size=100, max_position_embeddings=64,
                             attention_window=4, pad_token_id=0)
    model = T.LongformerModel(cfg).eval()
    ids = torch.full((2, 16), 3, dtype=torch.long)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, \
            torch.no_grad():
        model(ids)
    report = costmodel.analyze(model, "2x16:int64")
    assert str(report.totals.status) == "complete"
    assert report.totals.madds == counter.get_total_flops() // 2
