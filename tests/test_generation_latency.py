"""The latency estimate of a decode step: what it prices."""
from __future__ import annotations

import pytest

import costmodel


def test_decode_step_estimate_prices_cache_updates_and_calls():
    """A LLaMA decode step's estimate: each layer's cache update (torch.cat of keys and of
    values) is a costed kernel, and module calls and free ops are priced."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                                   num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
    model = transformers.LlamaForCausalLM(cfg).eval()
    g = costmodel.analyze_generation(model, prompt_len=8, new_tokens=2)
    step = g.decode(8)
    cats = [n.name for n in step.graph for c in n.calls if c.name == "torch.cat"
            and any(o.shape[-2] == 9 for o in c.call.outputs)]
    assert len(cats) == 2 * 3                                  # keys and values, 3 layers
    est = costmodel.latency.estimate(step, "laptop-cpu")
    by = est.by_name()
    assert all(by[n].kernels >= 1 and by[n].seconds > 0 for n in cats)
    assert est.module_calls > 0 and est.free_ops > 0
    assert est.module_calls_s > 0 and est.free_ops_s > 0
