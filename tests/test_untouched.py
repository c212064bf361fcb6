"""analyze() never changes the user's model: parameters, buffers, device, dtype, training flags,
requires_grad and hooks stay exactly as they were. The model's forward hooks are part of its
forward: they run on meta tensors, on the model's clones (CM011 says so)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import costmodel


class Tied(nn.Module):
    """Embedding and output projection share one weight; a BN in train mode; a mix of flags."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.conv = nn.Conv1d(16, 16, 3, padding=1)
        self.bn = nn.BatchNorm1d(16)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, ids):
        x = self.embed(ids).transpose(1, 2)
        x = self.drop(torch.relu(self.bn(self.conv(x)))) * self.scale
        return self.head(x.transpose(1, 2))


def snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: (v.detach().clone(), v.device, v.dtype)
                  for k, v in model.state_dict().items()},
        "ids": [id(p) for p in model.parameters()] + [id(b) for b in model.buffers()],
        "grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "training": {n: m.training for n, m in model.named_modules()},
        "hooks": {n: (dict(m._forward_hooks), dict(m._forward_pre_hooks))
                  for n, m in model.named_modules()},
        "dict_keys": {n: sorted(m.__dict__) for n, m in model.named_modules()},
    }


def assert_same(before: dict, after: dict) -> None:
    assert before["ids"] == after["ids"]
    assert before["grad"] == after["grad"]
    assert before["training"] == after["training"]
    assert before["hooks"] == after["hooks"]
    assert before["dict_keys"] == after["dict_keys"]
    assert before["state"].keys() == after["state"].keys()
    for key, (value, device, dtype) in before["state"].items():
        new_value, new_device, new_dtype = after["state"][key]
        assert (device, dtype) == (new_device, new_dtype), key
        assert torch.equal(value, new_value), key


class Untraceable(Tied):
    """The same model with a shape branch, so that the eager fallback capture analyses it."""

    def forward(self, ids):
        if ids.shape[1] > 4:
            ids = ids[:, :4]
        return super().forward(ids)


@pytest.mark.parametrize("kind, how, capture", [("Tied", "fx", "torch.fx"),
                                                 ("Tied", "auto", "eager (meta tensors)"),
                                                 ("Untraceable", "auto", "eager (meta tensors)")])
def test_model_untouched_with_tied_weights_hooks_and_mixed_modes(kind, how, capture):
    """Both captures (fx, and the default eager capture, also on a forward fx cannot trace)."""
    cls = {"Tied": Tied, "Untraceable": Untraceable}[kind]
    torch.manual_seed(0)
    model = cls().double()
    model.train()
    model.head.eval()                       # mixed flags must come back exactly as they were
    model.conv.weight.requires_grad_(False)
    calls = []
    model.conv.register_forward_hook(lambda *a: calls.append("conv"))
    model.register_forward_pre_hook(lambda *a: calls.append("root"))
    before = snapshot(model)

    report = costmodel.analyze(model, "2x12:int64", capture=how)

    assert report.capture == capture
    assert_same(before, snapshot(model))
    # the hooks ran as the forward ran them (torch.fx runs none: CM005 says so), on meta
    # tensors; the hooks themselves are still the user's, unchanged
    assert calls == ([] if how == "fx" else ["root", "conv"])
    assert model.bn.num_batches_tracked.item() == 0
    assert model.forward.__func__ is cls.forward      # no wrapper left on the user's model
    assert all("forward" not in m.__dict__ for m in model.modules())
    # the tied weight counts once, in the totals and in the rows
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert sum(layer.params for layer in report.layers) == report.totals.params
    assert report.layers[-1].params == 0     # head reads the embedding's weight again
    assert {d.code for d in report.diagnostics} >= (
        {"CM005", "CM007"} if how == "fx" else {"CM007", "CM011"})


def test_torchvision_model_untouched():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18()
    model.layer2.train(False)
    before = snapshot(model)
    costmodel.analyze(model, "1x3x64x64")
    assert_same(before, snapshot(model))


def test_meta_model_is_analysable_and_untouched():
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        model = torchvision.models.mobilenet_v2()
    report = costmodel.analyze(model.eval(), "1x3x224x224")
    assert report.totals.params == 3504872
    assert all(p.device.type == "meta" for p in model.parameters())


def test_no_attribute_is_left_on_the_model():
    """torch.fx stows tensor constants (`x[:, torch.tensor([0, 2])]`) as new attributes of the
    root module it traces; costmodel takes them back off the user's model."""
    import costmodel

    class Picks(torch.nn.Module):
        def forward(self, x):
            return x[:, torch.tensor([0, 2])] * 2

    model = Picks()
    before = dict(vars(model))
    report = costmodel.analyze(model, "2x4", capture="fx")
    assert report.capture == "torch.fx" and report.totals.status == "complete"
    assert vars(model).keys() == before.keys()
