"""Hooks a model installs on itself are part of its forward (transformers 5 collects
hidden_states, attentions and a backbone's feature_maps with forward hooks): the analysis runs
them on meta tensors, on the model's clones, and leaves the user's model as it was."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import costmodel


class Collecting(nn.Module):
    """A faithful miniature of transformers' output capturing: a forward hook installed on a
    child at construction appends to a collector, and the forward returns what it collected."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stages = nn.ModuleList(nn.Conv2d(8, 8, 3, padding=1) for _ in range(3))
        self.collected: list | None = None
        for stage in self.stages:
            stage.register_forward_hook(self._collect)

    def _collect(self, module, args, output):
        if self.collected is not None:
            self.collected.append(output)

    def forward(self, x):
        self.collected = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        maps, self.collected = self.collected, None
        return torch.cat([m.mean((2, 3)) for m in maps], dim=1)   # built from the hooks' output


def test_hooks_installed_at_construction_run_and_the_model_is_untouched():
    model = Collecting().eval()
    hooks = {n: dict(m._forward_hooks) for n, m in model.named_modules()}
    report = costmodel.analyze(model, "1x3x16x16")
    assert report.totals.status == "complete"
    plane = 16 * 16 * 9                   # MAdds of a 3x3 conv per (in, out) channel pair
    assert report.totals.madds == plane * 3 * 8 + 3 * plane * 8 * 8
    assert report.graph.nodes["output"].inputs[0].shape == (1, 24)   # three maps, 8 channels each
    assert "cat" in {n.target.rsplit(".", 1)[-1] for n in report.graph}
    assert model.collected is None        # the hook wrote onto the clone, not onto the model
    assert {n: dict(m._forward_hooks) for n, m in model.named_modules()} == hooks
    ran = [d for d in report.diagnostics if d.code == "CM011"]
    assert ran and "stages.0" in ran[0].message and ran[0].severity == "info"


def test_a_hook_that_needs_data_is_skipped_and_said():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    seen = []
    model[0].register_forward_hook(lambda m, a, out: seen.append(out.sum().item()))
    report = costmodel.analyze(model, "2x4")
    assert report.totals.madds == 2 * 4 * 4 and seen == []
    failed = [d for d in report.diagnostics if d.code == "CM011" and d.severity == "warning"]
    assert len(failed) == 1 and failed[0].module == "0" and "RuntimeError" in failed[0].message


def test_convnext_backbone_feature_maps():
    transformers = pytest.importorskip("transformers")
    config = transformers.ConvNextConfig(
        num_channels=3, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
        out_features=["stage1", "stage2", "stage3", "stage4"])
    model = transformers.ConvNextBackbone(config).eval()
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = [tuple(f.shape) for f in model(x).feature_maps]
    report = costmodel.analyze(model, "1x3x64x64")
    assert report.totals.status == "complete"
    out = report.graph.nodes["output"].inputs
    assert [s.shape for s in out if s.ndim == 4] == expected
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        model(x)
    assert report.totals.madds == counter.get_total_flops() // 2
