"""Capture gaps (issue 13, section 2): models whose own checks, hints or constants used to stop
the eager capture. Expected numbers come from FlopCounterMode / 2 on a real forward of the same
small model under the MATH SDPA backend (on CPU it does not count the fused SDPA kernel), or from
arithmetic written here."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import costmodel
from costmodel.core.vocab import CaptureKind, Status


def oracle(model: nn.Module, *args, grad: bool = False, **kwargs) -> int:
    """FlopCounterMode / 2 on a real forward (grad=True keeps torch.nn off its fused fast path,
    which FlopCounterMode does not see)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, \
            torch.set_grad_enabled(grad):
        model(*args, **kwargs)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


def eager(model: nn.Module, *inputs, **kwargs):
    report = costmodel.analyze(model, *inputs, capture="eager", **kwargs)
    assert report.capture == CaptureKind.EAGER
    return report


# ---- 1. transformers' own value checks -----------------------------------------------------

transformers = pytest.importorskip("transformers")

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             vocab_size=100, max_position_embeddings=64)
SEQ2SEQ = dict(vocab_size=100, d_model=32, encoder_layers=1, decoder_layers=1,
               encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
               decoder_ffn_dim=64, max_position_embeddings=64)


def _detr():
    backbone = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32],
                                         depths=[1, 1, 1, 1], out_features=["stage4"])
    return transformers.DetrModel(transformers.DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone,
        num_queries=10, **{k: v for k, v in SEQ2SEQ.items()
                           if k not in ("vocab_size", "max_position_embeddings")}))


# what stopped each: warn_if_padding_and_no_attention_mask (`pad_token_id in input_ids[:, [-1,
# 0]]`), _ignore_causal_mask_sdpa or _ignore_bidirectional_mask_sdpa (`padding_mask.all()`)
HF = {
    "deberta": lambda: transformers.DebertaModel(transformers.DebertaConfig(**SMALL)),
    "roformer": lambda: transformers.RoFormerModel(
        transformers.RoFormerConfig(**SMALL, embedding_size=32)),
    "convbert": lambda: transformers.ConvBertModel(
        transformers.ConvBertConfig(**SMALL, embedding_size=32)),
    "biogpt": lambda: transformers.BioGptModel(transformers.BioGptConfig(**SMALL)),
    "bart": lambda: transformers.BartModel(transformers.BartConfig(**SEQ2SEQ)),
    "detr": _detr,
}


@pytest.mark.parametrize("name", sorted(HF))
def test_transformers_value_checks_do_not_stop_the_capture(name):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HF[name]().eval()
    if name == "detr":
        x, spec = torch.randn(1, 3, 64, 64), "1x3x64x64"
    else:   # token 1 is not pad_token_id (0), so the real forward's own check stays quiet
        x, spec = torch.ones(2, 16, dtype=torch.int64), "2x16:int64"
    expected = oracle(model, x)
    report = eager(model, spec)
    assert report.totals.status == Status.COMPLETE
    assert report.totals.madds == expected
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert not torch.compiler.is_compiling()   # the trace flag is put back


# ---- 2. torch._check* are compiler hints ----------------------------------------------------

class Checked(nn.Module):
    """LLaVA / PaliGemma's form: torch._check_tensor_all_with on a tensor condition."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        torch._check_tensor_all_with(ValueError, x.abs() >= 0, lambda: "negative")
        torch._check_tensor_all(torch.isfinite(x))
        return self.fc(x)


def test_torch_check_hints_do_not_stop_the_capture():
    report = eager(Checked(), "3x8")
    assert report.totals.madds == 3 * 8 * 4
    with pytest.raises(ValueError):   # outside the capture the hint is torch's own again
        torch._check_tensor_all_with(ValueError, torch.tensor([False]), lambda: "x")


# ---- 5. nn.Transformer* with a mask, torch.distributions --------------------------------------

def test_transformer_encoder_with_a_mask():
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2).eval()
    x, mask = torch.randn(1, 10, 16), torch.randn(10, 10)
    expected = oracle(enc, x, mask=mask, grad=True)
    # per layer: q, k, v, out projections 4*10*16*16, scores and values 2*10*10*16, FFN
    # 2*10*16*32
    assert expected == 2 * (4 * 10 * 16 * 16 + 2 * 10 * 10 * 16 + 2 * 10 * 16 * 32)
    report = eager(enc, "1x10x16", kwargs={"mask": "10x10"})
    assert report.totals.madds == expected


def test_transformer_with_masks_and_a_causal_constant():
    torch.manual_seed(0)
    model = nn.Transformer(16, 2, 1, 1, 32, batch_first=True).eval()
    src, tgt = torch.randn(1, 10, 16), torch.randn(1, 6, 16)
    causal = nn.Transformer.generate_square_subsequent_mask(6)
    expected = oracle(model, src, tgt, src_mask=torch.zeros(10, 10), tgt_mask=causal, grad=True)
    report = eager(model, "1x10x16", "1x6x16", kwargs={"src_mask": "10x10", "tgt_mask": "6x6"})
    assert report.totals.madds == expected


class Gaussian(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 16)

    def forward(self, x):
        mu, log_sd = self.fc(x).chunk(2, -1)
        return torch.distributions.Normal(mu, log_sd.exp()).rsample()


def test_distributions_with_default_validation():
    default = torch.distributions.Distribution._validate_args
    report = eager(Gaussian(), "2x8")
    assert report.totals.madds == 2 * 8 * 16
    assert torch.distributions.Distribution._validate_args == default
