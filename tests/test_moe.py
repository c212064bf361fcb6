"""Mixture of Experts: torch._grouped_mm in float32 (its meta kernel refuses it), its MAdds from
the total rows, and active parameters per token against published counts."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import costmodel

H, FF, E, K = 16, 24, 4, 2      # hidden, expert intermediate, experts, top-k


def grouped_madds(report) -> int:
    return sum(c.cost.madds for node in report.graph for c in node.call_costs
               if c.op == "grouped_mm")


class GroupedExperts(nn.Module):
    """A faithful miniature of transformers 5's `grouped_mm_experts_forward` (integrations/moe.py):
    top-k routing, tokens sorted by expert, offsets from histc + cumsum, a gated up projection and
    a down projection as grouped matmuls over every expert's weight, weighted and summed back."""

    def __init__(self):
        super().__init__()
        self.router = nn.Linear(H, E, bias=False)
        self.gate_up_proj = nn.Parameter(torch.randn(E, 2 * FF, H) * 0.1)
        self.down_proj = nn.Parameter(torch.randn(E, H, FF) * 0.1)

    def forward(self, x):
        tokens = x.reshape(-1, H)
        weights, idx = torch.topk(self.router(tokens).softmax(-1), K, dim=-1)
        expert_ids, perm = torch.sort(idx.reshape(-1))
        chosen = tokens[perm // K]
        counts = torch.histc(expert_ids.float(), bins=E, min=0, max=E - 1)
        offsets = torch.cumsum(counts, dim=0, dtype=torch.int32)
        gate, up = torch._grouped_mm(chosen, self.gate_up_proj.transpose(-2, -1),
                                     offs=offsets).chunk(2, dim=-1)
        out = F.grouped_mm(F.silu(gate) * up, self.down_proj.transpose(-2, -1), offs=offsets)
        out = out * weights.reshape(-1)[perm].unsqueeze(-1)
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(perm.numel())
        return out[inv].view(-1, K, H).sum(1).view(x.shape)


def test_grouped_mm_miniature_float32_is_complete_and_exact():
    """Every token visits K experts, so the grouped matmuls do T*K rows whatever the split:
    T*K * H * 2I (up) + T*K * FF * H (down)."""
    model = GroupedExperts().eval()
    x = torch.randn(2, 5, H)
    assert model(x).shape == x.shape                     # the miniature runs for real, in float32
    report = costmodel.analyze(model, "2x5x16")
    rows = 2 * 5 * K
    assert str(report.totals.status) == "complete"
    assert grouped_madds(report) == rows * H * 2 * FF + rows * FF * H
    assert report.totals.madds == 2 * 5 * H * E + rows * H * 2 * FF + rows * FF * H
    assert report.totals.params == H * E + E * 2 * FF * H + E * H * FF


@pytest.mark.parametrize("a, b, offs, madds", [
    ((12, 8), (3, 8, 16), 3, 12 * 8 * 16),             # MoE forward: rows x K x N over groups
    ((3, 5, 8), (3, 8, 16), None, 3 * 5 * 8 * 16),     # batched
    ((12, 8), (8, 16), 4, 12 * 8 * 16),                # K split into 4 groups (weight gradient)
    ((3, 12, 8), (8, 16), 3, 12 * 8 * 16),             # N split into 3 column groups
])
def test_grouped_mm_forms(a, b, offs, madds):
    class M(nn.Module):
        def forward(self, x, w):
            o = None if offs is None else torch.arange(1, offs + 1, dtype=torch.int32) * 2
            return torch._grouped_mm(x, w, offs=o)

    report = costmodel.analyze(M(), "x".join(map(str, a)), "x".join(map(str, b)))
    assert str(report.totals.status) == "complete"
    assert report.totals.madds == madds


def _tiny_mixtral():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.MixtralConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2)
    torch.manual_seed(0)
    return transformers.MixtralForCausalLM(cfg).eval()


def test_real_mixtral_grouped_mm_matches_the_eager_experts_oracle():
    """transformers 5's Mixtral with experts_implementation="grouped_mm", in float32. The oracle:
    FlopCounterMode / 2 (MATH SDPA) on a real forward of the same model with the *eager* experts,
    whose per-expert matmuls FlopCounterMode counts (it counts 0 for _grouped_mm); with top-k
    routing the total is the same whatever the routing."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model = _tiny_mixtral()
    ids = torch.randint(0, 64, (1, 8))
    model.config._experts_implementation = "eager"
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(ids)
    model.config._experts_implementation = "grouped_mm"
    report = costmodel.analyze(model, ids)
    assert str(report.totals.status) == "complete"
    assert report.totals.madds == counter.get_total_flops() // 2
    rows, layers = 8 * 2, 2
    assert grouped_madds(report) == layers * (rows * 32 * 2 * 48 + rows * 48 * 32)
    assert report.totals.params == sum(p.numel() for p in model.parameters())


def test_active_params_of_a_dense_model_is_the_total():
    report = costmodel.analyze(nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 4)),
                               torch.zeros(2, 3, dtype=torch.long))
    active = costmodel.active_params(report)
    assert active.active == active.total == 10 * 8 + 8 * 4 + 4 and active.tokens == 6


def test_active_params_of_the_miniature():
    report = costmodel.analyze(GroupedExperts(), "2x5x16")
    active = costmodel.active_params(report, tokens=10)
    experts = E * 2 * FF * H + E * H * FF
    assert active.expert == experts
    assert active.active == H * E + K * (2 * FF * H + H * FF)
    with pytest.raises(costmodel.AnalysisError, match="tokens"):
        costmodel.active_params(report)                  # float input: tokens must be given


def _published(cls_name: str, **config):
    transformers = pytest.importorskip("transformers")
    cfg = getattr(transformers, cls_name.replace("ForCausalLM", "Config"))(**config)
    cfg._experts_implementation = "grouped_mm"
    with torch.device("meta"):
        model = getattr(transformers, cls_name)(cfg).eval()
    return costmodel.active_params(costmodel.analyze(model, torch.zeros(1, 16, dtype=torch.long)))


def test_active_params_mixtral_8x7b():
    """Mixtral of Experts (Jiang et al., 2024, arXiv:2401.04088) and the Mistral AI announcement
    (mistral.ai/news/mixtral-of-experts): 46.7B total parameters, 12.9B used per token.
    MixtralConfig's defaults are Mixtral-8x7B's (hidden 4096, 32 layers, 8 experts, top-2)."""
    active = _published("MixtralForCausalLM")
    assert round(active.total / 1e9, 1) == 46.7
    assert round(active.active / 1e9, 1) == 12.9


def test_active_params_qwen15_moe_a27b():
    """Qwen1.5-MoE-A2.7B (Qwen team blog, "Qwen1.5-MoE: Matching 7B Model Performance with 1/3
    Activated Parameters", 2024; the model card): 14.3B total, 2.7B activated. Its config.json:
    hidden 2048, 24 layers, 16 heads, 60 experts, top-4, expert intermediate 1408, shared expert
    intermediate 5632, vocab 151936, untied embeddings."""
    active = _published("Qwen2MoeForCausalLM", vocab_size=151936, hidden_size=2048,
                        intermediate_size=5632, num_hidden_layers=24, num_attention_heads=16,
                        num_key_value_heads=16, num_experts=60, num_experts_per_tok=4,
                        moe_intermediate_size=1408, shared_expert_intermediate_size=5632,
                        tie_word_embeddings=False)
    assert round(active.total / 1e9, 1) == 14.3
    assert round(active.active / 1e9, 1) == 2.7


def test_grouped_mm_training_mode():
    """Backward of a grouped matmul: grad-input and grad-weight, each the forward's MAdds."""
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 8, 16))

        def forward(self, x):
            offs = torch.tensor([4, 8, 12], dtype=torch.int32)
            return torch._grouped_mm(x, self.w, offs=offs)

    report = costmodel.analyze(M(), "12x8", mode="train")
    assert report.train.status == "complete"
    assert report.train.backward.madds == 12 * 8 * 16            # grad-weight (x needs none)
