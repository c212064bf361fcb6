"""analyze_generation(): prefill and decode steps against FlopCounterMode on the same real step.

The oracle runs the real model (small configs, random weights, CPU): a real prefill of `context`
random tokens fills the model's own cache, then the step under test runs under FlopCounterMode and
the MATH SDPA backend (so attention is counted as the matmuls it is). MAdds = FLOPs / 2. KV-cache
bytes are checked against the real cache's tensors and against 2 x layers x kv_heads x head_dim x
itemsize x batch x cached tokens written out here.
"""
from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import costmodel
from costmodel.cli.main import main
from costmodel.errors import AnalysisError

transformers = pytest.importorskip("transformers")

SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=100, pad_token_id=0)
WINDOW = 12


def configs():
    t = transformers
    return {
        "gpt2": (t.GPT2LMHeadModel, t.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=100)),
        "llama-gqa": (t.LlamaForCausalLM, t.LlamaConfig(**SMALL)),
        "llama-mqa": (t.LlamaForCausalLM, t.LlamaConfig(**{**SMALL, "num_key_value_heads": 1})),
        "mistral-sliding": (t.MistralForCausalLM, t.MistralConfig(**SMALL, sliding_window=WINDOW)),
        "qwen2": (t.Qwen2ForCausalLM, t.Qwen2Config(**SMALL)),
        "phi3": (t.Phi3ForCausalLM, t.Phi3Config(**SMALL)),
        "deepseek-v3-mla": (t.DeepseekV3ForCausalLM, t.DeepseekV3Config(
            **{**SMALL, "num_key_value_heads": 4}, moe_intermediate_size=32,
            first_k_dense_replace=2, q_lora_rank=32, kv_lora_rank=16, qk_rope_head_dim=8,
            qk_nope_head_dim=16, v_head_dim=16)),
        "gemma2": (t.Gemma2ForCausalLM, t.Gemma2Config(**SMALL, head_dim=16,
                                                        sliding_window=WINDOW)),
    }


def build(name):
    cls, cfg = configs()[name]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(cfg).eval()


def real_cache(model, batch, context):
    if context == 0:
        return None
    with torch.no_grad():
        return model(torch.randint(0, 100, (batch, context)), use_cache=True).past_key_values


def cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers
               for t in (layer.keys, layer.values))


def oracle_madds(model, batch, context, new) -> int:
    cache = real_cache(model, batch, context)
    kwargs = {"past_key_values": cache} if cache is not None else {}
    with warnings.catch_warnings(), torch.no_grad(), sdpa_kernel(SDPBackend.MATH), \
            FlopCounterMode(display=False) as counter:
        warnings.simplefilter("ignore")
        model(torch.randint(0, 100, (batch, new)), use_cache=True, **kwargs)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


PROMPT, NEW, BATCH = 9, 20, 2
CONTEXTS = (1, 4, 9, WINDOW - 2, WINDOW - 1, WINDOW, WINDOW + 7, 40)


@pytest.fixture(scope="module", params=sorted(configs()))
def case(request):
    model = build(request.param)
    return request.param, model, costmodel.analyze_generation(
        model, prompt_len=PROMPT, new_tokens=NEW, batch=BATCH)


def test_prefill_equals_flop_counter(case):
    name, model, g = case
    assert g.prefill.totals.status == "complete", g.prefill.totals.unsupported
    assert g.prefill.totals.madds == oracle_madds(model, BATCH, 0, PROMPT)


def test_decode_steps_equal_flop_counter_and_the_closed_form(case):
    """Every context: the captured step equals the oracle, and the closed form (fitted from
    two captures per segment) equals the captured step in MAdds, FLOPs and MAC bytes."""
    name, model, g = case
    for c in CONTEXTS:
        report = g.decode(c)
        assert report.totals.status == "complete"
        assert report.totals.madds == oracle_madds(model, BATCH, c, 1), (name, c)
        row = g.step_cost(c)
        t = report.totals
        assert (row.madds, row.flops, row.mac_bytes) == (t.madds, t.flops, t.mac_bytes), (name, c)


def test_kv_cache_bytes_are_the_real_cache(case):
    name, model, g = case
    cfg = model.config
    heads = getattr(cfg, "num_attention_heads", None) or cfg.n_head
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    width = getattr(cfg, "hidden_size", None) or cfg.n_embd
    head_dim = getattr(cfg, "head_dim", None) or width // heads
    layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layer
    if name == "deepseek-v3-mla":   # MLA keeps the latent (16) and the rotary key (8), 1 head
        for c in CONTEXTS:
            assert g.kv_cache_bytes(c) == layers * BATCH * (16 + 8) * 4 * c
            assert g.kv_cache_bytes(c) == cache_bytes(real_cache(model, BATCH, c))
        return
    for c in CONTEXTS:
        kept = []   # tokens each layer keeps: a sliding-window layer keeps the last window - 1
        for i in range(layers):
            sliding = name == "mistral-sliding" or (name == "gemma2" and i % 2 == 0)
            kept.append(min(c, WINDOW - 1) if sliding else c)
        expected = sum(2 * BATCH * kv_heads * head_dim * 4 * k for k in kept)
        assert g.kv_cache_bytes(c) == expected, (name, c)
        assert g.kv_cache_bytes(c) == cache_bytes(real_cache(model, BATCH, c)), (name, c)


def test_gemma2_alternates_sliding_layers():
    """Written out: Gemma 2's layer 0 slides, layer 1 is global (the test above relies on it)."""
    cfg = configs()["gemma2"][1]
    assert list(cfg.layer_types) == ["sliding_attention", "full_attention"]


def test_decode_attention_is_the_rectangle():
    """One more cached token adds, per layer, 1 x heads x head_dim MAdds to q.k and as many to
    p.v, per sequence (the new token against every cached token, GQA or not)."""
    model = build("llama-gqa")
    g = costmodel.analyze_generation(model, prompt_len=5, new_tokens=3, batch=3)
    slope = 2 * 3 * 2 * 4 * 16            # 2 matmuls x batch x layers x heads x head_dim
    for c in (5, 17, 60):
        assert g.decode(c + 1).totals.madds - g.decode(c).totals.madds == slope


def test_per_token_and_totals_without_a_capture_per_step():
    model = build("llama-gqa")
    g = costmodel.analyze_generation(model, prompt_len=8, new_tokens=10_000)
    rows = g.per_token
    assert len(rows) == 10_000 and rows[0].context == 8 and rows[-1].context == 10_007
    assert len(g._reports) <= 2               # two decode captures fit the whole curve
    base = oracle_madds(model, 1, 8, 1)
    slope = 2 * 1 * 2 * 4 * 16
    steps = sum(base + slope * (c - 8) for c in range(8, 10_008))
    assert g.totals["madds"] == oracle_madds(model, 1, 0, 8) + steps
    assert rows[-1].madds == base + slope * 9_999
    assert g.kv_cache_bytes(10_008) == 2 * 2 * 2 * 16 * 4 * 10_008


def test_dtype_halves_kv_and_weight_bytes():
    model = build("llama-gqa")
    g32 = costmodel.analyze_generation(model, prompt_len=4, new_tokens=2)
    g16 = costmodel.analyze_generation(model, prompt_len=4, new_tokens=2, dtype="bfloat16")
    assert g16.kv_cache_bytes(30) == 2 * 2 * 2 * 16 * 2 * 30
    assert 2 * g16.kv_cache_bytes(30) == g32.kv_cache_bytes(30)
    n = sum(p.numel() for p in model.parameters())
    assert g16.peak_memory_bytes["decode"]["weights"] == 2 * n
    assert g32.peak_memory_bytes["decode"]["weights"] == 4 * n


def test_params_memory_and_latency():
    model = build("llama-gqa")
    g = costmodel.analyze_generation(model, prompt_len=16, new_tokens=8)
    n = sum(p.numel() for p in model.parameters())
    assert g.params == g.params_active == n      # dense: every parameter works on every token
    mem = g.peak_memory_bytes
    assert mem["prefill"]["kv_cache"] == 2 * 2 * 2 * 16 * 4 * 16
    assert mem["decode"]["kv_cache"] == 2 * 2 * 2 * 16 * 4 * 24
    for phase in mem.values():
        assert phase["activations"] > 0
        assert phase["total"] == phase["weights"] + phase["kv_cache"] + phase["activations"]
    # the largest live set of the prefill at least holds the logits of the prompt
    assert mem["prefill"]["activations"] >= 16 * 100 * 4
    lat = g.latency("laptop-cpu")
    est = costmodel.latency.estimate
    assert lat.ttft.seconds == est(g.prefill, "laptop-cpu").total_s
    first, last = est(g.decode(16), "laptop-cpu").total_s, est(g.decode(23), "laptop-cpu").total_s
    assert (lat.first_step.seconds, lat.last_step.seconds) == (first, last)
    assert math.isclose(lat.tokens_per_s, 2 / (first + last))
    interval = est(g.prefill, "laptop-cpu").interval()
    assert lat.ttft.interval == interval and interval[0] <= lat.ttft.seconds <= interval[1]
    low, high = lat.tokens_per_s_interval
    assert low <= lat.tokens_per_s <= high
    assert lat.bound_decode == "memory"


class TinyDecoder(nn.Module):
    """A plain PyTorch one-head attention layer that takes its cache as tensors."""

    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.d = d
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x, past_k, past_v):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        k, v = torch.cat([past_k, k], 1), torch.cat([past_v, v], 1)
        att = torch.softmax(q @ k.transpose(1, 2) / self.d ** 0.5, dim=-1)
        return self.out(att @ v), k, v


def tiny_step(context, new, batch):
    d = 32
    return {"x": (batch, new, d), "past_k": torch.empty(batch, context, d),
            "past_v": torch.empty(batch, context, d)}


def test_plain_pytorch_through_the_adapter():
    model = TinyDecoder().eval()
    g = costmodel.analyze_generation(model, prompt_len=6, new_tokens=5, batch=2, step=tiny_step)
    d, b = 32, 2

    def written(c, n):   # qkv + q.k + p.v + out
        return b * n * d * 3 * d + 2 * b * n * (c + n) * d + b * n * d * d

    def oracle(c, n):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*(torch.randn(v) if isinstance(v, tuple) else torch.randn(v.shape)
                    for v in tiny_step(c, n, b).values()))
        return counter.get_total_flops() // 2

    assert g.prefill.totals.madds == written(0, 6) == oracle(0, 6)
    for c in (6, 9, 31):
        assert g.decode(c).totals.madds == written(c, 1) == oracle(c, 1)
        assert g.step_cost(c).madds == written(c, 1)
        assert g.kv_cache_bytes(c) == 2 * b * c * d * 4


def test_bad_input_is_a_clear_error():
    model = build("llama-gqa")
    with pytest.raises(ValueError, match="prompt_len"):
        costmodel.analyze_generation(model, prompt_len=0, new_tokens=4)
    with pytest.raises(AnalysisError, match="step="):
        costmodel.analyze_generation(TinyDecoder(), prompt_len=4, new_tokens=4)


LLM_FILE = """
import transformers
def build():
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=100))
"""


def test_cli_generate(tmp_path, capsys):
    path = tmp_path / "llm.py"
    path.write_text(LLM_FILE)
    assert main(["generate", str(path), "--prompt", "16", "--new-tokens", "8",
                 "--device", "laptop-cpu"]) == 0
    text = capsys.readouterr().out
    assert "prefill" in text and "time to first token" in text and "decode @ 23" in text
    assert main(["generate", str(path), "--prompt", "16", "--new-tokens", "8", "--batch", "2",
                 "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kv_cache_bytes"] == 2 * 2 * 2 * 16 * 4 * 24 * 2
    assert data["status"] == "complete"
    assert data["per_token"][0]["context"] == 16 and data["per_token"][-1]["context"] == 23
    assert main(["generate", str(path), "--prompt", "16", "--new-tokens", "8",
                 "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("|---|") for line in lines) == 3   # phases, curve, memory
    for bad in (["--prompt", "0", "--new-tokens", "8"],
                ["--prompt", "4", "--new-tokens", "8", "--dtype", "float7"],
                ["--prompt", "4", "--new-tokens", "8", "--device", "no-such-device"]):
        assert main(["generate", str(path), *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("costmodel: error:") and err.count("\n") == 1


SEQ2SEQ = {
    "bart": lambda: transformers.BartForConditionalGeneration(transformers.BartConfig(
        d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=100,
        max_position_embeddings=128)),
    "t5": lambda: transformers.T5ForConditionalGeneration(transformers.T5Config(
        d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4,
        vocab_size=100, decoder_start_token_id=0)),
}


@pytest.mark.parametrize("name", sorted(SEQ2SEQ))
def test_encoder_decoder(name):
    """The prefill is the encoder over the prompt plus the decoder's first token; a decode step
    is the decoder over one token with `context` decoder tokens in its self-attention cache and
    the prompt's keys/values in its cross-attention cache. Oracle: a real run that fills the
    EncoderDecoderCache, then the step under FlopCounterMode (MATH SDPA)."""
    torch.manual_seed(0)
    model = SEQ2SEQ[name]().eval()
    prompt, batch = 7, 2
    g = costmodel.analyze_generation(model, prompt_len=prompt, new_tokens=20, batch=batch)
    ids = torch.randint(3, 100, (batch, prompt))

    def oracle(c):
        with warnings.catch_warnings(), torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
            warnings.simplefilter("ignore")
            if c == 0:
                with FlopCounterMode(display=False) as counter:
                    model(input_ids=ids, decoder_input_ids=ids[:, :1], use_cache=True)
                return counter.get_total_flops() // 2, 0
            out = model(input_ids=ids, decoder_input_ids=torch.randint(3, 100, (batch, c)),
                        use_cache=True)
            cache = out.past_key_values
            kv = sum(cache_bytes(part) for part in (cache.self_attention_cache,
                                                    cache.cross_attention_cache))
            with FlopCounterMode(display=False) as counter:
                model(encoder_outputs=(out.encoder_last_hidden_state,),
                      decoder_input_ids=ids[:, :1], past_key_values=cache, use_cache=True)
            return counter.get_total_flops() // 2, kv

    assert g.prefill.totals.madds == oracle(0)[0]
    assert g.first_context == 1 and g.per_token[-1].context == 20
    for c in (1, 2, 5, 13, 30):
        madds, kv = oracle(c)
        assert g.decode(c).totals.madds == madds == g.step_cost(c).madds
        # self-attention keeps c decoder tokens, cross-attention the prompt: 2 layers, 4 heads
        assert g.kv_cache_bytes(c) == kv == 2 * 2 * batch * 4 * 16 * 4 * (c + prompt)


def test_mixtral_8x7b_active_parameters():
    """Mixtral-8x7B's shape (meta weights): about 46.7B parameters, 12.9B active (Mixtral of
    Experts, arXiv:2401.04088), written out from the config: 8 experts, top-2 routing."""
    from costmodel.generation import active_parameters

    d, ff, layers, heads, kv, vocab, experts, top_k = 4096, 14336, 32, 32, 8, 32000, 8, 2
    cfg = transformers.MixtralConfig(hidden_size=d, intermediate_size=ff, num_hidden_layers=layers,
                                     num_attention_heads=heads, num_key_value_heads=kv,
                                     vocab_size=vocab, num_local_experts=experts,
                                     num_experts_per_tok=top_k)
    with torch.device("meta"):
        model = transformers.MixtralForCausalLM(cfg)
    hd = d // heads
    attention = 2 * d * d + 2 * d * kv * hd
    expert = 3 * d * ff                       # gate, up and down projections
    shared = layers * (attention + experts * d + 2 * d) + 2 * vocab * d + d   # router, norms
    total = shared + layers * experts * expert
    active = shared + layers * top_k * expert
    assert sum(p.numel() for p in model.parameters()) == total
    assert active_parameters(model) == active
    assert round(total / 1e9, 1) == 46.7 and round(active / 1e9, 1) == 12.9
    assert active_parameters(build("llama-gqa")) == sum(
        p.numel() for p in build("llama-gqa").parameters())


def test_the_model_is_untouched():
    model = build("llama-gqa")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attributes = set(vars(model))
    g = costmodel.analyze_generation(model, prompt_len=4, new_tokens=3, batch=2)
    assert g.peak_memory_bytes["decode"]["kv_cache"] > 0
    assert set(vars(model)) == attributes and not model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) and after[k].device.type == "cpu" for k in before)


def test_piecewise_forms_written_out():
    """The pure closed form: segments split where a cache stops growing, two points per segment,
    exact integers, and a form that is not integral raises instead of rounding."""
    from costmodel.analysis.generation import Piecewise, segment_bounds

    assert segment_bounds(1, [15]) == [(1, 14), (15, None)]
    assert segment_bounds(1, [7, 15, 0]) == [(1, 6), (7, 14), (15, None)]
    seen = []

    def cost(c):   # 100 + 3 c up to a window of 10 tokens, then flat (plus 1 at the break)
        seen.append(c)
        return (100 + 3 * min(c, 10) + (c >= 10),)

    form = Piecewise.fit(1, [10], cost)
    assert len(seen) == 4
    assert [form(c)[0] for c in (1, 5, 9, 10, 11, 500)] == [103, 115, 127, 131, 131, 131]
    with pytest.raises(ArithmeticError):
        Piecewise.fit(1, [], lambda c: (2 ** c,))(2)   # fitted at 1 and 10: slope 1022/9


def test_sliding_window_costs_few_captures():
    g = costmodel.analyze_generation(build("mistral-sliding"), prompt_len=4, new_tokens=5_000)
    assert len(g.per_token) == 5_000 and len(g._reports) <= 4
    assert g.per_token[-1].kv_cache_bytes == 2 * 2 * 2 * 16 * 4 * (WINDOW - 1)
