"""Skinny linear layers: the calibrated rows x width table of weight bandwidths, its
interpolation, and its use by the latency estimate, written out as arithmetic."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import costmodel
from costmodel.analysis.latency import PROFILES, DeviceProfile, op_terms
from costmodel.analysis.skinny import bandwidth, key

TABLE = {key(1, 256): 4e9, key(1, 1024): 16e9, key(4, 256): 2e9, key(4, 1024): 8e9}


def test_table_points_and_log_interpolation():
    assert bandwidth(TABLE, 1, 256) == pytest.approx(4e9)
    assert bandwidth(TABLE, 4, 1024) == pytest.approx(8e9)
    # 512 is halfway between 256 and 1024 in log2: the geometric mean of 4 and 16 GB/s
    assert bandwidth(TABLE, 1, 512) == pytest.approx(8e9)
    # 2 rows is halfway between 1 and 4 in log2; 512 halfway too: sqrt(sqrt(4*16) * sqrt(2*8))
    assert bandwidth(TABLE, 2, 512) == pytest.approx(math.sqrt(8e9 * 4e9))
    assert bandwidth(TABLE, 1, 64) == pytest.approx(4e9)        # widths clamp to the grid
    assert bandwidth(TABLE, 1, 8192) == pytest.approx(16e9)
    assert bandwidth(TABLE, 5, 256) is None                     # more rows: the roofline
    assert bandwidth({}, 1, 256) is None


def test_op_terms_reads_linear_weights_at_the_table_bandwidth():
    base = PROFILES["laptop-cpu"]
    prof = DeviceProfile.from_dict({**base.to_dict(), "skinny": TABLE, "in_model_scale": 2.0})
    rows, width, out = 1, 256, 1000
    weights = width * out * 4
    acts = (rows * width + rows * out) * 4
    flops = 2 * rows * width * out
    roof, fixed, bound = op_terms(flops, weights + acts, 1, ("linear",), prof, weights,
                                  (rows, width))
    act_bw = prof.cache_bandwidth_bytes_per_s or prof.bandwidth_bytes_per_s
    assert roof == pytest.approx(weights / 4e9 + 2.0 * acts / act_bw)
    assert fixed == pytest.approx(prof.overhead_s)
    plain = op_terms(flops, weights + acts, 1, ("linear",), prof, weights)[0]
    assert plain == pytest.approx(2.0 * (weights / prof.bandwidth_bytes_per_s + acts / act_bw))


def test_estimate_uses_the_table_for_a_batch1_linear_only():
    base = PROFILES["laptop-cpu"]
    slow = DeviceProfile.from_dict({**base.to_dict(), "skinny": {key(1, 256): 1e6}})
    model = nn.Linear(256, 64).eval()
    est = costmodel.latency.estimate(costmodel.analyze(model, "1x256"), slow)
    assert est.ops[0].seconds >= 256 * 64 * 4 / 1e6          # the weights at 1 MB/s
    big = costmodel.latency.estimate(costmodel.analyze(model, "64x256"), slow)
    assert big.ops[0].seconds < 1e-2                          # 64 rows: past the table
    with pytest.raises(ValueError, match="skinny"):
        DeviceProfile.from_dict({**base.to_dict(), "skinny": {key(1, 256): 0}})
    assert DeviceProfile.from_json(slow.to_json()).skinny == {key(1, 256): 1e6}


def test_measure_returns_the_grid():
    from costmodel.analysis.skinny import ROWS, WIDTHS, measure
    torch.manual_seed(0)
    table = measure(0.05)
    assert set(table) == {key(m, k) for m in ROWS for k in WIDTHS}
    assert all(v > 0 for v in table.values())


def test_decode_step_estimate_prices_cache_updates_calls_and_linears():
    """A LLaMA decode step's estimate: each layer's cache update (torch.cat of keys and of
    values) is a costed kernel, module calls and free ops are priced, and with a skinny table
    every linear (one row) reads its weights at the table's bandwidth."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                                   num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
    model = transformers.LlamaForCausalLM(cfg).eval()
    g = costmodel.analyze_generation(model, prompt_len=8, new_tokens=2)
    step = g.decode(8)
    cats = [n.name for n in step.graph for c in n.calls if c.name == "torch.cat"
            and any(o.shape[-2] == 9 for o in c.call.outputs)]
    assert len(cats) == 2 * 3                                  # keys and values, 3 layers
    table = {key(1, 64): 1e6, key(1, 128): 1e6}
    prof = DeviceProfile.from_dict({**PROFILES["laptop-cpu"].to_dict(), "skinny": table})
    est = costmodel.latency.estimate(step, prof)
    by = est.by_name()
    assert all(by[n].kernels >= 1 and by[n].seconds > 0 for n in cats)
    assert est.module_calls > 0 and est.free_ops > 0
    assert est.module_calls_s > 0 and est.free_ops_s > 0
    linears = [op for op in est.ops if op.category == "linear"]
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n
                 and "norm" not in n) * 4
    assert sum(op.seconds for op in linears) >= params / 1e6   # every weight at 1 MB/s
