"""G1-G4 diagnostics: the paper's formulas as arithmetic, and the paper's verdicts on ShuffleNet
V2 (clean), ShuffleNet V1 (G2) and MobileNet V2 (G1 bottlenecks, G4 element-wise adds)."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

import costmodel
from costmodel import guidelines as gl
from costmodel.core.vocab import Code, Severity

from conftest import example


@pytest.fixture(scope="module")
def reports():
    out = {}
    for name in ("shufflenet_v2", "shufflenet_v1", "mobilenet_v2"):
        with torch.device("meta"):
            model = example(name).build().eval()
        out[name] = costmodel.analyze(model, "1x3x224x224")
    return out


def codes(found) -> set[str]:
    return {str(d.code) for d in found if d.severity is Severity.WARNING}


@pytest.mark.parametrize("c1, c2, hw", [(16, 96, 56), (96, 24, 28), (64, 64, 14), (24, 240, 7)])
def test_g1_excess_is_mac_minus_the_paper_bound(c1, c2, hw):
    """1x1 conv: MAC = hw(c1 + c2) + c1c2 and MAC - (2 sqrt(hw B) + B/hw) = excess, B = hw c1 c2."""
    report = costmodel.analyze(nn.Conv2d(c1, c2, 1, bias=False), f"1x{c1}x{hw}x{hw}")
    mac = report.totals.mac
    assert mac == hw * hw * (c1 + c2) + c1 * c2
    B = hw * hw * c1 * c2
    bound = 2 * math.sqrt(hw * hw * B) + B / (hw * hw)
    assert gl.g1_excess(hw * hw * c1, hw * hw * c2) == pytest.approx(mac - bound)
    found = gl.g1(report, gl.Thresholds(g1_excess=0.0, g1_min_share=0.0))
    assert [d.quantity["excess"] for d in found] == [round(mac - bound)]


def test_g1_strided_conv_is_balanced_at_four_times_the_channels():
    """Stride 2 quarters the map: in = 4 hw c1, out = hw c2, balanced when c2 = 4 c1."""
    balanced = costmodel.analyze(nn.Conv2d(16, 64, 3, 2, 1), "1x16x32x32")
    doubled = costmodel.analyze(nn.Conv2d(16, 32, 3, 2, 1), "1x16x32x32")
    loose = gl.Thresholds(g1_excess=0.0, g1_min_share=0.0)
    assert [d.quantity["excess"] for d in gl.g1(balanced, loose)] == [0]
    assert [d.quantity["excess"] for d in gl.g1(doubled, loose)] == [
        round((math.sqrt(16 * 32 * 32) - math.sqrt(32 * 16 * 16)) ** 2)]


@pytest.mark.parametrize("g", [2, 3, 4, 8])
def test_g2_overhead_is_mac_above_a_dense_conv_of_equal_madds(g):
    """Paper: MAC = hw c1 + B g / c1 + B / hw at fixed B, c1: the dense conv with the same input
    and MAdds has c2 / g outputs, and the difference is hw c2 (1 - 1/g)."""
    c1, c2, hw = 48, 96, 14
    group = costmodel.analyze(nn.Conv2d(c1, c2, 1, groups=g, bias=False), f"1x{c1}x{hw}x{hw}")
    dense = costmodel.analyze(nn.Conv2d(c1, c2 // g, 1, bias=False), f"1x{c1}x{hw}x{hw}")
    assert group.totals.madds == dense.totals.madds
    B = hw * hw * c1 * c2 // g
    assert group.totals.mac == hw * hw * c1 + B * g // c1 + B // (hw * hw)
    overhead = group.totals.mac - dense.totals.mac
    assert overhead == hw * hw * c2 * (g - 1) // g
    found = gl.g2(group, gl.Thresholds(g2_overhead=0.0))
    assert [(d.quantity["groups"], d.quantity["overhead"]) for d in found] == [(g, overhead)]


def test_shufflenet_v2_is_clean(reports):
    assert codes(gl.check(reports["shufflenet_v2"])) == set()


def test_shufflenet_v1_breaks_g2(reports):
    found = gl.check(reports["shufflenet_v1"])
    g2 = [d for d in found if d.code is Code.G2_GROUP_CONV]
    group_convs = {d.name for d in reports["shufflenet_v1"].graph
                   if str(d.category) == "group conv"}
    # 16 units x 2 grouped 1x1 convs, less the first (ungrouped: 24 input channels)
    assert len(group_convs) == 16 * 2 - 1
    # all flagged but stage 4's stride-1 reduce convs (960 -> 240 on 7x7: weights dominate their
    # MAC, so the output overhead 49 * 240 * 2/3 is 6% of it, under the 10% threshold)
    assert {n for n in group_convs if n not in {d.node for d in g2}} == {
        f"stages_2_{i}_reduce_0" for i in (1, 2, 3)}
    assert all(d.quantity["groups"] == 3 for d in g2)
    assert {"G201", "G401", "G402"} <= codes(found)


def test_mobilenet_v2_breaks_g1_and_g4(reports):
    found = gl.check(reports["mobilenet_v2"])
    assert {"G101", "G401", "G402"} <= codes(found) and "G201" not in codes(found)
    g1 = [d for d in found if d.code is Code.G1_CHANNEL_RATIO]
    # the expansion 1x1 convs (c -> 6c) of the inverted bottlenecks
    assert any(d.quantity["c2"] == 6 * d.quantity["c1"] for d in g1)
    adds = next(d for d in found if d.code is Code.G4_RESIDUAL_ADDS)
    assert adds.quantity["adds"] == 10            # the stride-1 blocks with equal in/out widths


def test_g4_needs_mac_share_far_above_flops_share():
    """A model of element-wise ops only has nothing cheaper to move its work to."""
    report = costmodel.analyze(nn.Sequential(nn.ReLU(), nn.Sigmoid()), "1x64")
    s = gl.g4_shares(report)
    assert s["mac"] == s["flops"] == 1.0
    assert gl.g4(report) == []
    assert [d.code for d in gl.g4(report, gl.Thresholds(g4_over_flops=1.0))] == [
        Code.G4_ELEMENTWISE_SHARE]


def test_g4_shares_are_shares(reports):
    s = gl.g4_shares(reports["mobilenet_v2"])
    assert 0 < s["flops"] < s["mac"] < 1 and 0 < s["time"] < 1
    assert gl.g4_shares(reports["shufflenet_v2"])["adds"] == 0


def test_thresholds_are_configurable(reports):
    v2 = reports["shufflenet_v2"]
    strict = gl.Thresholds(g4_mac_share=0.0, g1_excess=0.0, g1_min_share=0.0)
    assert {"G101", "G401"} <= codes(gl.check(v2, strict))
    lax = gl.Thresholds(g1_excess=1.0, g2_overhead=1.0, g4_mac_share=1.0, g4_add_share=1.0)
    assert codes(gl.check(reports["mobilenet_v2"], lax)) == set()
    with pytest.raises(dataclasses.FrozenInstanceError):
        lax.g1_excess = 0.5


def test_g3_flags_fragmented_blocks():
    g3 = example("guidelines")
    for name, flagged in (("2-fragment-parallel", False), ("4-fragment-parallel", True)):
        model = g3.build_g3(name, channels=16, repeats=2)
        report = costmodel.analyze(model, "1x16x8x8")
        found = gl.g3(report, gl.Thresholds(g3_branches=3))
        assert (Code.G3_FRAGMENTED_BLOCK in {d.code for d in found}) is flagged
        assert (Code.G3_PARALLEL_BRANCHES in {d.code for d in found}) is flagged   # 2.5 vs 1.5


def test_report_guidelines_is_lazy_and_serialisable(reports):
    report = reports["mobilenet_v2"]
    assert "guidelines" not in vars(report)          # not computed by analyze()
    found = report.guidelines
    assert report.guidelines is found                # computed once
    assert [d.code for d in found] == [d.code for d in gl.check(report.graph)]
    data = json.loads(json.dumps([d.to_dict() for d in found]))
    assert data[0]["code"] == "G101" and data[0]["suggestion"] and data[0]["quantity"]["c1"] == 16


def test_codes_are_new_and_stable():
    assert [str(c) for c in Code][:7] == [f"CM00{i}" for i in range(1, 8)]
    assert {str(c) for c in Code} >= {"G101", "G201", "G301", "G302", "G401", "G402"}
