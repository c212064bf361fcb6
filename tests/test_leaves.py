"""capture/leaves.py: the torch.nn layers the eager capture runs without their forward give the
same graph, records and report as their forward run under the recorder."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import costmodel
from costmodel.capture import leaves

_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def _dump(report) -> list[str]:
    """The report's JSON, then every graph node's fields (records included) and the edges."""
    rows = [report.to_json()]
    for node in report.graph:
        fields = {k: getattr(node, k) for k in node.__slots__}
        fields["calls"] = [(rec.name, rec.supported, [n for _, n in rec.params], rec.call.op,
                            rec.call.tensors, rec.call.outputs, rec.call.attrs,
                            sorted(rec.call.flags)) for rec in node.calls]
        rows.append(_ADDRESS.sub("", repr(fields)))
    rows.append(repr(list(report.graph.dag.edges)))
    return rows


def _both(monkeypatch, model: nn.Module, *inputs, **options) -> tuple[list[str], list[str]]:
    direct = _dump(costmodel.analyze(model, *inputs, **options))
    with monkeypatch.context() as patch:
        patch.setattr(leaves, "active", lambda: {})
        full = _dump(costmodel.analyze(model, *inputs, **options))
    return direct, full


LAYERS = {
    "conv": lambda: nn.Conv2d(4, 8, 3, padding=1),
    "conv_strided_nobias": lambda: nn.Conv2d(4, 8, (3, 1), stride=(2, 1), padding=(1, 0),
                                             bias=False),
    "conv_depthwise_dilated": lambda: nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4),
    "conv_same": lambda: nn.Conv2d(4, 4, 3, padding="same"),
    "conv_reflect": lambda: nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"),
    "bn": lambda: nn.BatchNorm2d(4),
    "bn_plain": lambda: nn.BatchNorm2d(4, affine=False, momentum=None),
    "bn_batch_stats": lambda: nn.BatchNorm2d(4, track_running_stats=False),
    "relu": lambda: nn.ReLU(),
    "relu_inplace": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "hardtanh": lambda: nn.Hardtanh(-2.0, 3.0),
    "hardswish": lambda: nn.Hardswish(),
    "hardsigmoid": lambda: nn.Hardsigmoid(inplace=True),
    "silu": lambda: nn.SiLU(),
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "sigmoid": lambda: nn.Sigmoid(),
    "dropout": lambda: nn.Dropout(0.2),
    "tanh": lambda: nn.Tanh(),
    "pool": lambda: nn.AdaptiveAvgPool2d((3, 2)),
    "flatten_last": lambda: nn.Flatten(2),
    "layer_norm": lambda: nn.LayerNorm(8),
    "layer_norm_2d": lambda: nn.LayerNorm((8, 8), elementwise_affine=False),
    "bn1d_3d": lambda: nn.Sequential(nn.Flatten(2), nn.BatchNorm1d(4), nn.Unflatten(2, (8, 8))),
    "identity": lambda: nn.Identity(),
}


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_layer_records_as_its_forward(monkeypatch, name, mode):
    body = nn.Sequential(nn.Conv2d(3, 4, 1), LAYERS[name](), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten())
    width = body.eval()(torch.zeros(2, 3, 8, 8)).shape[1]
    model = nn.Sequential(*body, nn.Linear(width, 5), nn.BatchNorm1d(5), nn.GELU(),
                          nn.Linear(5, 3, bias=False))
    model.train(mode == "train")
    direct, full = _both(monkeypatch, model, "2x3x8x8", mode=mode)
    assert direct == full


def test_dtypes_layouts_and_a_float_dtype_record_as_the_forward(monkeypatch):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Hardswish(), nn.Identity())
    channels_last = torch.empty(1, 3, 9, 9).to(memory_format=torch.channels_last)
    for inputs, options in (((channels_last,), {}), (("1x3x9x9",), {"dtype": "float16"})):
        direct, full = _both(monkeypatch, model.eval(), *inputs, **options)
        assert direct == full
    direct, full = _both(monkeypatch, model.half(), "1x3x9x9:float16")
    assert direct == full


def test_hooks_wrong_inputs_and_nested_layers_take_the_same_path(monkeypatch):
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.conv(x)) + self.act(x[:, :1])

    model = nn.Sequential(Block(), nn.TransformerEncoderLayer(4, 2, 8, batch_first=True)).eval()
    model[0].conv.register_forward_hook(lambda m, i, o: o * 2)
    model[0].act.register_forward_pre_hook(lambda m, i: None)
    flat = nn.Sequential(nn.Flatten(2), nn.Identity())
    direct, full = _both(monkeypatch, nn.Sequential(model[0], flat, model[1]).eval(), "1x3x2x2")
    assert direct == full
    for wrong in (nn.Conv2d(5, 4, 1), nn.BatchNorm1d(3), nn.Linear(3, 2)):
        errors = []
        for active in (leaves.active, lambda: {}):
            with monkeypatch.context() as patch, pytest.raises(costmodel.AnalysisError) as info:
                patch.setattr(leaves, "active", active)
                costmodel.analyze(nn.Sequential(wrong), "1x3x4x4")
            errors.append(str(info.value))
        assert errors[0] == errors[1] and "input shapes [1x3x4x4]" in errors[0]


def test_a_patched_forward_or_function_drops_the_entry(monkeypatch):
    assert nn.ReLU in leaves.active() and nn.Conv2d in leaves.active()
    monkeypatch.setattr(F, "relu", lambda x, inplace=False: torch.sigmoid(x))
    monkeypatch.setattr(nn.Conv2d, "forward", lambda self, x: self._conv_forward(x, self.weight,
                                                                               None))
    found = leaves.active()
    assert nn.ReLU not in found and nn.Conv2d not in found and nn.Linear in found
    report = costmodel.analyze(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), "1x3x4x4")
    assert [c.op for layer in report.layers for c in layer.calls] == ["conv", "sigmoid"]
    assert report.layers[0].params == 12   # the patched forward reads no bias


def test_a_subclass_or_an_instance_forward_runs_its_own_forward():
    class Doubled(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2

    own = nn.ReLU()
    own.forward = lambda x: torch.tanh(x)
    report = costmodel.analyze(nn.Sequential(Doubled(3, 4, 1), own), "1x3x4x4")
    # the subclass is the user's code (no torch.nn leaf): its conv and its mul are two nodes
    assert [[c.op for c in layer.calls] for layer in report.layers] == [["conv"], ["mul"],
                                                                       ["tanh"]]
