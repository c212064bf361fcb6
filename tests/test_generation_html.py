"""`costmodel generate --format html`: a self-contained page with the per-token chart and the
bytes breakdown, its numbers the analysis's own, every user string escaped."""
from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

import costmodel
from costmodel.cli.main import main
from costmodel.render import generation_page

plotly = pytest.importorskip("plotly")
transformers = pytest.importorskip("transformers")

EVIL = "Dec<img src=1 onerror=\"window_pwned=1\">&'</script>"


def _init(self, d=32):
    nn.Module.__init__(self)
    self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)


def _forward(self, x, past_k, past_v):
    q, k, v = self.qkv(x).chunk(3, dim=-1)
    k, v = torch.cat([past_k, k], 1), torch.cat([past_v, v], 1)
    return self.out(torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v)


EvilDecoder = type(EVIL, (nn.Module,), {"__init__": _init, "forward": _forward})


def step(context, new, batch):
    return {"x": (batch, new, 32), "past_k": torch.empty(batch, context, 32),
            "past_v": torch.empty(batch, context, 32)}


@pytest.fixture(scope="module")
def gen():
    return costmodel.analyze_generation(EvilDecoder().eval(), prompt_len=6, new_tokens=200,
                                        batch=2, step=step)


@pytest.fixture(scope="module")
def page(gen):
    return generation_page.render(gen, "laptop-cpu")


def _figs(text):
    return json.loads(re.search(r"<script>const FIGS = (.*?);</script>", text, re.S).group(1))


def test_page_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+href=", page)
    assert not re.search(r"https?://(?!www\.w3\.org)", page.split("<script>const FIGS")[1])
    assert "plotly.js v" in page
    assert set(_figs(page)) == {"per_token", "bytes"}


def test_user_strings_are_escaped(page):
    assert EVIL not in page and "<img" not in page
    assert "Dec&lt;img src=1 onerror=&quot;window_pwned=1&quot;" in page
    assert page.count("</script>") == page.count("<script>")


def test_per_token_chart_is_the_closed_form_and_the_estimate(gen, page):
    fig = _figs(page)["per_token"]
    madds, mac, ms = fig["data"]
    contexts = [r.context for r in gen.curve(64)]
    assert madds["x"] == contexts and len(contexts) == 64
    assert contexts[0] == 6 and contexts[-1] == 205
    d, b = 32, 2   # qkv + q.k + p.v + out, per the written-out form of test_generation.py
    assert madds["y"] == [b * d * 3 * d + 2 * b * (c + 1) * d + b * d * d for c in contexts]
    assert mac["y"] == [gen.step_cost(c).mac_bytes for c in contexts]
    lat = gen.latency("laptop-cpu")
    assert ms["y"][0] == pytest.approx(lat.first_step.seconds * 1e3)
    assert ms["y"][-1] == pytest.approx(lat.last_step.seconds * 1e3)
    assert fig["layout"]["yaxis2"]["overlaying"] == "y"


def test_bytes_chart_is_the_peak_memory(gen, page):
    bars = _figs(page)["bytes"]["data"]
    mem = gen.peak_memory_bytes
    assert [bar["name"] for bar in bars] == ["weights", "kv cache", "activations"]
    for bar, key in zip(bars, ("weights", "kv_cache", "activations")):
        assert bar["x"] == ["prefill", "decode"]
        assert bar["y"] == [mem["prefill"][key], mem["decode"][key]]
    weights = (32 * 96 + 96 + 32 * 32 + 32) * 4
    assert bars[0]["y"] == [weights, weights]
    assert bars[1]["y"][1] == 2 * 2 * 206 * 32 * 4    # k and v, batch 2, 206 tokens, float32


def test_page_without_a_profile_has_no_time_axis(gen):
    fig = _figs(generation_page.render(gen))["per_token"]
    assert len(fig["data"]) == 2 and "yaxis2" not in fig["layout"]


LLM_FILE = """
import transformers
def build():
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=100))
"""


def test_cli_html(tmp_path, capsys):
    path, out = tmp_path / "llm.py", tmp_path / "gen.html"
    path.write_text(LLM_FILE)
    assert main(["generate", str(path), "--prompt", "16", "--new-tokens", "8", "--device",
                 "laptop-cpu", "--format", "html", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "time to first token" in text
    assert _figs(text)["per_token"]["data"][0]["x"] == list(range(16, 24))
