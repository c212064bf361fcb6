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
                                  linear=(rows, width))
    act_bw = prof.cache_bandwidth_bytes_per_s or prof.bandwidth_bytes_per_s
    assert roof == pytest.approx(2.0 * (weights / 4e9 + acts / act_bw))
    plain = op_terms(flops, weights + acts, 1, ("linear",), prof, weights)[0]
    assert plain == pytest.approx(2.0 * (weights / prof.weight_bandwidth(weights)
                                         + acts / act_bw))
    assert plain != roof
    # with a slow GEMM table, a skinny linear is still its stream: the table's compute term at
    # 1-16 rows measures the same weights and is not added on top
    crawl = {"rows": [1.0, 4096.0], "width": [64.0, 4096.0], "rates": [[1e6, 1e6], [1e6, 1e6]]}
    slow = DeviceProfile.from_dict({**prof.to_dict(), "tables": {"linear": crawl}})
    assert op_terms(flops, weights + acts, 1, ("linear",), slow, weights, (rows, 1000, 1),
                    (rows, width))[0] == pytest.approx(roof)
    assert op_terms(flops, weights + acts, 1, ("linear",), slow, weights, (rows, 1000, 1))[0] \
        == pytest.approx(2.0 * flops / 1e6)


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


def test_monotone_in_rows():
    """A cell slower than one with more rows at its width takes that cell's value."""
    from costmodel.analysis.skinny import monotone
    table = {key(1, 256): 2e9, key(4, 256): 3e9, key(16, 256): 1e9,
             key(1, 512): 5e9, key(4, 512): 4e9, key(16, 512): 4.5e9}
    assert monotone(table) == {key(1, 256): 3e9, key(4, 256): 3e9, key(16, 256): 1e9,
                               key(1, 512): 5e9, key(4, 512): 4.5e9, key(16, 512): 4.5e9}
