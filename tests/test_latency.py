"""Latency estimate: the roofline arithmetic, profiles (JSON, save/load), and calibration."""
from __future__ import annotations

import dataclasses
import json

import pytest
from torch import nn

import costmodel
import costmodel.cli
from costmodel.analysis import calibrate, latency, measure, structure, synthetic
from costmodel.analysis.latency import DeviceProfile

TOY = DeviceProfile("toy", peak_flops=1e9, bandwidth_bytes_per_s=1e8, overhead_s=1e-5,
                    source="test", rates={"depthwise conv": 1e8, "max_pool": 1e7},
                    cache_bytes=1000, cache_bandwidth_bytes_per_s=1e9)


def test_op_seconds_is_roofline_plus_overhead():
    # compute-bound: 2e9 FLOPs / 1e9 = 2 s > 1e6 bytes / 1e8 = 0.01 s
    assert latency.op_seconds(2_000_000_000, 1_000_000, 1, "conv", TOY) == (2 + 1e-5, "compute")
    # memory-bound past the cache: 1e6 bytes / 1e8 B/s
    assert latency.op_seconds(10, 1_000_000, 2, "activation", TOY) == (1e-2 + 2e-5, "memory")
    # fits the 1000-byte cache: 800 bytes / 1e9 B/s, smaller than the overhead
    assert latency.op_seconds(10, 800, 1, "activation", TOY)[0] == pytest.approx(8e-7 + 1e-5)
    assert latency.op_seconds(10, 800, 1, "activation", TOY)[1] == "overhead"


def test_rates_and_overheads_by_kind():
    assert latency.op_seconds(1e8, 0, 0, ("depthwise conv",), TOY)[0] == 1e8 / 1e8
    assert latency.op_seconds(1e8, 0, 0, ("max_pool", "pool"), TOY)[0] == 1e8 / 1e7
    assert latency.op_seconds(1e8, 0, 0, ("avg_pool", "pool"), TOY)[0] == 1e8 / 1e9
    slow = dataclasses.replace(TOY, overheads={"depthwise conv": 4e-5})
    assert latency.op_seconds(0, 0, 2, ("depthwise conv",), slow)[0] == 2 * 4e-5
    assert latency.op_seconds(0, 0, 2, ("conv",), slow)[0] == 2 * TOY.overhead_s


def test_weights_stream_from_memory_activations_from_cache():
    # 600 activation bytes fit the 1000-byte cache (1e9 B/s); 400 weight bytes do not count
    # against it and move at the streaming 1e8 B/s
    seconds, bound = latency.op_seconds(0, 1000, 0, (), TOY, weight_bytes=400)
    assert seconds == pytest.approx(400 / 1e8 + 600 / 1e9) and bound == "memory"


@pytest.mark.parametrize("layer, kinds", [
    (nn.Conv2d(8, 8, 3, padding=1), ("spatial conv", "conv")),
    (nn.Conv2d(8, 8, 1), ("conv",)),
    (nn.Conv2d(8, 8, 3, padding=1, groups=8), ("depthwise conv",)),
    (nn.Conv2d(8, 8, 1, groups=2), ("group conv",)),
    (nn.MaxPool2d(2), ("max_pool", "pool")),
    (nn.BatchNorm2d(8), ("batch_norm", "norm")),
])
def test_op_kinds(layer, kinds):
    g = costmodel.analyze(layer, "1x8x8x8").graph
    (data,) = [d for d in g if structure.kernel_count(d)]
    assert latency.op_kinds(data) == kinds
    params = sum(p.numel() for p in layer.parameters())
    assert latency.weight_bytes(data) == 4 * params


def test_estimate_sums_kernels_and_reads_the_graph():
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(16 * 64, 10))
    report = costmodel.analyze(model, "1x8x8x8")
    est = latency.estimate(report, TOY)
    g = report.graph
    assert [op.name for op in est.ops] == list(structure.kernels(g))   # flatten is a view
    for op in est.ops:
        cost = g.nodes[op.name].cost
        weights = 4 * sum(s.numel for rec in g.nodes[op.name].calls
                          for s in rec.call.inputs() if s.role == "param")
        acts = cost.mac_bytes - weights
        expected = max(cost.flops / TOY.peak_flops,
                       weights / TOY.bandwidth_bytes_per_s
                       + acts / (TOY.cache_bandwidth_bytes_per_s if acts <= TOY.cache_bytes
                                 else TOY.bandwidth_bytes_per_s)) + TOY.overhead_s
        assert op.seconds == pytest.approx(expected)
        assert op.intensity == cost.flops / cost.mac_bytes
    assert est.total_s == pytest.approx(sum(op.seconds for op in est.ops))
    assert est.critical_path_s == pytest.approx(est.total_s)            # a chain
    assert sum(est.by_category().values()) == pytest.approx(est.total_s)
    assert est.to_dict()["ops"][0]["name"] == est.ops[0].name


def test_critical_path_is_shorter_than_total_for_parallel_branches():
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1)

        def forward(self, x):
            return self.a(x) + self.b(x)

    est = latency.estimate(costmodel.analyze(Branches(), "1x8x8x8"), TOY)
    conv = est.by_name()["a"].seconds
    assert est.critical_path_s == pytest.approx(est.total_s - conv)


def test_profile_json_round_trip_and_validation():
    assert DeviceProfile.from_json(TOY.to_json()) == TOY
    data = json.loads(TOY.to_json())
    assert data["rates"] == {"depthwise conv": 1e8, "max_pool": 1e7}
    with pytest.raises(ValueError, match="lacks overhead_s"):
        DeviceProfile.from_dict({"name": "x", "peak_flops": 1, "bandwidth_bytes_per_s": 1})
    with pytest.raises(ValueError, match="peak_flops must be positive"):
        DeviceProfile.from_dict({**data, "peak_flops": 0})
    assert DeviceProfile.from_dict({**data, "unknown_field": 1}) == TOY   # newer files load


def test_shipped_profiles_say_where_they_come_from():
    assert {"laptop-cpu", "server-cpu", "phone-cpu", "a100", "h100"} <= set(latency.PROFILES)
    for p in latency.PROFILES.values():
        assert p.source and p.peak_flops > 0 and p.bandwidth_bytes_per_s > 0
    assert latency.load_profile(None).name == latency.DEFAULT_PROFILE


def test_save_and_load_profiles(tmp_path, monkeypatch):
    monkeypatch.setenv("COSTMODEL_PROFILE_DIR", str(tmp_path))
    path = latency.save_profile(TOY)
    assert path == tmp_path / "toy.json"
    assert latency.load_profile("toy") == TOY
    assert latency.load_profile(str(path)) == TOY
    assert "toy" in latency.available()
    mine = DeviceProfile("h100", 1.0, 1.0, 0.0, "calibrated")   # a saved profile wins by name
    latency.save_profile(mine)
    assert latency.load_profile("h100") == mine
    with pytest.raises(ValueError, match="unknown device profile 'nope'.*laptop-cpu"):
        latency.load_profile("nope")
    with pytest.raises(ValueError, match="does not exist"):
        latency.load_profile(str(tmp_path / "missing.json"))


def test_calibrate_measures_and_saves(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COSTMODEL_PROFILE_DIR", str(tmp_path))
    profile, path = calibrate.calibrate_and_save("here", seconds=0.2, threads=1)
    assert path == tmp_path / "here.json" and latency.load_profile("here") == profile
    assert profile.peak_flops > 1e8 and profile.bandwidth_bytes_per_s > 1e8
    assert 0 < profile.overhead_s < 1e-2
    kinds = {"conv", "spatial conv", "depthwise conv", "group conv", "norm", "activation",
             "max_pool", *calibrate.ACTIVATIONS}
    assert set(profile.rates) == kinds | {"softmax", "layer_norm", "avg_pool"}
    assert all(r > 0 for r in profile.rates.values())
    assert set(profile.overheads) == kinds | {"elementwise", "linear", "sdpa"}
    # shape tables on their full grids, every cell measured or filled, positive
    assert set(profile.tables) == {"conv", "spatial conv", "linear", "matmul", "group conv@2",
                                   "group conv@8", "group conv@32", "spatial group conv@2",
                                   "spatial group conv@8", "spatial group conv@32",
                                   "depthwise conv", "depthwise conv/2", "sdpa"}
    for table in profile.tables.values():
        assert len(table["rates"]) == len(table["rows"])
        assert all(len(r) == len(table["width"]) and min(r) > 0 for r in table["rates"])
    assert [b for b, _ in profile.weight_bandwidths] == sorted(b for b, _ in
                                                                profile.weight_bandwidths)
    assert set(profile.bandwidths) == {"copy"} and profile.bandwidths["copy"] > 1e8
    assert profile.overheads["depthwise conv"] > 0
    assert 0 < profile.module_call_s < 1e-3 and 0 < profile.free_op_s < 1e-3
    # cold conv weights cost something per byte, and less than reading them at 100 MB/s
    assert 0 <= profile.weight_pass_s < 1e-8
    assert 0 <= profile.page_fault_s < 1e-4
    assert profile.interval == (1.0, 1.0) and profile.interval_level == 0   # no blocks: no fit
    assert costmodel.cli.main(["calibrate", "--name", "cli", "--seconds", "0.2",
                               "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "cli.json" in out and (tmp_path / "cli.json").is_file()
    cli = latency.load_profile("cli")          # the CLI fits on synthetic blocks: an interval
    assert cli.interval[0] <= 1 <= cli.interval[1] and cli.interval_level == 0.8
    assert cli.in_model_scale > 0 and cli.overhead_scale > 0 and "interval" in out


def test_relative_fit_recovers_the_scales():
    # rows (dense, light, fixed, measured) made with scales 1.5, 0.8, 2.0 exactly
    xs = ((1.0, 0.3, 0.1), (0.2, 0.1, 0.5), (3.0, 1.0, 0.2), (0.5, 2.0, 1.0), (0.1, 0.1, 0.1))
    rows = [(*x, 1.5 * x[0] + 0.8 * x[1] + 2.0 * x[2]) for x in xs]
    assert measure._relative_fit(rows) == pytest.approx((1.5, 0.8, 2.0))
    # the same column twice cannot be separated: one common scale
    same = [(x, x, 1.3 * 2 * x) for x in (1.0, 2.0, 5.0)]
    assert measure._relative_fit(same) == pytest.approx((1.3, 1.3))


def test_relative_fit_around_a_known_scale():
    # the fixed-cost scale measured on floor blocks (2.0); dense and light fitted around it
    xs = ((1.0, 0.3, 0.1), (0.2, 0.1, 0.5), (3.0, 1.0, 0.2), (0.5, 2.0, 1.0), (0.1, 0.1, 0.1))
    rows = [(*x, 1.5 * x[0] + 0.8 * x[1] + 2.0 * x[2]) for x in xs]
    assert measure._relative_fit(rows, known={2: 2.0}) == pytest.approx((1.5, 0.8, 2.0))
    # a wrong known scale is kept, and the others absorb what they can
    fitted = measure._relative_fit(rows, known={2: 1.0})

    def error(k):
        return sum((sum(ki * xi for ki, xi in zip(k, r[:-1])) / r[-1] - 1) ** 2 for r in rows)
    assert fitted[2] == 1.0 and error(fitted) < error((1.5, 0.8, 1.0))


def test_floor_blocks_shrink_maps_and_tokens():
    assert measure.floor_shape((1, 48, 56, 56)) == (1, 48, 4, 4)
    assert measure.floor_shape((1, 197, 384)) == (1, 4, 384)
    for seed in range(0, measure.BLOCKS, measure.FLOOR_EVERY):
        model, shape = synthetic.synthetic_block(seed)
        report = costmodel.analyze(model, "x".join(map(str, measure.floor_shape(shape))))
        assert not report.unsupported(), seed


def test_synthetic_blocks_are_seeded():
    one, shape = synthetic.synthetic_block(3)
    two, shape2 = synthetic.synthetic_block(3)
    assert shape == shape2 and str(one) == str(two)


def test_synthetic_blocks_cover_every_kind_and_are_costed_completely():
    # the blocks calibration times: transformer and ConvNeXt blocks, grouped 1x1 (ShuffleNet V1)
    # and grouped 3x3 (ResNeXt) convs among them, and every one fully costed (a partial
    # estimate would fit the scales to missing terms)
    kinds = set()
    for seed in range(measure.BLOCKS):
        model, shape = synthetic.synthetic_block(seed)
        report = costmodel.analyze(model, "x".join(map(str, shape)))
        assert not report.unsupported(), seed
        kinds |= {latency.op_kinds(n)[0] for n in report.graph if n.calls}
    assert {"linear", "matmul", "softmax", "layer_norm", "gelu", "group conv",
            "spatial group conv", "depthwise conv"} <= kinds


def test_relative_fit_pulls_towards_one_with_a_ridge():
    xs = [(1.0, 2.0), (2.0, 1.0), (3.0, 3.0)]
    rows = [(*x, 2.0 * x[0] + 2.0 * x[1]) for x in xs]      # the truth: both scales 2
    free = measure._relative_fit(rows)
    pulled = measure._relative_fit(rows, ridge=1.0)
    assert free == pytest.approx((2.0, 2.0))
    assert all(1.0 < k < 2.0 for k in pulled)


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act = nn.Conv2d(4, 4, 1), nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x)).flatten(1)       # flatten: a view, no kernel


def test_terms_module_calls_and_free_ops():
    model = nn.Sequential(Inner(), nn.Linear(64, 2))
    g = costmodel.analyze(model, "1x4x4x4")
    prof = dataclasses.replace(TOY, module_call_s=1e-6, free_op_s=2e-6, overhead_scale=2.0,
                               in_model_scale=3.0, light_scale=0.5, interval=(0.5, 1.5),
                               interval_level=0.8)
    est = latency.estimate(g, prof)
    # leaf calls: conv, act, linear = 3; containers: the root Sequential and Inner ("0") = 2
    assert est.module_calls == 3 + 2 and est.free_ops == 1
    assert est.module_calls_s == pytest.approx(5 * 1e-6 * 2.0)
    assert est.free_ops_s == pytest.approx(2e-6 * 2.0)
    terms = est.terms()
    assert sum(terms.values()) == pytest.approx(est.total_s)
    plain = latency.estimate(costmodel.analyze(model, "1x4x4x4"), TOY)
    # conv and linear are dense (x3.0), ReLU light (x0.5)
    roof = {o.category: o.seconds - o.dispatch_s for o in plain.ops}
    assert terms["compute"] + terms["memory"] == pytest.approx(
        3.0 * (roof["conv"] + roof["linear"]) + 0.5 * roof["activation"])
    assert est.interval() == pytest.approx((0.5 * est.total_s, 1.5 * est.total_s))


def test_conv_weight_pass_is_its_own_unscaled_term():
    # a 3x3 conv 16 -> 32 (weight 32*16*9 floats) then a linear: only the conv pays the pass
    model = nn.Sequential(nn.Conv2d(16, 32, 3, bias=False), nn.Flatten(), nn.Linear(32 * 4, 8))
    g = costmodel.analyze(model, "1x16x4x4")
    prof = dataclasses.replace(TOY, weight_pass_s=1e-9, in_model_scale=2.0, light_scale=2.0)
    est, plain = latency.estimate(g, prof), latency.estimate(g, dataclasses.replace(
        prof, weight_pass_s=0.0))
    passed = 32 * 16 * 9 * 4 * 1e-9                      # bytes x seconds per byte, no scale
    assert est.terms()["weights"] == pytest.approx(passed)
    assert plain.terms()["weights"] == 0
    assert est.total_s - plain.total_s == pytest.approx(passed)
    conv = next(o for o in est.ops if o.category == "conv")
    assert conv.weights_s == pytest.approx(passed)
    assert sum(est.terms().values()) == pytest.approx(est.total_s)
    # the deployed view (ONNX Runtime packs weights once, at load) has no such pass
    assert latency.estimate(g, prof, "fused").terms()["weights"] == 0
    # the block fit treats it as known: rows carry it apart from dense / light / fixed
    rows = measure._time_blocks([(0, measure.floor_shape(synthetic.synthetic_block(0)[1]))],
                                prof, costmodel.analyze, 0.01)
    dense, light, fixed, weights, measured = rows[0]
    block = synthetic.synthetic_block(0)[0]
    shape = "x".join(map(str, measure.floor_shape(synthetic.synthetic_block(0)[1])))
    total = latency.estimate(costmodel.analyze(block, shape), prof).total_s
    assert dense + light + fixed + weights == pytest.approx(total) and measured > 0
    assert weights == pytest.approx(1e-9 * sum(
        m.weight.numel() * 4 for m in block.modules() if isinstance(m, nn.Conv2d)))


def test_new_tensors_past_the_mmap_threshold_pay_their_page_faults():
    # a 1x1 conv 4 -> 8 on 64x64 (out 8*64*64*4 = 131,072 bytes = 32 pages), ReLU in place (no new
    # tensor), then a ReLU out of place (another 32 pages), with the threshold at 100,000 bytes
    model = nn.Sequential(nn.Conv2d(4, 8, 1, bias=False), nn.ReLU(inplace=True), nn.ReLU())
    g = costmodel.analyze(model, "1x4x64x64")
    prof = dataclasses.replace(TOY, page_fault_s=1e-6, mmap_bytes=100_000, in_model_scale=2.0,
                               light_scale=2.0)
    est = latency.estimate(g, prof)
    none = latency.estimate(g, dataclasses.replace(prof, page_fault_s=0.0))
    assert [o.faults_s for o in est.ops] == pytest.approx([32e-6, 0.0, 32e-6])   # no scale
    assert est.terms()["allocation"] == pytest.approx(64e-6)
    assert est.total_s - none.total_s == pytest.approx(64e-6)
    assert sum(est.terms().values()) == pytest.approx(est.total_s)
    # at or below the threshold the allocator reuses its heap: no term
    small = dataclasses.replace(prof, mmap_bytes=131_072)
    assert latency.estimate(g, small).terms()["allocation"] == 0
    # with no threshold every new tensor counts: the conv's 131,072 bytes are 32 whole pages
    assert latency.fresh_pages(next(n for n in g.graph if n.category is not None
                                    and str(n.category) == "conv"), 0) == 32
    # the deployed view (a runtime with its own arena) has none
    assert latency.estimate(g, prof, "fused").terms()["allocation"] == 0


def test_page_fault_cost_is_measured_on_fresh_mappings():
    from costmodel.analysis import rates
    per_page = rates.page_fault_seconds(0.2)
    # a first touch costs something, and less than 100 us per 4 KiB page on any machine
    assert 0 < per_page < 1e-4


def test_shipped_profiles_say_they_are_unmeasured():
    for profile in latency.PROFILES.values():
        assert "not measured" in profile.source and "datasheet" in profile.source


def test_profile_json_keeps_the_new_fields():
    prof = dataclasses.replace(TOY, module_call_s=1e-6, free_op_s=2e-6, in_model_scale=1.4,
                               light_scale=1.1, overhead_scale=1.2, interval=(0.8, 1.3),
                               interval_level=0.8, weight_pass_s=9e-11, page_fault_s=1.4e-6,
                               mmap_bytes=2 ** 24)
    assert DeviceProfile.from_json(prof.to_json()) == prof
    with pytest.raises(ValueError, match="page_fault_s"):
        DeviceProfile.from_dict({**prof.to_dict(), "page_fault_s": -1.0})
    with pytest.raises(ValueError, match="mmap_bytes"):
        DeviceProfile.from_dict({**prof.to_dict(), "mmap_bytes": -1})
    with pytest.raises(ValueError, match="weight_pass_s"):
        DeviceProfile.from_dict({**prof.to_dict(), "weight_pass_s": -1.0})
    with pytest.raises(ValueError, match="interval"):
        DeviceProfile.from_dict({**prof.to_dict(), "interval": [1.2, 1.3]})


def test_analyses_do_not_import_torch():
    import subprocess
    import sys
    code = ("import sys, costmodel.structure, costmodel.guidelines, costmodel.latency, "
            "costmodel.analysis.calibrate, costmodel.render.guidelines; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_rate_table_cells_far_below_both_neighbours_are_measured_again():
    from costmodel.analysis import rates
    grid = [[10.0, 20.0, 30.0, 40.0],
            [10.0, 5.0, 30.0, 40.0],      # (1, 1): 2x below its row neighbours, 4x its column
            [10.0, 20.0, 30.0, 40.0]]
    assert rates.dips(grid) == [(1, 1)]
    # an edge is judged only along its other axis; a slow first width is normal
    assert rates.dips([[1.0, 20.0, 30.0]]) == []
    # the re-measurement keeps the fastest: a cell that stays slow is kept, a disturbed one heals
    calls = []

    def measure(r, w):
        calls.append((r, w))
        first = sum(1 for c in calls if c == (r, w)) <= rates.PASSES
        return 1.0 if (r, w) == (2, 20) and first else float(r * w)

    table = rates._table((1, 2, 3), (10, 20, 30), measure)
    assert table["rates"][1][1] == 40.0
    assert calls.count((2, 20)) == rates.PASSES + 1 and calls.count((1, 10)) == rates.PASSES


def test_heap_tensors_bound_the_faults_of_a_trimmed_heap_outside_the_total():
    # conv 4 -> 16 on 64x64: out 16*64*64*4 = 262,144 bytes = 64 pages, above glibc's initial
    # mmap threshold (128 KiB) and below mmap_bytes: a heap tensor. ReLU in place: none. A
    # pooled 16x32x32 tensor (65,536 bytes) stays under 128 KiB: none. mmap_bytes 200,000
    # makes the conv's output a mapped one instead: in the total, not in the bound.
    model = nn.Sequential(nn.Conv2d(4, 16, 1, bias=False), nn.ReLU(inplace=True),
                          nn.MaxPool2d(2))
    g = costmodel.analyze(model, "1x4x64x64")
    prof = dataclasses.replace(TOY, page_fault_s=1e-6)
    est = latency.estimate(g, prof)
    assert est.heap_pages == 64 and est.heap_faults_s == pytest.approx(64e-6)
    assert est.terms()["allocation"] == 0
    assert est.to_dict()["heap_faults_s_max"] == pytest.approx(64e-6)
    mapped = latency.estimate(g, dataclasses.replace(prof, mmap_bytes=200_000))
    assert mapped.heap_pages == 0 and mapped.terms()["allocation"] == pytest.approx(64e-6)
    assert latency.estimate(g, prof, "fused").heap_faults_s == 0


def test_the_report_names_the_heap_fault_bound_only_when_it_matters():
    from costmodel.render.guidelines import HEAP_NOTE, render_section
    model = nn.Sequential(nn.Conv2d(4, 16, 1, bias=False), nn.ReLU(inplace=True),
                          nn.MaxPool2d(2))
    g = costmodel.analyze(model, "1x4x64x64")
    # 64 heap pages at 1 ms each dwarf the rest: the line shows, with the bound in it
    slow = dataclasses.replace(TOY, page_fault_s=1e-3)
    assert latency.estimate(g, slow).heap_faults_s >= HEAP_NOTE * latency.estimate(g, slow).total_s
    text = render_section(g, slow)
    assert "allocator:" in text and "64 ms" in text and "not in the total" in text
    # no page cost measured: no bound, no line
    assert "allocator:" not in render_section(g, dataclasses.replace(TOY, page_fault_s=0.0))
