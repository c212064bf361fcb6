"""MoE models whose experts run as a Python loop over the experts that received tokens
(transformers' experts_implementation="eager", Switch Transformers, NLLB-MoE): analysed under
the assumed even routing of capture/routing.py, with a CM009 that says so. The total expert work
does not depend on the routing (every token visits k experts), so the totals are checked against
arithmetic written here, the grouped_mm path's totals, and FlopCounterMode / 2 on a real forward
(real routing; it counts each expert's matmuls)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import costmodel

transformers = pytest.importorskip("transformers")
B, S = 2, 8
T = B * S                                    # tokens


def oracle(model, **inputs) -> int:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    for p in model.parameters():
        p.requires_grad_(False)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, \
            torch.no_grad():
        model(**inputs)
    return counter.get_total_flops() // 2


def expert_madds(report) -> int:
    """MAdds of the calls made inside the `experts` modules."""
    return sum(c.cost.madds for node in report.graph for c in node.call_costs
               if ".experts" in f".{node.module}")


def routing_notes(report) -> list[str]:
    return [d.message for d in report.diagnostics
            if d.code == "CM009" and "router's choices" in d.message]


def _ids():
    torch.manual_seed(0)
    return torch.randint(0, 64, (B, S))


def _decoder(cls: str, impl: str, **config):
    cfg = getattr(transformers, cls.replace("ForCausalLM", "Config"))(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_experts_per_tok=2, **config)
    cfg._experts_implementation = impl
    torch.manual_seed(0)
    return getattr(transformers, cls)(cfg).eval()


def test_mixtral_eager_experts_loop():
    """Mixtral, 4 experts, top-2, expert intermediate 48: every layer's experts do T*2 rows of a
    gated up projection (32 -> 2*48) and a down projection (48 -> 32)."""
    report, eager = eager_loop_is_exact(
        lambda impl: _decoder("MixtralForCausalLM", impl, intermediate_size=48,
                              num_local_experts=4))
    # 16 tokens * top-2 / 4 experts
    assert "each expert gets 8 of the 32 rows" in routing_notes(report)[0]
    assert report.totals.params == sum(p.numel() for p in eager.parameters())


def eager_loop_is_exact(build):
    """Checks the eager experts loop of `build(impl)` (2 layers, 4 experts, top-2, a 32 -> 2*48
    gated up and 48 -> 32 down projection per expert) against arithmetic, the grouped_mm path
    and the oracle; returns (report, eager model)."""
    ids = _ids()
    eager = build("eager")
    report = costmodel.analyze(eager, ids)
    assert str(report.totals.status) == "complete"
    rows, layers = T * 2, 2
    assert expert_madds(report) == layers * (rows * 32 * 2 * 48 + rows * 48 * 32)
    notes = routing_notes(report)
    assert len(notes) == 1 and "evenly over its 4 experts" in notes[0]
    grouped = build("grouped_mm")
    grouped.load_state_dict(eager.state_dict())
    assert costmodel.analyze(grouped, ids).totals.madds == report.totals.madds
    assert report.totals.madds == oracle(eager, input_ids=ids)
    return report, eager


@pytest.mark.parametrize("cls, shared", [("Qwen2MoeForCausalLM", 40), ("Qwen3MoeForCausalLM", 0)])
def test_qwen_moe_eager_experts_loop(cls, shared):
    """Qwen2-MoE (with a shared expert, 32 -> 2*40 -> 32, and its 32 -> 1 gate on every token)
    and Qwen3-MoE: 4 experts, top-2, expert intermediate 24."""
    extra = {"shared_expert_intermediate_size": shared} if shared else {"head_dim": 8}
    ids = _ids()
    model = _decoder(cls, "eager", intermediate_size=48, num_experts=4,
                     moe_intermediate_size=24, **extra)
    report = costmodel.analyze(model, ids)
    assert str(report.totals.status) == "complete"
    rows, layers = T * 2, 2
    assert expert_madds(report) == layers * (rows * 32 * 2 * 24 + rows * 24 * 32)
    assert routing_notes(report)
    grouped = _decoder(cls, "grouped_mm", intermediate_size=48, num_experts=4,
                       moe_intermediate_size=24, **extra)
    assert costmodel.analyze(grouped, ids).totals.madds == report.totals.madds
    assert report.totals.madds == oracle(model, input_ids=ids)


def _switch(capacity: int):
    cfg = transformers.SwitchTransformersConfig(
        vocab_size=64, d_model=32, d_ff=48, d_kv=8, num_heads=4, num_layers=2,
        num_decoder_layers=2, num_experts=4, expert_capacity=capacity,
        num_sparse_encoder_layers=1, num_sparse_decoder_layers=1)
    torch.manual_seed(0)
    return transformers.SwitchTransformersModel(cfg).eval()


def test_switch_transformers_top1_loop_over_a_module_dict():
    """Switch Transformers (top-1 router, experts in a ModuleDict reached by f"expert_{idx}"),
    capacity 64 >= the tokens, so none is dropped: each of the 2 sparse layers (one in the
    encoder, one in the decoder) runs every token through one 32 -> 48 -> 32 expert."""
    ids = _ids()
    model = _switch(capacity=64)
    report = costmodel.analyze(model, kwargs={"input_ids": ids, "decoder_input_ids": ids})
    assert str(report.totals.status) == "complete"
    assert expert_madds(report) == 2 * T * (32 * 48 + 48 * 32)
    assert routing_notes(report)
    assert report.totals.madds == oracle(model, input_ids=ids, decoder_input_ids=ids)


def test_switch_transformers_capacity_caps_the_assumed_split():
    """Capacity 1 per expert and sequence: under the even routing each expert gets 8 / 4 = 2
    tokens of each sequence and keeps 1, so each sparse layer runs B * 4 rows (the routing is
    an assumption here; the model's own capacity rule is applied to it as the model applies it)."""
    ids = _ids()
    report = costmodel.analyze(_switch(capacity=1),
                               kwargs={"input_ids": ids, "decoder_input_ids": ids})
    assert expert_madds(report) == 2 * (B * 4) * (32 * 48 + 48 * 32)


def test_nllb_moe_top2_router_with_two_argmax():
    """NLLB-MoE's top-2 router takes two argmax (the second after masking the first choice): the
    assumed routing gives the second call a different expert. transformers 5's NllbMoeExperts
    then one-hots the router's (T, E) 0/1 top-1 mask with E classes (modeling_nllb_moe.py,
    `one_hot(router_mask, num_classes=self.num_experts)`), so its loop runs each token through
    expert_0 E-1 times and through expert_1 once: T*E rows of 32 -> 48 -> 32 per sparse layer
    (one in the encoder, one in the decoder), whatever the routing, as the oracle also counts."""
    cfg = transformers.NllbMoeConfig(
        vocab_size=64, d_model=32, encoder_ffn_dim=48, decoder_ffn_dim=48, encoder_layers=2,
        decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4, num_experts=4,
        expert_capacity=64, encoder_sparse_step=2, decoder_sparse_step=2)
    torch.manual_seed(0)
    model = transformers.NllbMoeModel(cfg).eval()
    ids = _ids()
    report = costmodel.analyze(model, kwargs={"input_ids": ids, "decoder_input_ids": ids})
    assert str(report.totals.status) == "complete"
    assert routing_notes(report)
    assert expert_madds(report) == 2 * (T * 4) * (32 * 48 + 48 * 32)
    assert report.totals.madds == oracle(model, input_ids=ids, decoder_input_ids=ids)


class ReadsTopK(nn.Module):
    """A top-k whose index is read outside any MoE block: no routing is assumed there."""

    def forward(self, x):
        idx = x.topk(1, dim=-1).indices
        return x[:, : int(idx[0, 0]) + 1]


def test_a_topk_read_outside_an_moe_block_still_stops():
    with pytest.raises(costmodel.AnalysisError, match="reads a tensor's value"):
        costmodel.analyze(ReadsTopK(), "2x8", capture="eager")


class LoopMoE(nn.Module):
    """A hand-written top-1 MoE block (`experts` is a ModuleList): rows per expert from a mask."""

    def __init__(self, h=8, e=4):
        super().__init__()
        self.router = nn.Linear(h, e, bias=False)
        self.experts = nn.ModuleList(nn.Linear(h, 16, bias=False) for _ in range(e))

    def forward(self, x):
        choice = self.router(x).argmax(-1)
        out = x.new_zeros(x.shape[0], 16)
        for i, expert in enumerate(self.experts):
            rows = (choice == i).nonzero().squeeze(-1)
            if rows.numel():
                out[rows] = expert(x[rows])
        return out


def test_hand_written_loop_with_uneven_split():
    """10 tokens over 4 experts, round robin: 3, 3, 2, 2 rows; the total, 10 rows of 8 x 16, is
    exact whatever the routing."""
    report = costmodel.analyze(LoopMoE(), "10x8")
    assert str(report.totals.status) == "complete"
    assert expert_madds(report) == 10 * 8 * 16
    rows = sorted(node.outputs[0].shape[0] for node in report.graph
                  if node.module.startswith("experts."))
    assert rows == [2, 2, 3, 3]
    assert "each expert gets 2 or 3 of the 10 rows" in routing_notes(report)[0]


def _deepseek_v4(impl: str):
    """DeepSeek-V4 with its first MoE layer hash-routed (a fixed token-id -> 2 expert-ids table,
    `tid2eid[input_ids]`) and its second top-k routed; 4 experts whose gated up projection is
    32 -> 2*48 and down projection 48 -> 32 (the experts take `intermediate_size`)."""
    cfg = transformers.DeepseekV4Config(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
        intermediate_size=48, mlp_layer_types=["hash_moe", "moe"])
    cfg._experts_implementation = impl
    torch.manual_seed(0)
    return transformers.DeepseekV4ForCausalLM(cfg).eval()


def test_deepseek_v4_hash_routing_reads_an_assumed_lookup():
    """The hash router's table comes from the checkpoint: the lookup's choices are assumed round
    robin like a router's, so the eager experts loop runs; every token still visits 2 experts,
    so the totals are exact (the oracle runs the real, all-zero table)."""
    if not hasattr(transformers, "DeepseekV4ForCausalLM"):
        pytest.skip("this transformers has no DeepSeek-V4")
    eager_loop_is_exact(_deepseek_v4)


def test_expert_count_of_an_moe_block():
    from costmodel.capture.routing import expert_count

    class Packed(nn.Module):           # experts as one 3-D tensor per projection
        def __init__(self):
            super().__init__()
            self.up = nn.Parameter(torch.empty(6, 16, 8))
            self.down = nn.Parameter(torch.empty(6, 8, 16))

    named = Packed()
    named.num_experts = 5                        # an attribute says it first
    assert expert_count({"experts": Packed()}) == 6
    assert expert_count({"experts": named}) == 5
    assert expert_count({"experts": nn.ModuleList(nn.Linear(2, 2) for _ in range(3))}) == 3
    assert expert_count({"router": nn.Linear(2, 2)}) is None
