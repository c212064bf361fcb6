"""Statically quantized models (capture/quantized.py): eager-mode quantized modules run on the
integer representation of their tensors (uint8 activations, int8 weights), so they capture, cost
what the float model costs in MAdds, and count one byte per quantized element in mac_bytes.
Expected numbers: arithmetic written here, and FlopCounterMode / 2 on a real forward of the float
torchvision model of the same architecture."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

import costmodel
from costmodel.core.vocab import Status

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif("fbgemm" not in torch.backends.quantized.supported_engines,
                                 reason="needs the fbgemm quantized engine")]


class Tiny(nn.Module):
    """Quantize -> fused Conv+ReLU -> 1x1 conv -> quantized add -> pool -> Linear -> DeQuantize."""

    def __init__(self) -> None:
        super().__init__()
        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.conv1, self.relu = nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.skip = FloatFunctional()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = self.relu(self.conv1(self.quant(x)))
        z = self.skip.add(y, self.conv2(y))
        return self.dequant(self.fc(torch.flatten(self.pool(z), 1)))


def quantized_tiny() -> nn.Module:
    model = torch.ao.quantization.fuse_modules(Tiny().eval(), [["conv1", "relu"]])
    model.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
    torch.ao.quantization.prepare(model, inplace=True)
    model(torch.randn(2, 3, 8, 8))   # calibration
    return torch.ao.quantization.convert(model)


def packed_params(model: nn.Module) -> int:
    """The quantized model's weights and biases, enumerated from the modules (parameters() sees
    none of them: they are packed)."""
    total = 0
    for mod in model.modules():
        if callable(getattr(mod, "weight", None)) and callable(getattr(mod, "bias", None)):
            total += mod.weight().numel() + (0 if mod.bias() is None else mod.bias().numel())
    return total


def test_a_statically_quantized_model_is_costed_with_int8_bytes():
    model = quantized_tiny()
    assert sum(p.numel() for p in model.parameters()) == 0
    x = torch.randn(1, 3, 8, 8)
    before = model(x)
    report = costmodel.analyze(model, "1x3x8x8")
    assert report.totals.status == Status.COMPLETE
    assert report.totals.madds == 3 * 8 * 9 * 64 + 8 * 8 * 64 + 8 * 4
    assert report.totals.params == packed_params(model) == (8 * 27 + 8) + (8 * 8 + 8) + (8 * 4 + 4)
    layers = {layer.name: layer for layer in report.layers}
    # Quantize: 192 float32 elements read with its scale (float32) and zero point (int64)
    # buffers, 192 uint8 elements written; 1 FLOP per element
    assert layers["quant"].mac_bytes == 192 * 4 + 4 + 8 + 192 * 1
    assert layers["quant"].flops == 192
    # the fused conv: uint8 input, int8 weight, float32 bias, uint8 output; then ReLU on uint8
    assert layers["conv1"].mac == 192 + 216 + 8 + 512 + 512 + 512
    assert layers["conv1"].mac_bytes == 192 + 216 + 8 * 4 + 512 + 512 + 512
    # the quantized add reads two uint8 maps and writes one
    assert layers["add"].mac_bytes == 3 * 512
    # DeQuantize: 4 uint8 read, 4 float32 written
    assert layers["dequant"].mac_bytes == 4 + 4 * 4 and layers["dequant"].flops == 4
    convs = [(rec.call.t("input").dtype, rec.call.t("weight").dtype, rec.call.out.dtype)
             for node in report.graph for rec in node.calls if rec.call.op in ("conv", "linear")]
    assert convs == [("uint8", "int8", "uint8")] * 3
    assert torch.equal(model(x), before)   # the user's model still runs as before
    assert "forward" not in model.conv1.__dict__ and "add" not in model.skip.__dict__


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "shufflenet_v2_x0_5"])
def test_torchvision_quantized_models_cost_what_the_float_model_costs(name):
    """torchvision's quantize=True models (no weights downloaded): MAdds equal FlopCounterMode /
    2 of the float model of the same architecture (quantization keeps every contraction), params
    equal the packed weights and biases."""
    from torchvision.models import quantization

    build = getattr(quantization, name)
    model = build(weights=None, quantize=True).eval()
    float_model = build(weights=None, quantize=False).eval()
    x = torch.randn(1, 3, 224, 224)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        float_model(x)
    report = costmodel.analyze(model, "1x3x224x224")
    assert report.totals.status == Status.COMPLETE
    assert report.totals.madds == counter.get_total_flops() // 2
    assert report.totals.params == packed_params(model)


def test_a_quantized_transposed_conv():
    """ConvTranspose2d(3 -> 4, k=3, stride 2) on 8x8: each input pixel meets every output
    channel and kernel tap once: 3*4*9*64 MAdds; output (8-1)*2 + 3 = 17."""
    import torch.ao.nn.quantized as nnq

    model = nn.Sequential(nnq.Quantize(1.0, 0, torch.quint8), nnq.ConvTranspose2d(3, 4, 3, 2),
                          nnq.DeQuantize())
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 4, 17, 17)
    report = costmodel.analyze(model, "1x3x8x8")
    assert report.totals.status == Status.COMPLETE
    assert report.totals.madds == 3 * 4 * 9 * 64
    assert report.totals.params == packed_params(model) == 3 * 4 * 9 + 4
    assert report.graph.nodes["output"].inputs[0].shape == (1, 4, 17, 17)


class Functional(nn.Module):
    """Quantization written as calls (as torch.fx-quantized graphs are): quantize, an average
    pool on the quantized tensor, dequantize."""

    def forward(self, x):
        q = torch.quantize_per_tensor(x, 0.1, 0, torch.quint8)
        return F.adaptive_avg_pool2d(q, 1).dequantize() * 2


def test_quantize_and_dequantize_calls():
    assert Functional()(torch.randn(1, 3, 4, 4)).shape == (1, 3, 1, 1)
    report = costmodel.analyze(Functional(), "1x3x4x4")
    assert report.totals.status == Status.COMPLETE
    layers = {layer.name: layer for layer in report.layers}
    quant, pool, dequant = (layers[n] for n in ("quantize_per_tensor", "adaptive_avg_pool2d",
                                                "dequantize"))
    assert (quant.flops, quant.mac_bytes) == (48, 48 * 4 + 48)     # float32 in, uint8 out
    assert pool.mac_bytes == 48 + 3                                  # uint8 in and out
    assert (dequant.flops, dequant.mac_bytes) == (3, 3 + 3 * 4)    # uint8 in, float32 out


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.c1(x))
        z = y + self.c2(y)
        return self.fc(F.adaptive_avg_pool2d(z, 1).flatten(1))


def test_an_fx_graph_mode_quantized_model():
    """prepare_fx / convert_fx: the graph calls torch.quantize_per_tensor, .dequantize() and
    torch.ops.quantized.add between quantized conv and linear modules; the MAdds are the float
    model's and the packed weights are the params."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    example = (torch.randn(2, 3, 8, 8),)
    prepared = prepare_fx(Plain().eval(), get_default_qconfig_mapping("fbgemm"), example)
    prepared(*example)
    model = convert_fx(prepared)
    report = costmodel.analyze(model, "1x3x8x8")
    assert report.totals.status == Status.COMPLETE
    assert report.totals.madds == 3 * 8 * 9 * 64 + 8 * 8 * 64 + 8 * 4
    assert report.totals.params == packed_params(model) == (8 * 27 + 8) + (8 * 8 + 8) + (8 * 4 + 4)
    ops = {rec.call.op for node in report.graph for rec in node.calls}
    assert {"quantize", "add", "conv", "linear"} <= ops
