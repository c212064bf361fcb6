"""The eager capture (the default): models are analysed by running their real forward on meta
tensors, including those torch.fx cannot trace, with the same formulas, the same graph attributes
and module attribution as the torch.fx capture.
"""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import costmodel
from costmodel.errors import AnalysisError, CostmodelError

EAGER = "eager (meta tensors)"


class ShapeFlow(nn.Module):
    """Python control flow on shapes, a loop over a size, x[i] = v and a non-tensor output."""

    def __init__(self):
        super().__init__()
        self.wide = nn.Linear(16, 32)
        self.narrow = nn.Linear(4, 32)
        self.block = nn.Sequential(nn.Linear(32, 32), nn.ReLU())

    def forward(self, x):
        if x.shape[-1] > 10:
            y = self.wide(x)
        else:
            y = self.narrow(x)
        for _ in range(x.size(0)):
            y = y + self.block(y)
        y[:, :2] = 0
        return {"out": y, "rows": x.size(0)}


def test_shape_control_flow_is_followed_and_counts_the_path_taken():
    with pytest.raises(CostmodelError) as refused:          # torch.fx cannot, and names the line
        costmodel.analyze(ShapeFlow(), "3x16", capture="fx")
    assert re.search(r"test_fallback.py:\d+ in forward: if x.shape\[-1\] > 10", str(refused.value))
    report = costmodel.analyze(ShapeFlow(), "3x16")
    assert report.capture == EAGER
    assert not [d for d in report.diagnostics if d.code == "CM008"]
    # wide: 3 rows x 16 x 32; the block runs x.size(0) = 3 times: 3 x (3 x 32 x 32)
    assert report.totals.madds == 3 * 16 * 32 + 3 * (3 * 32 * 32)
    # FLOPs: 2 per MAdd + bias adds (3x32 per linear) + 3 ReLU + 3 adds of 3x32 each
    assert report.totals.flops == 2 * report.totals.madds + 4 * 3 * 32 + 3 * 3 * 32 + 3 * 3 * 32
    assert report.totals.params_unused == 4 * 32 + 32      # `narrow` never ran
    assert report.totals.status == "complete"
    modules = [layer.module for layer in report.layers if layer.madds]
    assert modules == ["wide", "block.0", "block.0", "block.0"]
    assert [layer.module for layer in report.layers if layer.target == "ReLU"] == ["block.1"] * 3
    (setitem,) = [layer for layer in report.layers if layer.target == "Tensor.__setitem__"]
    assert setitem.mac == 3 * 2                           # writes the 3x2 region, reads a scalar


def test_data_edges_follow_tensor_identity():
    g = costmodel.analyze(ShapeFlow(), "3x16").graph
    assert list(g.successors("x")) == ["wide"]
    assert set(g.predecessors("add")) == {"wide", "block_1"}
    assert set(g.predecessors("block_0_1")) == {"add"}       # the 2nd loop reads the 1st sum
    assert list(g.predecessors("output")) == ["setitem"]     # x[i] = v wrote y last


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.mean((2, 3)))


def test_graph_has_the_same_node_records_as_the_fx_graph():
    fx = costmodel.analyze(Plain(), "1x3x8x8", capture="fx")
    eager = costmodel.analyze(Plain(), "1x3x8x8")
    assert eager.capture == EAGER and fx.capture == "torch.fx"
    assert {type(node) for node in fx.graph} == {type(node) for node in eager.graph}
    for report in (fx, eager):   # both captures record which output each input is
        for node in report.graph:
            assert len(node.sources) == len(node.inputs)
    kinds = {node.name: node.kind for node in eager.graph}
    assert kinds == {"x": "placeholder", "conv": "call_module", "bn": "call_module",
                     "relu": "call_function", "mean": "call_method", "fc": "call_module",
                     "output": "output"}
    assert ([(layer.name, layer.cost) for layer in eager.layers]
            == [(layer.name, layer.cost) for layer in fx.layers])


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "vit_b_16", "swin_t",
                                  "inception_v3", "shufflenet_v2_x1_0"])
def test_eager_capture_equals_fx_on_torchvision(name, meta_builder):
    torchvision = pytest.importorskip("torchvision")
    model = meta_builder(torchvision.models.get_model, name=name)
    size = 299 if name == "inception_v3" else 224
    fx = costmodel.analyze(model, f"1x3x{size}x{size}", capture="fx")
    eager = costmodel.analyze(model, f"1x3x{size}x{size}")
    assert eager.capture == EAGER and fx.capture == "torch.fx"
    assert eager.totals == fx.totals
    assert {r.key: r.cost for r in eager.by_module(depth=2)} == {
        r.key: r.cost for r in fx.by_module(depth=2)}


def test_rows_sum_to_totals_with_tied_weights():
    class TiedBranchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(40, 8)
            self.head = nn.Linear(8, 40, bias=False)
            self.head.weight = self.embed.weight

        def forward(self, ids):
            x = self.embed(ids)
            if ids.shape[1] > 4:              # fx cannot trace this
                x = x * 2
            return self.head(x)

    report = costmodel.analyze(TiedBranchy(), "2x6:int64")
    assert report.capture == EAGER
    assert report.totals.params == 40 * 8
    assert sum(layer.params for layer in report.layers) == report.totals.params
    assert report.totals.madds == 2 * 6 * 8 * 40


def test_python_numbers_turned_into_tensors_can_be_read_back():
    """torchvision's detection transform does `torch.tensor(image.shape[-2:])` then `.item()`."""
    class Resize(nn.Module):
        def forward(self, x):
            size = torch.tensor(x.shape[-2:])
            scale = (32 / torch.min(size).to(torch.float32)).item()
            return nn.functional.interpolate(x, scale_factor=scale, mode="bilinear")

    report = costmodel.analyze(Resize(), "1x3x16x24")
    assert report.capture == EAGER
    (resample,) = [layer for layer in report.layers if layer.op == "interpolate"]
    assert resample.outputs == ((1, 3, 32, 48),)
    assert resample.flops == 7 * 3 * 32 * 48


def test_value_dependent_branch_names_the_line():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            x = self.fc(x)
            if x.sum() > 0:
                return x
            return -x

    with pytest.raises(AnalysisError) as info:
        costmodel.analyze(Branchy(), "2x4")
    message = str(info.value)
    assert "\n" not in message
    assert re.search(r"test_fallback.py:\d+ in forward: if x.sum\(\) > 0", message)
    assert "reads a tensor's value" in message


class Masked(nn.Module):
    """Keeps the rows whose score passes a threshold, then at most `top` of them."""

    def __init__(self, top: int):
        super().__init__()
        self.score = nn.Linear(8, 1)
        self.head = nn.Linear(8, 16)
        self.top = top

    def forward(self, x):
        scores = self.score(x).squeeze(-1)
        kept = x[scores > 0][: self.top]
        return self.head(kept)


def test_data_dependent_sizes_take_the_upper_bound_and_are_marked():
    report = costmodel.analyze(Masked(top=5), "12x8")
    assert report.capture == EAGER
    # every row passes the mask (12), then the model's own slice keeps 5
    assert report.totals.madds == 12 * 8 * 1 + 5 * 8 * 16
    sources = [d for d in report.diagnostics if d.code == "CM009" and d.severity == "warning"
               and d.node]
    assert len(sources) == 1 and "boolean mask" in sources[0].message
    assert "upper bound" in sources[0].message and "12x8" in sources[0].message
    (cap,) = [d for d in report.diagnostics if d.code == "CM009" and "keeps 5 of" in d.message]
    assert "keeps 5 of the data-dependent candidates (up to 12)" in cap.message
    flags = {node.name: node.data_dependent for node in report.graph}
    assert flags["head"] and flags[sources[0].node]
    assert not flags["score"] and not flags["x"]
    # a slice bigger than the data does not cap it
    assert costmodel.analyze(Masked(top=50), "12x8").totals.madds == 12 * 8 + 12 * 8 * 16


def test_nothing_captures_names_both_failures():
    class Bad(nn.Module):
        def forward(self, x):
            return x.view(5, -1)          # 2x4 cannot be viewed as 5 rows

    with pytest.raises(costmodel.errors.CostmodelError) as info:
        costmodel.analyze(Bad(), "2x4")
    assert "\n" not in str(info.value) and "view" in str(info.value)


def test_stack_inserts_a_dimension():
    """torch.stack once shared torch.cat's shape rule (a 2x3 pair came out 4x3)."""
    class Stack(nn.Module):
        def forward(self, a, b):
            return torch.stack((a, b), dim=1)

    (layer,) = costmodel.analyze(Stack(), "2x3", "2x3").layers
    assert layer.outputs == ((2, 2, 3),)
    assert layer.mac == 2 * (2 * 3) + 2 * 2 * 3


def test_a_cpu_constant_meets_a_meta_activation():
    """`x + torch.tensor([...])`: the constant is a real CPU tensor (code may read it back), the
    activation is meta; the op runs on meta and is counted like any other."""
    class AddConst(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x) + torch.tensor([1.0, 2.0])

    report = costmodel.analyze(AddConst(), "3x2")
    assert report.capture == EAGER and report.totals.status == "complete"
    add = next(layer for layer in report.layers if layer.target == "Tensor.add")
    assert add.flops == 3 * 2 and add.mac == 3 * 2 + 2 + 3 * 2   # x, the constant, the output
