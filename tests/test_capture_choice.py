"""analyze(capture=...): both captures give the same costs; "auto" runs the eager capture and
falls back to torch.fx when that fails; "fx" and "eager" refuse to fall back."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import costmodel
from costmodel.errors import CostmodelError

from conftest import build_meta


class Branchy(nn.Module):
    """Loops over a size: torch.fx cannot trace it, the eager capture follows it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        for _ in range(x.shape[0]):
            x = x[:1]
        y = self.conv(x)
        if y.shape[-1] > 10:
            y = torch.relu(y)
        return y


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "vit_b_16"])
def test_same_costs_from_both_captures(name):
    model = build_meta(getattr(torchvision.models, name))
    fx = costmodel.analyze(model, "1x3x224x224", capture="fx")
    eager = costmodel.analyze(model, "1x3x224x224", capture="eager")
    assert fx.capture == "torch.fx" and eager.capture != "torch.fx"
    assert fx.totals == eager.totals
    assert ([(r.key, r.cost) for r in fx.by_module(3)]
            == [(r.key, r.cost) for r in eager.by_module(3)])


class ValueCheck(nn.Module):
    """Checks its input's values unless torch.fx is tracing (as library code guards logging and
    checks): the eager capture cannot read a meta tensor's value outside an `assert` (an assert
    is assumed to hold, test_value_reads.py), torch.fx skips the check."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if not torch.fx._symbolic_trace.is_fx_tracing():
            if x.abs().max() >= 1e4:
                raise ValueError("input too large")
        return self.fc(x)


def test_fx_only_refuses_and_auto_runs_eagerly():
    model = Branchy()
    with pytest.raises(CostmodelError):
        costmodel.analyze(model, "2x3x16x16", capture="fx")
    auto = costmodel.analyze(model, "2x3x16x16")
    assert auto.capture != "torch.fx" and not any(d.code == "CM008" for d in auto.diagnostics)
    # conv 3->8, 3x3 on 1x3x16x16 (the loop keeps one sample): 8*14*14 * 3*3*3
    assert auto.totals.madds == 8 * 14 * 14 * 3 * 3 * 3
    with pytest.raises(ValueError, match="capture='torchscript'"):
        costmodel.analyze(model, "2x3x16x16", capture="torchscript")


def test_auto_falls_back_to_fx_when_the_eager_capture_stops():
    with pytest.raises(costmodel.AnalysisError, match="reads a tensor's value"):
        costmodel.analyze(ValueCheck(), "3x4", capture="eager")
    auto = costmodel.analyze(ValueCheck(), "3x4")
    assert auto.capture == "torch.fx"
    (why,) = [d for d in auto.diagnostics if d.code == "CM008"]
    assert "test_capture_choice.py" in why.message and "x.abs().max()" in why.message
    assert auto.totals.madds == 3 * 4 * 2
