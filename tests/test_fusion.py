"""The fused (deployed) view: which nodes fuse, MAC as deployed against MAC per op, the fused
estimate and its profile figures. Every expected number is arithmetic written here."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

import costmodel
from costmodel.analysis import fusion, latency
from costmodel.analysis.latency import DeviceProfile

TOY = DeviceProfile("toy", peak_flops=1e9, bandwidth_bytes_per_s=1e8, overhead_s=1e-5,
                    source="test")


def _members(report):
    return [k.members for k in fusion.fused(report)]


def test_conv_bn_relu_is_one_kernel_with_deployed_mac():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                          nn.ReLU()).eval()
    report = costmodel.analyze(model, "1x3x8x8")
    (k,) = fusion.fused(report)
    assert k.members == ("0", "1", "2") and k.folded == ("1",) and k.category == "conv"
    # deployed: input 3*8*8 + weights 8*3*3*3 + folded bias 8 (the conv had none) + output 8*8*8
    assert k.mac == 3 * 8 * 8 + 8 * 3 * 3 * 3 + 8 + 8 * 8 * 8
    assert k.mac_bytes == 4 * k.mac and k.weight_bytes == 4 * (8 * 3 * 3 * 3 + 8)
    # per op: conv (in + weights + out) + BN (in + out + 4 x 8 statistics/affine) + ReLU (in + out)
    per_op = (192 + 216 + 512) + (512 + 512 + 4 * 8) + (512 + 512)
    assert k.mac_per_op == per_op == report.totals.mac
    # FLOPs: the conv's 2 * 216 * 64, plus ReLU's one per element; the folded BN does nothing
    assert k.flops == 2 * 216 * 64 + 512
    assert fusion.totals(fusion.fused(report))["folded_batch_norms"] == 1


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv2(torch.relu(self.conv1(x))) + x)


def test_residual_add_and_relu_join_the_second_conv():
    report = costmodel.analyze(Residual(), "1x4x6x6")
    first, second = fusion.fused(report)
    assert len(first.members) == 2 and len(second.members) == 3
    act, weights = 4 * 6 * 6, 4 * 4 * 9 + 4          # 144 elements; weights + bias
    assert first.mac == act + weights + act
    # the second conv reads the first's output and, for the add, x: both external
    assert second.mac == act + act + weights + act
    assert first.folded == second.folded == ()


class ShuffleUnit(nn.Module):
    """A ShuffleNet V2 unit (stride 1, reduced): split, branch, concat, channel shuffle."""

    def __init__(self):
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU())

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, self.branch(x2)), dim=1)
        b, c, h, w = out.shape
        out = out.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous()
        return out.view(b, c, h, w)


def test_shufflenet_concat_and_shuffle_are_one_data_movement_kernel():
    report = costmodel.analyze(ShuffleUnit(), "1x4x4x4")
    kernels = fusion.fused(report)
    assert [k.category for k in kernels] == ["conv", "data movement"]
    conv, move = kernels
    half = 2 * 4 * 4
    assert conv.mac == half + (2 * 2 + 2) + half        # x2, weights + bias, output
    # one movement kernel: reads x1 and the branch's output, writes the shuffled tensor once
    assert move.mac == half + half + 2 * half
    assert len(move.members) == 2                         # cat + the shuffle's copy
    assert move.mac < move.mac_per_op


def test_batch_norm_after_a_non_contraction_is_not_folded():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.BatchNorm2d(4), nn.ReLU()).eval()
    report = costmodel.analyze(model, "1x3x4x4")
    assert _members(report) == [("0", "1"), ("2", "3")]
    assert all(k.folded == () for k in fusion.fused(report))


def test_a_shared_output_is_written_and_stops_fusion():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            y = self.conv(x)
            return torch.relu(y), torch.sigmoid(y)

    report = costmodel.analyze(Two(), "1x2x3x3")
    assert len(fusion.fused(report)) == 3
    assert fusion.fused(report)[0].mac == 18 + 6 + 18


def test_fused_estimate_has_one_fixed_cost_per_fused_kernel_and_no_python():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                          nn.ReLU()).eval()
    report = costmodel.analyze(model, "1x3x8x8")
    profile = dataclasses.replace(TOY, module_call_s=1e-3, free_op_s=1e-3)
    eager = latency.estimate(report, profile)
    fused = latency.estimate(report, profile, execution="fused")
    assert fused.execution == "fused" and eager.execution == "eager"
    assert len(eager.ops) == 3 and len(fused.ops) == 1
    flops, nbytes = 2 * 216 * 64 + 512, 4 * (192 + 216 + 8 + 512)
    assert fused.total_s == pytest.approx(max(flops / 1e9, nbytes / 1e8) + 1e-5)
    assert fused.terms()["module calls"] == 0
    assert latency.estimate(report, profile, "fused") is fused     # kept per execution


def test_fused_profile_figures_replace_the_eager_ones_and_round_trip():
    runtime = {"overhead_s": 2e-6, "peak_flops": 2e9, "run_s": 5e-5, "rates": {"conv": 4e9},
               "interval": [0.9, 1.2], "interval_level": 0.8, "source": "onnxruntime test"}
    profile = DeviceProfile.from_dict({**TOY.to_dict(), "fused": runtime})
    assert DeviceProfile.from_json(profile.to_json()) == profile
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                          nn.ReLU()).eval()
    report = costmodel.analyze(model, "1x3x8x8")
    est = latency.estimate(report, profile, "fused")
    flops, nbytes = 2 * 216 * 64 + 512, 4 * (192 + 216 + 8 + 512)
    assert est.total_s == pytest.approx(max(flops / 4e9, nbytes / 1e8) + 2e-6 + 5e-5)
    assert est.interval() == pytest.approx((0.9 * est.total_s, 1.2 * est.total_s))
    assert "fused" not in json.loads(TOY.to_json()) or json.loads(TOY.to_json())["fused"] == {}
    with pytest.raises(ValueError, match="fused.rates"):
        DeviceProfile.from_dict({**TOY.to_dict(), "fused": {"rates": {"conv": -1}}})


def test_unknown_execution_is_refused():
    report = costmodel.analyze(nn.Linear(2, 2), "1x2")
    with pytest.raises(ValueError, match="execution='graph'"):
        latency.estimate(report, TOY, execution="graph")


def test_batch_norm_in_training_mode_is_not_folded():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
    report = costmodel.analyze(model.train(), "2x3x8x8", mode="train")
    assert all(k.folded == () for k in fusion.fused(report))
    report = costmodel.analyze(model.eval(), "2x3x8x8")
    assert [k.folded for k in fusion.fused(report)] == [("1",)]


def test_calibrate_fused_measures_onnx_runtime():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from costmodel.analysis.calibrate_fused import calibrate_fused, describe_fused
    profile = calibrate_fused(TOY, seconds=1.0, threads=1)
    f = profile.fused
    assert f["peak_flops"] > 0 and f["run_s"] >= 0 and "onnxruntime" in f["source"]
    assert set(f["rates"]) == {"conv", "spatial conv", "depthwise conv", "group conv", "max_pool"}
    assert {"conv", "linear", "elementwise", "max_pool"} <= set(f["overheads"])
    assert DeviceProfile.from_json(profile.to_json()) == profile
    assert "fused" in describe_fused(profile) and describe_fused(TOY) == ""
