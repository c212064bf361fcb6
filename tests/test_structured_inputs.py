"""Structured inputs (issue 14, section 4): a forward that takes a dict, list, tuple or dataclass
of tensors is given the same structure of shape specs, in the API and on the command line."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import costmodel
from costmodel.errors import InputSpecError

C_IN, C_OUT, K, H, W = 3, 8, 3, 32, 32
CONV_MADDS = C_OUT * C_IN * K * K * H * W          # stride 1, padding 1: every output pixel


class DictNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(C_IN, C_OUT, K, padding=1)

    def forward(self, batch):
        return self.conv(batch["image"]) * batch["mask"].unsqueeze(1)


@dataclasses.dataclass
class Batch:
    image: torch.Tensor
    mask: torch.Tensor


class DataclassNet(DictNet):
    def forward(self, b):
        return self.conv(b.image) * b.mask.unsqueeze(1)


class ListNet(DictNet):
    def forward(self, xs):
        return sum(self.conv(x).mean() for x in xs)


@pytest.mark.parametrize("capture", ["eager", "fx"])
def test_dict_of_shape_specs(capture):
    r = costmodel.analyze(DictNet(), {"image": f"1x{C_IN}x{H}x{W}", "mask": f"1x{H}x{W}:bool"},
                          capture=capture)
    assert r.totals.madds == CONV_MADDS
    assert [(i.name, i.shape, i.dtype) for i in r.inputs] == [
        ("batch.image", (1, C_IN, H, W), "float32"), ("batch.mask", (1, H, W), "bool")]


def test_dict_by_keyword_and_tensors_inside():
    r = costmodel.analyze(DictNet(), kwargs={"batch": {"image": torch.zeros(1, C_IN, H, W),
                                                       "mask": (1, H, W)}})
    assert r.totals.madds == CONV_MADDS


def test_dataclass_of_shape_specs():
    r = costmodel.analyze(DataclassNet(), Batch(f"1x{C_IN}x{H}x{W}", f"1x{H}x{W}:bool"))
    assert r.totals.madds == CONV_MADDS
    assert [i.name for i in r.inputs] == ["b.image", "b.mask"]


@pytest.mark.parametrize("given", [[f"1x{C_IN}x{H}x{W}", f"1x{C_IN}x16x16"],
                                   (f"1x{C_IN}x{H}x{W}", f"1x{C_IN}x16x16")])
def test_list_and_tuple_of_shape_specs(given):
    # a list of inputs analyze(m, [a, b]) is two inputs: the one list input is [[a, b]]
    r = costmodel.analyze(ListNet(), [given] if isinstance(given, list) else given)
    assert r.totals.madds == C_OUT * C_IN * K * K * (H * W + 16 * 16)
    assert [i.name for i in r.inputs] == ["xs.0", "xs.1"]


@pytest.mark.parametrize("bad", [{}, {"image": object()}, {1: "1x3"}, {"image": [object()]}])
def test_bad_structures_are_one_line_errors(bad):
    with pytest.raises(InputSpecError):
        costmodel.analyze(DictNet(), kwargs={"batch": bad})


def test_the_model_is_untouched_and_the_structure_is_not_mutated():
    spec = {"image": f"1x{C_IN}x{H}x{W}", "mask": f"1x{H}x{W}:bool"}
    before = dict(spec)
    costmodel.analyze(DictNet(), spec)
    assert spec == before


MODEL = textwrap.dedent("""
    from torch import nn
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
        def forward(self, batch, pair=None):
            y = self.conv(batch["image"]) * batch["mask"].unsqueeze(1)
            if pair is not None:
                y = y.mean() + sum(self.conv(p).mean() for p in pair)
            return y
    def build():
        return Net()
""")


def _cli(tmp_path, *args):
    path = tmp_path / "net.py"
    path.write_text(MODEL)
    return subprocess.run([sys.executable, "-m", "costmodel", "report", f"{path}:build", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_dotted_input_names_build_a_dict(tmp_path):
    out = _cli(tmp_path, "--input", f"batch.image=1x{C_IN}x{H}x{W}",
               "--input", f"batch.mask=1x{H}x{W}:bool", "--format", "json")
    assert out.returncode == 0, out.stderr
    import json
    data = json.loads(out.stdout)
    assert data["totals"]["madds"] == CONV_MADDS
    assert [i["name"] for i in data["inputs"]] == ["batch.image", "batch.mask"]


def test_cli_numbered_keys_build_a_list(tmp_path):
    out = _cli(tmp_path, "--input", f"batch.image=1x{C_IN}x{H}x{W}",
               "--input", f"batch.mask=1x{H}x{W}:bool", "--input", f"pair.1=1x{C_IN}x16x16",
               "--input", f"pair.0=1x{C_IN}x{H}x{W}", "--format", "json")
    assert out.returncode == 0, out.stderr
    import json
    assert json.loads(out.stdout)["totals"]["madds"] == CONV_MADDS * 2 + \
        C_OUT * C_IN * K * K * 16 * 16


@pytest.mark.parametrize("inputs, says", [
    (["batch=1x3x4x4", "batch.mask=1x4x4"], "both as one shape and as a structure"),
    (["batch.a=1x3", "batch.a=1x3"], "given twice"),
    (["pair.2=1x3x4x4"], "numbered 0 to 0"),
    (["batch..a=1x3"], "bad input name"),
])
def test_cli_bad_structures(tmp_path, inputs, says):
    out = _cli(tmp_path, *[a for i in inputs for a in ("--input", i)])
    assert out.returncode == 2
    assert says in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
