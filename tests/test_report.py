"""Report invariants: rows sum to totals, roll-ups sum to totals, JSON round-trips, unknown ops
make the totals partial, and the input is inferred only when it safely can be."""
from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

import costmodel
from costmodel.core.cost import METRICS
from costmodel.errors import CostmodelError

torchvision = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def report():
    return costmodel.analyze(torchvision.models.shufflenet_v2_x1_0().eval(), "1x3x224x224")


def test_rows_sum_to_totals(report):
    for metric in ("madds", "flops", "mac", "mac_bytes"):
        assert (sum(getattr(layer, metric) for layer in report.layers)
                == getattr(report.totals, metric))
    assert sum(layer.params for layer in report.layers) + report.totals.params_unused == \
        report.totals.params


def test_rollups_sum_to_totals(report):
    root = report.by_module(depth=2)[0]
    assert root.key == "" and root.cost == report.totals.cost.replace(
        params=report.totals.params - report.totals.params_unused)
    depth1 = [r for r in report.by_module(depth=1) if r.depth == 1]
    top_level = [layer for layer in report.layers if not layer.module]
    assert sum(r.mac for r in depth1) + sum(layer.mac for layer in top_level) == report.totals.mac
    assert sum(r.flops for r in report.by_operator()) == report.totals.flops
    assert {r.key for r in report.by_operator()} >= {"conv", "depthwise conv", "norm",
                                                       "data movement"}


def test_channel_shuffle_moves_data_and_views_do_not(report):
    """ShuffleNet V2's shuffle is view -> transpose -> contiguous -> view: only the copy costs."""
    shuffle = [layer for layer in report.layers if layer.module == "stage2.1"]
    contiguous = [layer for layer in shuffle if layer.target == "Tensor.contiguous"]
    views = [layer for layer in shuffle if layer.target in ("Tensor.view", "torch.transpose")]
    assert contiguous and all(layer.mac == 2 * 116 * 28 * 28 for layer in contiguous)
    assert views and all(layer.mac == 0 and layer.flops == 0 for layer in views)
    assert all(layer.flops == 0 for layer in contiguous)


def test_json_round_trip(report):
    data = json.loads(report.to_json())
    assert data["schema_version"] == report.schema_version
    assert data["totals"]["madds"] == report.totals.madds
    assert len(data["layers"]) == len(report.layers)
    assert set(METRICS) <= set(data["layers"][0])


def test_html_repr(report):
    html = report._repr_html_()
    assert html.startswith("<div>") and "MAdds" in html


class Custom(nn.Module):
    def forward(self, x):
        y = torch.nn.functional.conv2d(x, torch.ones(4, 3, 3, 3, device=x.device))
        return torch.special.bessel_j0(y)          # costmodel has no formula for this


def test_unknown_op_is_reported_and_totals_are_partial():
    report = costmodel.analyze(Custom(), "1x3x8x8")
    assert report.totals.status == "partial"
    assert any("bessel_j0" in name for name in report.totals.unsupported)
    assert any(d.code == "CM001" and "bessel_j0" in d.op for d in report.diagnostics)
    # what is known is still counted: the conv
    assert report.totals.madds == 4 * 6 * 6 * 3 * 3 * 3


def test_input_is_inferred_from_first_conv_and_said():
    report = costmodel.analyze(torchvision.models.resnet18().eval())
    assert report.inputs[0].shape == (1, 3, 224, 224) and report.inputs[0].assumed
    assert any(d.code == "CM003" for d in report.diagnostics)


def test_input_cannot_be_inferred_gives_a_clear_error():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2))
    with pytest.raises(costmodel.AnalysisError, match="pass one"):
        costmodel.analyze(model)


@pytest.mark.parametrize("spec", ["1x3x", "-1x3", "axb", "0x3x4x4", ""])
def test_malformed_inputs(spec):
    with pytest.raises(ValueError):
        costmodel.analyze(nn.Conv2d(3, 4, 3), spec)


def test_input_forms_agree():
    model = nn.Conv2d(3, 8, 3).eval()
    a = costmodel.analyze(model, "1x3x32x32").totals
    b = costmodel.analyze(model, (1, 3, 32, 32)).totals
    c = costmodel.analyze(model, torch.zeros(1, 3, 32, 32)).totals
    assert a == b == c


def test_several_inputs_and_kwargs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x, y, mask=None):
            out = self.fc(x) + y
            return out if mask is None else out * mask

    model = Two()
    plain = costmodel.analyze(model, "2x8", "2x8")
    masked = costmodel.analyze(model, ["2x8", "2x8"], kwargs={"mask": "2x8"})
    assert masked.totals.flops == plain.totals.flops + 2 * 8
    assert [i.name for i in masked.inputs] == ["x", "y", "mask"]


def test_mac_bytes_follow_dtype():
    model = nn.Conv2d(3, 8, 1, bias=False).eval()
    fp32 = costmodel.analyze(model, "1x3x16x16").totals
    fp16 = costmodel.analyze(model, "1x3x16x16", dtype="float16").totals
    assert fp32.mac == fp16.mac and fp32.mac_bytes == 2 * fp16.mac_bytes == 4 * fp32.mac


def test_not_a_module():
    with pytest.raises(TypeError):
        costmodel.analyze(lambda x: x, "1x3")


def write_region(x, v):
    x = x.clone()
    x[:, :2] = v            # torch.fx cannot trace this; wrapped, it runs during the meta pass
    return x


torch.fx.wrap("write_region")


def test_setitem_is_a_copy_into_the_region():
    class Write(nn.Module):
        def forward(self, x, v):
            return write_region(x, v)

    report = costmodel.analyze(Write(), "4x8", "4x2", capture="fx")
    (layer,) = report.layers
    assert report.totals.status == "complete"
    clone, setitem = layer.calls
    assert setitem.target == "Tensor.__setitem__"
    assert setitem.cost.mac == 4 * 2 + 4 * 2                  # read v, write the 4x2 region
    assert clone.cost.mac == 4 * 8 + 4 * 8


def test_untraceable_setitem_is_captured_eagerly_and_fx_names_the_line():
    class Write(nn.Module):
        def forward(self, x, v):
            x[:, :2] = v
            return x

    with pytest.raises(CostmodelError) as refused:
        costmodel.analyze(Write(), "4x8", "4x2", capture="fx")
    assert re.search(r"test_report.py:\d+ in forward: x\[:, :2\] = v", str(refused.value))
    report = costmodel.analyze(Write(), "4x8", "4x2")
    assert report.capture == "eager (meta tensors)"
    assert not [d for d in report.diagnostics if d.code == "CM008"]
    (layer,) = report.layers
    assert layer.target == "Tensor.__setitem__"
    assert layer.mac == 4 * 2 + 4 * 2                         # read v, write the 4x2 region


def test_totals_refuse_complete_with_unsupported_ops():
    from costmodel.core.cost import Cost
    from costmodel.core.report import Totals, TrainTotals
    from costmodel.core.vocab import Status
    with pytest.raises(ValueError, match="cannot be complete"):
        Totals(1, 2, 3, 4, 16, Status.COMPLETE, 0, ("torch.frobnicate",))
    Totals(1, 2, 3, 4, 16, Status.PARTIAL, 0, ("torch.frobnicate",))   # a lower bound: fine
    with pytest.raises(ValueError, match="cannot be complete"):
        TrainTotals(Cost(), Cost(), 0, 0, Status.COMPLETE, ("lp_pool (backward)",))


def test_unsupported_rolls_up_by_module():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.special.bessel_j0(x)            # no formula in costmodel

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.fc = Odd(), Odd(), nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(self.b(self.a(x)))

    report = costmodel.analyze(Net(), "2x4")
    assert report.totals.status == "partial"
    whole = report.unsupported()
    assert sum(whole.values()) == 2 and len(whole) == 1
    assert sum(report.unsupported("a").values()) == 1
    assert report.unsupported("fc") == {}
    assert report.unsupported("a.nothing") == {}


@pytest.mark.parametrize("record", ["CallCost", "Layer"])
def test_hand_written_init_matches_the_dataclass_fields(record):
    """CallCost and Layer write their fields straight into __dict__ (speed): their __init__
    takes exactly the dataclass's fields, in order, with the same defaults, and sets each one."""
    import dataclasses
    import inspect

    from costmodel.core import report as core_report

    cls = getattr(core_report, record)
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields]
    values = {f.name: object() for f in fields}
    made = cls(**values)
    assert all(getattr(made, name) is value for name, value in values.items())
    assert vars(made).keys() == values.keys()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, fields[0].name, 1)


@pytest.mark.parametrize("record", ["TensorSpec", "Cost", "OpCall"])
def test_hand_written_init_of_core_records(record):
    """TensorSpec and Cost (slots) and OpCall write their fields without the frozen dataclass's
    object.__setattr__ per field (speed): their __init__ takes exactly the dataclass's fields, in
    order, with the same defaults (a field with a default factory: None, then a fresh value), and
    sets each one; the records stay frozen and compare as before."""
    import dataclasses
    import inspect

    from costmodel.core import calls, cost, tensors

    cls = {"TensorSpec": tensors.TensorSpec, "Cost": cost.Cost, "OpCall": calls.OpCall}[record]
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields):
        if f.default_factory is not dataclasses.MISSING:
            assert p.default is None
        else:
            assert p.default == (inspect.Parameter.empty if f.default is dataclasses.MISSING
                                 else f.default)
    values = {f.name: object() for f in fields}
    made = cls(**values)
    assert all(getattr(made, name) is value for name, value in values.items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, fields[0].name, 1)
    a, b = cls("x"), cls("x")
    assert a == b and dataclasses.astuple(a) == dataclasses.astuple(b)
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(a, f.name) == f.default_factory()
            assert getattr(a, f.name) is not getattr(b, f.name)
