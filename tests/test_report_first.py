"""The report answers first (issue 14, section 3): the default text report is a header, the
totals, the module roll-up, the top layers and the summaries, fit to the terminal; markdown for a
pull request; names escaped; guideline findings that cannot be acted on are not reported."""
from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from torch import nn

import costmodel
from costmodel.cli import main
from costmodel.render import formats

from conftest import EXAMPLES


@pytest.fixture(autouse=True)
def fixed_terminal(monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("COSTMODEL_PROFILE_DIR", str(tmp_path))


def _report(capsys, *argv):
    code = main(["report", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


SHUFFLE = [str(EXAMPLES / "shufflenet_v2.py"), "--input", "1x3x224x224"]


def test_default_report_answers_first_and_fits_a_screen(capsys):
    out, _ = _report(capsys, *SHUFFLE)
    lines = out.splitlines()
    assert len(lines) <= 60
    assert lines[0].startswith("ShuffleNetV2  [x=1x3x224x224:float32]  mode=eval  capture=")
    order = [next(i for i, line in enumerate(lines) if line.startswith(head))
             for head in ("MAdds", "by module (depth 1)", "top 10 of", "structure",
                          "latency estimate", "guidelines")]
    assert order == sorted(order)
    assert "--layers all" in lines[-1]
    top = lines[order[2] + 3: order[2] + 13]     # title, header, rule, then 10 rows
    assert len(top) == 10 and all(line.strip() for line in top)


def test_top_layers_are_ranked_by_mac_and_layers_all_prints_every_layer(capsys):
    out, _ = _report(capsys, *SHUFFLE, "--format", "json")
    layers = json.loads(out)["layers"]
    out, _ = _report(capsys, *SHUFFLE)
    macs = sorted((layer["mac"] for layer in layers), reverse=True)[:10]
    rows = out.split("top 10 of")[1].splitlines()[3:13]
    assert [r.split()[-2] for r in rows] == [costmodel.render.units.human(m) for m in macs]
    out, _ = _report(capsys, *SHUFFLE, "--layers", "all")
    assert f"layers (all {len(layers)}, in graph order)" in out
    table = out.split("in graph order)")[1].split("\n\n")[0].splitlines()[3:]
    assert len(table) == len(layers)


def test_the_layer_column_is_not_repeated_and_the_table_fits_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out, _ = _report(capsys, *SHUFFLE, "--layers", "all")
    table = out.split("in graph order)")[1].split("\n\n")[0].splitlines()[1:]
    assert table[0].split()[:3] == ["layer", "op", "output"]      # no separate module column
    assert all(len(line) <= 80 for line in table)
    assert any("…" in line for line in table)                      # long names cut in the middle
    assert "stages.0.0/cat" in out                                  # a function in a module
    out, _ = _report(capsys, *SHUFFLE, "--format", "csv")
    names = [row["module"] for row in csv.DictReader(io.StringIO(out))]
    assert "stages.0.0.right.0" in names and not any("…" in n for n in names)


def test_middle_cut_keeps_both_ends():
    from costmodel.render.units import middle

    name = "stages.0.0.right.0/contiguous_1"
    # 16 characters: the first 8, an ellipsis, the last 7
    assert middle(name, 16) == name[:8] + "…" + name[-7:]
    assert middle(name, len(name)) == name


def test_module_rollup_is_indented_by_depth(capsys):
    out, _ = _report(capsys, str(EXAMPLES / "mobilenet_v2.py"), "--depth", "2")
    lines = out.split("by module (depth 2)")[1].splitlines()
    assert any(line.startswith("features ") for line in lines)
    assert any(line.startswith("  features.0 ") for line in lines)


def test_markdown_is_made_for_a_pull_request(capsys):
    out, _ = _report(capsys, str(EXAMPLES / "mobilenet_v2.py"), "--format", "markdown",
                     "--depth", "2", "--top", "3")
    assert out.startswith("### costmodel: MobileNetV2")
    assert "`x=1x3x224x224:float32`" in out
    assert "| MAdds " in out and "#### by module (depth 2)" in out
    assert "&nbsp;&nbsp;features.0 " in out
    assert "#### top 3 of" in out and "#### guidelines" in out and "**G101**" in out


def test_json_says_top_and_sort_do_not_apply(capsys):
    out, err = _report(capsys, *SHUFFLE, "--format", "json", "--top", "3", "--sort", "madds")
    assert "--top and --sort do not apply to --format json" in err
    assert len(json.loads(out)["layers"]) > 3


class Evil(nn.Module):
    def __init__(self):
        super().__init__()
        self.add_module("a|b\nc\x1b[31m", nn.Linear(4, 4))

    def forward(self, x):
        return getattr(self, "a|b\nc\x1b[31m")(x)


EvilName = type("Evil\x1b[2J|\n", (Evil,), {})


def test_names_with_control_characters_bars_and_newlines_are_escaped():
    r = costmodel.analyze(EvilName(), "1x4")
    for fmt in ("table", "markdown", "csv"):
        out = formats.render(r, fmt)
        assert "\x1b" not in out, fmt
        assert "a|b\nc" not in out, fmt
    md = formats.render(r, "markdown")
    assert "a\\|b\\nc\\x1b[31m" in md and "Evil\\x1b[2J\\|\\n" in md
    rows = list(csv.DictReader(io.StringIO(formats.render(r, "csv"))))
    assert rows[0]["module"] == "a|b\\nc\\x1b[31m"
    assert "a|b\\nc\\x1b[31m" in formats.render(r, "table")


def test_structure_heading_names_the_guideline(capsys):
    out, _ = _report(capsys, *SHUFFLE)
    assert "structure: fragmentation (ShuffleNet V2 G3)" in out


class Stem(nn.Module):
    """A stem conv on the RGB image and a body conv with the same 1:8 channel ratio."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 1)
        self.body = nn.Conv2d(24, 192, 1)

    def forward(self, x):
        return self.body(self.stem(x))


def test_g1_is_not_reported_on_a_stem_reading_the_image():
    found = {d.module for d in costmodel.analyze(Stem(), "1x3x56x56").guidelines
             if d.code == "G101"}
    # both are (sqrt(c1) - sqrt(c2))^2 / (c1 + c2) above the bound: 3->24 is 49%, 24->192 49%
    assert found == {"body"}


class Attention(nn.Module):
    """Self-attention with a gate: Q, K, V and gate branches off one input."""

    def __init__(self, d=64, heads=4):
        super().__init__()
        self.q, self.k, self.v, self.o, self.g = (nn.Linear(d, d) for _ in range(5))
        self.norm, self.heads = nn.LayerNorm(d), heads

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (f(x).view(b, t, self.heads, -1).transpose(1, 2) for f in (self.q, self.k,
                                                                              self.v))
        a = (q @ k.transpose(-1, -2) / 4).softmax(-1)
        y = (a @ v).transpose(1, 2).reshape(b, t, d)
        return self.norm(x + self.o(y) * torch.sigmoid(self.g(x)) + self.g(x).relu())


def test_g3_does_not_judge_attention_blocks_by_conv_block_norms():
    net = nn.Sequential(Attention(), Attention())
    blocks = [d for d in costmodel.analyze(net, "1x16x64").guidelines if d.code == "G301"]
    assert blocks == []


def test_train_mode_labels_per_layer_columns_forward_plus_backward(capsys):
    out, _ = _report(capsys, str(EXAMPLES / "mobilenet_v2.py"), "--mode", "train")
    assert "top 10 of" in out and "(per layer: forward + backward)" in out


def test_diff_header_shows_each_sides_args_and_inputs(capsys):
    spec = str(EXAMPLES / "mobilenet_v1.py")
    code = main(["diff", spec, spec, "--arg-b", "width_mult=0.5", "--input", "1x3x128x128",
                 "--format", "markdown", "--top", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "### costmodel diff"
    a = next(line for line in lines if line.startswith("- **A**"))
    b = next(line for line in lines if line.startswith("- **B**"))
    assert "--input 1x3x128x128" in a and "width_mult" not in a
    assert "--arg width_mult=0.5" in b and "--input 1x3x128x128" in b
    assert "| MAdds " in out and "#### layers" in out


def test_relu6_is_named_relu6():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.act, self.clamp = nn.ReLU6(), nn.Hardtanh()

        def forward(self, x):
            return torch.nn.functional.relu6(self.clamp(self.act(x)))

    ops = [layer.op for layer in costmodel.analyze(Net(), "1x8").layers]
    assert ops == ["relu6", "hardtanh", "relu6"]


def test_str_of_report_is_the_default_table():
    r = costmodel.analyze(Stem(), "1x3x56x56")
    assert str(r) == formats.render(r, "table")


def test_fft_linalg_special_ops_keep_their_public_names():
    from costmodel.ops.registry import printed_name

    assert printed_name(torch.fft.rfft) == "torch.fft.rfft"
    assert printed_name(torch.linalg.svd) == "torch.linalg.svd"
    assert printed_name(torch.special.xlogy) == "torch.special.xlogy"

    class SVD(nn.Module):
        def forward(self, x):
            return torch.linalg.svdvals(x)

    r = costmodel.analyze(SVD(), "1x8x8")
    assert r.totals.unsupported == ("torch.linalg.svdvals",)


@pytest.mark.parametrize("example", ["shufflenet_v2", "mobilenet_v2"])
def test_every_line_fits_an_80_column_terminal(example, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("COSTMODEL_PROFILE_DIR", str(tmp_path))   # the shipped profile only
    assert main(["report", str(EXAMPLES / f"{example}.py"), "--device", "laptop-cpu"]) == 0
    too_wide = [line for line in capsys.readouterr().out.splitlines() if len(line) > 80]
    assert too_wide == []
