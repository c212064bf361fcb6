"""Shape-dependent rates of the latency estimate: the rate tables and their interpolation, the
GEMM shape of each kind of contraction, group factors, weight bandwidth by size, per-kind
bandwidths, and the profile JSON that carries them."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
from torch import nn

import costmodel
from costmodel.analysis import latency
from costmodel.analysis.latency import DeviceProfile
from costmodel.analysis.profiles import table_rate

TABLE = {"rows": [100.0, 10000.0], "width": [10.0, 1000.0],
         "rates": [[1e9, 3e9], [5e9, 7e9]]}
HALF = {**TABLE, "rates": [[r / 2 for r in row] for row in TABLE["rates"]]}
TOY = DeviceProfile("toy", peak_flops=1e10, bandwidth_bytes_per_s=1e9, overhead_s=0.0,
                    tables={"conv": TABLE, "spatial conv": TABLE, "linear": TABLE,
                            "matmul": TABLE, "group conv@2": TABLE, "group conv@8": HALF},
                    weight_bandwidths=((1e3, 1e8), (1e5, 3e8)),
                    bandwidths={"copy": 2e8})


def test_table_rate_is_bilinear_in_log_axes_and_clamped():
    assert table_rate(TABLE, 100, 10) == 1e9
    assert table_rate(TABLE, 10000, 1000) == 7e9
    # halfway in log rows (1000) and log width (100): the mean of the four corners
    assert table_rate(TABLE, 1000, 100) == pytest.approx((1e9 + 3e9 + 5e9 + 7e9) / 4)
    # a quarter of the way in log width at the first row
    assert table_rate(TABLE, 100, 10 ** 1.5) == pytest.approx(1.5e9)
    # outside the grid: the edge
    assert table_rate(TABLE, 1, 1) == 1e9 and table_rate(TABLE, 1e9, 1e9) == 7e9


def test_grouped_rates_and_weight_bandwidth_interpolate():
    # between the 2-group and 8-group tables in log groups, clamped outside
    assert TOY.grouped_rate("group conv", 100, 10, 2) == 1e9
    assert TOY.grouped_rate("group conv", 100, 10, 4) == pytest.approx(0.75e9)
    assert TOY.grouped_rate("group conv", 100, 10, 64) == 0.5e9
    assert TOY.grouped_rate("spatial group conv", 100, 10, 4) is None
    assert TOY.weight_bandwidth(1e4) == pytest.approx(2e8)    # halfway in log 1e3..1e5
    assert TOY.weight_bandwidth(10) == 1e8
    assert dataclasses.replace(TOY, weight_bandwidths=()).weight_bandwidth(5) == 1e9


def _node(model, shape, index=0):
    report = costmodel.analyze(model, shape)
    nodes = [n for n in report.graph if n.calls]
    return nodes[index]


def test_op_shape_of_each_contraction():
    conv = _node(nn.Conv2d(16, 64, 3, padding=1), "1x16x28x28")
    # 28*28 positions; GEMM inner = 16*3*3 = 144, out = 64: width sqrt(144 * 64) = 96
    assert latency.op_shape(conv) == (784, 96, 1)
    grouped = _node(nn.Conv2d(64, 64, 1, groups=8), "2x64x14x14")
    assert latency.op_shape(grouped) == (2 * 196, 8, 8)
    assert latency.op_kinds(grouped) == ("group conv",)
    spatial_grouped = _node(nn.Conv2d(64, 64, 3, groups=4), "1x64x10x10")
    assert latency.op_kinds(spatial_grouped) == ("spatial group conv", "group conv")
    linear = _node(nn.Linear(768, 3072), "1x50x768")
    assert latency.op_shape(linear) == (50, 1536, 1)          # sqrt(768 * 3072)

    class Attn(nn.Module):
        def forward(self, q, k):
            return q @ k.transpose(-2, -1)
    scores = _node(Attn(), ["1x12x49x32", "1x12x49x32"], index=1)
    assert latency.op_shape(scores) == (49, 32, 1)


def test_the_estimate_uses_tables_group_tables_and_kind_bandwidths():
    conv = _node(nn.Conv2d(64, 64, 1, groups=8, bias=False), "1x64x100x100")
    flops = conv.cost.flops
    assert flops == 2 * 100 * 100 * 64 * 8
    rate = 5e9 / 2        # the 8-group table at (10000 rows, width 8 -> clamped to 10)
    kinds, shape = latency.op_kinds(conv), latency.op_shape(conv)
    assert latency.op_rate(kinds, TOY, shape) == pytest.approx(rate)
    roof, fixed, bound = latency.op_terms(flops, 0, 1, kinds, TOY, 0, shape)
    assert (roof, fixed, bound) == (pytest.approx(flops / rate), 0.0, "compute")
    # a depthwise conv's table is read by its channels (groups), not its per-group width
    dw = _node(nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False), "1x64x10x10")
    assert latency.op_shape(dw) == (100, 3, 64)
    with_dw = dataclasses.replace(TOY, tables={**TOY.tables, "depthwise conv": TABLE})
    assert latency.op_rate(latency.op_kinds(dw), with_dw, latency.op_shape(dw)) == \
        pytest.approx(table_rate(TABLE, 100, 64))
    # a strided depthwise conv reads its own table ("depthwise conv/2"), by output positions
    strided = _node(nn.Conv2d(64, 64, 3, 2, 1, groups=64, bias=False), "1x64x20x20")
    assert latency.op_kinds(strided)[0] == "depthwise conv/2"
    assert latency.op_shape(strided) == (100, 3, 64)
    both = dataclasses.replace(with_dw, tables={**with_dw.tables, "depthwise conv/2": HALF})
    assert latency.op_rate(latency.op_kinds(strided), both, latency.op_shape(strided)) == \
        pytest.approx(table_rate(HALF, 100, 64))
    assert latency.op_rate(latency.op_kinds(strided), with_dw, latency.op_shape(strided)) == \
        pytest.approx(table_rate(TABLE, 100, 64))      # an older profile: the stride-1 table
    # without a shape the table is not used: the kind's rate, else the peak
    assert latency.op_rate(kinds, TOY) == TOY.peak_flops
    # a copy moves its activations at the kind's bandwidth; weights at their size's bandwidth
    assert latency.op_terms(0, 4e6, 1, ("copy", "data movement"), TOY)[0] == pytest.approx(
        4e6 / 2e8)
    assert latency.op_terms(0, 1e4, 1, ("linear",), TOY, weight_bytes=1e4)[0] == \
        pytest.approx(1e4 / 2e8)


def test_attention_without_causal_mask_reads_the_sdpa_table_by_query_rows_and_keys():
    import torch.nn.functional as F

    class Attn(nn.Module):
        def __init__(self, causal):
            super().__init__()
            self.causal = causal

        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
    step = _node(Attn(False), ["4x8x1x64", "4x8x1000x64", "4x8x1000x64"])
    assert latency.op_kinds(step)[0] == "sdpa"
    assert latency.op_shape(step) == (1, 1000, 1)       # 1 query row over 1,000 keys per head
    sdpa = {"rows": [1.0, 100.0], "width": [100.0, 10000.0], "rates": [[2e9, 4e9], [6e9, 8e9]]}
    with_sdpa = dataclasses.replace(TOY, tables={**TOY.tables, "sdpa": sdpa})
    # at 1 row, halfway in log keys (100 .. 10,000): the mean of 2e9 and 4e9
    kinds, shape = latency.op_kinds(step), latency.op_shape(step)
    assert latency.op_rate(kinds, with_sdpa, shape) == pytest.approx(3e9)
    # 2 products of 4*8 heads x 1 x 1000 x 64 MAdds, plus scaling and the softmax per score
    assert step.cost.madds == 2 * 4 * 8 * 1000 * 64
    roof = latency.op_terms(step.cost.flops, 0, 1, kinds, with_sdpa, 0, shape)[0]
    assert roof == pytest.approx(step.cost.flops / 3e9)
    # causal attention over a square (a prompt) is not read from the table: the peak
    prompt = _node(Attn(True), ["1x8x100x64"] * 3)
    assert latency.op_shape(prompt) is None
    assert latency.op_rate(latency.op_kinds(prompt), with_sdpa, None) == TOY.peak_flops


def test_grouped_query_attention_reads_the_sdpa_table_at_rows_times_the_group():
    """12 query heads over 4 key/value heads (enable_gqa, as transformers' LLaMA decodes): each
    key head serves 3 query heads, the work of 3 query rows over that head; timed alone on the
    development machine (1 thread, batch 4, 1,056 keys) it ran in 1.29 ms, against 2.52 ms with
    the keys repeated to 12 heads, which is what the 1-row cell had charged."""
    import torch.nn.functional as F

    class GQA(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    step = _node(GQA(), ["4x12x1x64", "4x4x1000x64", "4x4x1000x64"])
    assert latency.op_shape(step) == (3, 1000, 1)
    assert step.cost.madds == 2 * 4 * 12 * 1000 * 64     # the FLOPs stay those of 12 heads
    assert latency.gqa_group((4, 12, 1, 64), (4, 4, 1000, 64)) == 3
    assert latency.gqa_group((4, 12, 1, 64), (4, 12, 1000, 64)) == 1
    assert latency.gqa_group((1, 64), (1000, 64)) == 1
    assert latency.gqa_group((12, 1, 64), (4, 1000, 64)) == 1     # 3-D: no heads dimension


def test_inputs_that_enter_the_graph_stream_like_weights():
    """A graph input (or a tensor no graph node made, such as a decode step's KV cache) was not
    just written by the op before: its bytes stream at the weight bandwidth; the output, and
    what earlier ops wrote, move at the cache bandwidth when they fit."""
    class Twice(nn.Module):
        def forward(self, x):
            y = x * 2
            return y * 3
    report = costmodel.analyze(Twice(), "1x256x1024")
    first, second = [n for n in report.graph if n.calls]
    size = 256 * 1024 * 4
    assert latency.cold_bytes(first, report.graph.nodes) == size
    assert latency.cold_bytes(second, report.graph.nodes) == 0
    profile = dataclasses.replace(TOY, weight_bandwidths=((1.0, 1e8),),
                                  cache_bandwidth_bytes_per_s=1e10, cache_bytes=2 ** 30)
    est = latency.estimate(report, profile)
    ops = est.by_name()
    assert ops[first.name].seconds - ops[first.name].dispatch_s == pytest.approx(
        size / 1e8 + size / 1e10)
    assert ops[second.name].seconds - ops[second.name].dispatch_s == pytest.approx(
        2 * size / 1e10)


def test_profile_json_round_trip_and_validation():
    again = DeviceProfile.from_json(TOY.to_json())
    assert again == TOY and again.tables["group conv@8"] == HALF
    data = json.loads(TOY.to_json())
    for key, value, message in (
            ("tables", {"conv": {"rows": [2, 1], "width": [1], "rates": [[1], [1]]}},
             "ascending positive axes"),
            ("tables", {"conv": {"rows": [1]}}, "needs rows, width and rates"),
            ("tables", {"conv": {"rows": [1], "width": [1, 2], "rates": [[1]]}},
             "a positive rate for every"),
            ("weight_bandwidths", [[1, -1]], "bandwidths must be positive"),
            ("bandwidths", {"copy": 0}, "bandwidths must be positive")):
        with pytest.raises(ValueError, match=message):
            DeviceProfile.from_dict({**data, key: value})
    # a profile saved before tables existed still loads, and estimates as before
    old = {k: v for k, v in data.items()
           if k not in ("tables", "weight_bandwidths", "bandwidths")}
    plain = DeviceProfile.from_dict(old)
    assert plain.tables == {} and plain.weight_bandwidth(1e6) == plain.bandwidth_bytes_per_s
    assert math.isclose(latency.op_rate(("conv",), plain, (100, 10, 1)), plain.peak_flops)


def test_unmeasured_large_cells_fill_along_the_row_or_down_the_column():
    from costmodel.analysis.rates import _fill
    grid = [[1.0, 2.0, 3.0], [4.0, 5.0, None], [6.0, None, None]]
    # along the row: the nearest measured cell of the same row
    assert _fill(grid) == [[1.0, 2.0, 3.0], [4.0, 5.0, 5.0], [6.0, 6.0, 6.0]]
    # by column (GEMMs): the nearest measured cell above, the same width
    assert _fill(grid, by_column=True) == [[1.0, 2.0, 3.0], [4.0, 5.0, 3.0], [6.0, 5.0, 3.0]]
    # a column with nothing measured above falls back to the row
    assert _fill([[None, 2.0], [None, 3.0]], by_column=True) == [[2.0, 2.0], [3.0, 3.0]]
    assert grid[1][2] is None                       # the caller's grid is left as it was
