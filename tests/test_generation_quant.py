"""A quantized KV cache, as the model's generation config asks for it
(`cache_implementation="quantized"`, `cache_config`): its bytes as the cache stores them.

fp8 (built into transformers): checked against the real cache's stored tensors after a real run
and written out (1 byte per element, one float32 scale per tensor); its decode MAdds against
FlopCounterMode / 2 of the real step over the real fp8 cache. quanto / hqq (outside libraries,
not installed here): the KIVI-style layout written out as arithmetic.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import costmodel
from costmodel.analysis.generation import GroupQuantizedKV
from costmodel.errors import AnalysisError

transformers = pytest.importorskip("transformers")

LAYERS, KV, HEAD_DIM, BATCH, PROMPT = 2, 2, 16, 2, 9


def build(**cache_config):
    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=LAYERS, num_attention_heads=4,
                                   num_key_value_heads=KV, vocab_size=100)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).eval()
    if cache_config:
        model.generation_config.cache_implementation = "quantized"
        model.generation_config.cache_config = cache_config
    return model


def real_fp8(model, context):
    cache = transformers.QuantizedCache("fp8", config=model.config)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model(torch.randint(0, 100, (BATCH, context)), past_key_values=cache, use_cache=True)
    return cache


def stored_bytes(cache):
    return sum(t.numel() * t.element_size() for layer in cache.layers
               for q in (layer._quantized_keys, layer._quantized_values) for t in q)


def test_fp8_cache_bytes_and_decode_madds():
    model = build(backend="fp8")
    g = costmodel.analyze_generation(model, prompt_len=PROMPT, new_tokens=6, batch=BATCH)
    assert g.status == "complete" and not g.notes
    for c in (1, PROMPT, 14, 30):
        written = LAYERS * 2 * (BATCH * KV * c * HEAD_DIM * 1 + 4)
        assert g.kv_cache_bytes(c) == written == stored_bytes(real_fp8(model, c)), c
        cache = real_fp8(model, c)
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), \
                FlopCounterMode(display=False) as counter, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model(torch.randint(0, 100, (BATCH, 1)), past_key_values=cache, use_cache=True)
        assert g.decode(c).totals.madds == counter.get_total_flops() // 2, c
    # a quarter of the float32 cache, plus the scales
    plain = costmodel.analyze_generation(build(), prompt_len=PROMPT, new_tokens=6, batch=BATCH)
    assert plain.kv_cache_bytes(30) == 4 * (g.kv_cache_bytes(30) - LAYERS * 2 * 4)


def test_quanto_cache_bytes_written_out():
    """4 bits packed two per byte, a float32 scale and zero-point per 32 elements, and a
    full-precision residual of up to 7 tokens (flushed into the quantized part at the 8th)."""
    model = build(backend="quanto", nbits=4, q_group_size=32, residual_length=8)
    g = costmodel.analyze_generation(model, prompt_len=PROMPT, new_tokens=20, batch=BATCH)
    assert g.status == "partial" and "not costed" in g.notes[0]
    per_token = BATCH * KV * HEAD_DIM                          # 64 elements per token
    for c, residual in ((PROMPT, 0), (PROMPT + 1, 1), (PROMPT + 7, 7), (PROMPT + 8, 0),
                        (PROMPT + 19, 3)):
        quantized = (c - residual) * per_token
        one = quantized // 2 + 2 * (quantized // 32) * 4 + residual * per_token * 4
        assert g.kv_cache_bytes(c) == LAYERS * 2 * one, c
        assert g.per_token[c - PROMPT].kv_cache_bytes == LAYERS * 2 * one
    # MAdds are those of the same step over a float32 cache (the attention reads it dequantized)
    plain = costmodel.analyze_generation(build(), prompt_len=PROMPT, new_tokens=20, batch=BATCH)
    assert g.decode(15).totals.madds == plain.decode(15).totals.madds


def test_group_quantized_defaults_and_rounding():
    form = GroupQuantizedKV(layers=1, per_token=3, itemsize=2, nbits=3, group=4, residual=128)
    # 5 tokens x 3 elements = 15 quantized: 45 bits -> 6 bytes; 4 groups x (scale + zero) x 2
    assert form(5, 5) == 2 * (6 + 4 * 2 * 2)
    assert GroupQuantizedKV(1, 1, 2).nbits == 4 and GroupQuantizedKV(1, 1, 2).residual == 128


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(AnalysisError, match="backend"):
        costmodel.analyze_generation(build(backend="int3"), prompt_len=4, new_tokens=2)
