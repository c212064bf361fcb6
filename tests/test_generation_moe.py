"""analyze_generation() on a Mixtral-style mixture of experts, transformers 5's default
`grouped_mm` experts path: prefill and decode MAdds against FlopCounterMode / 2 of the same real
step (MATH SDPA).

FlopCounterMode counts 0 for `torch._grouped_mm` (checked below), so the oracle runs the same model,
same weights and same cache with the *eager* experts implementation (a Python loop of per-expert
linears, which FlopCounterMode counts). With top-k routing every token visits exactly k experts,
so the expert MAdds do not depend on the routing; the grouped-matmul share is also written out as
arithmetic.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import costmodel

transformers = pytest.importorskip("transformers")

H, FF, LAYERS, HEADS, KV, VOCAB, E, K = 32, 48, 2, 4, 2, 64, 4, 2
PROMPT, NEW, BATCH = 7, 12, 2


@pytest.fixture(scope="module")
def mixtral():
    cfg = transformers.MixtralConfig(
        vocab_size=VOCAB, hidden_size=H, intermediate_size=FF, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV, num_local_experts=E,
        num_experts_per_tok=K)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.MixtralForCausalLM(cfg).eval()
    assert model.config._experts_implementation == "grouped_mm"   # transformers 5's default
    return model


def _run(model, ids, cache, experts):
    model.config._experts_implementation = experts
    try:
        with warnings.catch_warnings(), torch.no_grad(), sdpa_kernel(SDPBackend.MATH), \
                FlopCounterMode(display=False) as counter:
            warnings.simplefilter("ignore")
            kwargs = {"past_key_values": cache} if cache is not None else {}
            model(ids, use_cache=True, **kwargs)
    finally:
        model.config._experts_implementation = "grouped_mm"
    return counter.get_total_flops()


def oracle(model, context, new, experts="eager"):
    """FlopCounterMode / 2 of the real step: `context` random tokens fill the real cache first."""
    torch.manual_seed(1)
    cache = None
    if context:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cache = model(torch.randint(0, VOCAB, (BATCH, context)),
                          use_cache=True).past_key_values
    flops = _run(model, torch.randint(0, VOCAB, (BATCH, new)), cache, experts)
    assert flops % 2 == 0
    return flops // 2


def grouped(report) -> int:
    return sum(c.cost.madds for node in report.graph for c in node.call_costs
               if c.op == "grouped_mm")


def expert_madds(tokens: int) -> int:
    """Each token visits K experts: gated up projection H -> 2 FF, down projection FF -> H."""
    rows = tokens * K
    return LAYERS * (rows * H * 2 * FF + rows * FF * H)


def test_flop_counter_misses_grouped_mm(mixtral):
    """Why the oracle is the eager path: on grouped_mm FlopCounterMode misses the experts."""
    assert oracle(mixtral, 0, PROMPT, "grouped_mm") + expert_madds(BATCH * PROMPT) == oracle(
        mixtral, 0, PROMPT)


def test_mixtral_prefill_and_decode_equal_the_oracle(mixtral):
    g = costmodel.analyze_generation(mixtral, prompt_len=PROMPT, new_tokens=NEW, batch=BATCH)
    assert g.status == "complete"
    assert g.prefill.totals.madds == oracle(mixtral, 0, PROMPT)
    assert grouped(g.prefill) == expert_madds(BATCH * PROMPT)
    for c in (1, 3, PROMPT, PROMPT + 5, 40):
        step = g.decode(c)
        assert step.totals.status == "complete"
        assert step.totals.madds == oracle(mixtral, c, 1), c
        assert grouped(step) == expert_madds(BATCH)
        row = g.step_cost(c)
        assert (row.madds, row.flops, row.mac_bytes) == (
            step.totals.madds, step.totals.flops, step.totals.mac_bytes), c
    # attention grows by 2 matmuls x batch x layers x heads x head_dim per cached token
    slope = 2 * BATCH * LAYERS * HEADS * (H // HEADS)
    assert g.step_cost(41).madds - g.step_cost(40).madds == slope
    assert g.kv_cache_bytes(40) == 2 * LAYERS * BATCH * KV * (H // HEADS) * 4 * 40


def test_mixtral_active_parameters(mixtral):
    """Per token: everything but the routed experts in full, and K of the E experts."""
    g = costmodel.analyze_generation(mixtral, prompt_len=PROMPT, new_tokens=2)
    total = sum(p.numel() for p in mixtral.parameters())
    experts = LAYERS * E * (2 * FF * H + FF * H)
    assert g.params == total
    assert g.params_active == total - experts + LAYERS * K * (2 * FF * H + FF * H)
