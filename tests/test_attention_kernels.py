"""fp8 matmul (torch._scaled_mm), the fused attention kernels called directly
(torch.ops.aten._flash_attention_forward, ...), and variable-length attention
(torch.nn.attention.varlen.varlen_attn, an upper bound with CM009). Expected numbers are
arithmetic written here, or FlopCounterMode / 2 where it counts the op (the CPU flash kernel)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import costmodel

B, L, H, E = 2, 8, 4, 16


def calls(report, op: str):
    return [c for layer in report.layers for c in layer.calls if c.op == op]


class ScaledMM(nn.Module):
    """An fp8 linear: x (M, K) fp8 x w^T (K, N) fp8, per-tensor scales, bfloat16 output."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(64, 32).to(torch.float8_e4m3fn), requires_grad=False)
        self.register_buffer("scale", torch.ones(()))

    def forward(self, x):
        return torch._scaled_mm(x, self.w.t(), self.scale, self.scale, out_dtype=torch.bfloat16)


def test_scaled_mm_fp8():
    model = ScaledMM()
    x = torch.zeros(16, 32).to(torch.float8_e4m3fn)
    assert model(x).shape == (16, 64)                     # it runs for real on this CPU
    report = costmodel.analyze(model, "16x32:float8_e4m3fn")
    assert str(report.totals.status) == "complete"
    (call,) = calls(report, "scaled_mm")
    assert call.cost.madds == 16 * 32 * 64
    assert call.cost.flops == 2 * 16 * 32 * 64 + 2 * 16 * 64
    # fp8 operands at 1 byte, the two float32 scales (one buffer, passed twice), bf16 output
    assert call.cost.mac_bytes == 16 * 32 * 1 + 64 * 32 * 1 + 2 * 4 + 16 * 64 * 2
    assert report.totals.params == 64 * 32


class CastsToFp8(nn.Module):
    """A float32 weight cast to fp8 for the matmul: training would need its gradient."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(64, 32))

    def forward(self, x):
        one = torch.ones((), device=x.device)
        return torch._scaled_mm(x.to(torch.float8_e4m3fn), self.w.to(torch.float8_e4m3fn).t(),
                                one, one, out_dtype=torch.float32)


def test_scaled_mm_in_training_says_it_has_no_backward():
    report = costmodel.analyze(CastsToFp8(), "16x32", mode="train")
    assert report.train.status == "partial"                # no derivative in torch: said so
    assert any(d.code == "CM010" and "scaled_mm" in d.message for d in report.diagnostics)


class CpuFlash(nn.Module):
    def forward(self, q, k, v):
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, True)[0]


def test_direct_cpu_flash_kernel_matches_flop_counter():
    """FlopCounterMode counts 0 for this kernel on CPU: its oracle is the same attention through
    F.scaled_dot_product_attention under the MATH backend, which it counts."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    q = torch.randn(B, H, L, E)
    k = torch.randn(B, H, 12, E)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        torch.nn.functional.scaled_dot_product_attention(q, k, k, is_causal=True)
    report = costmodel.analyze(CpuFlash(), q, k, k)
    assert str(report.totals.status) == "complete"
    assert report.totals.madds == counter.get_total_flops() // 2 == 2 * B * H * L * 12 * E


class Flash(nn.Module):
    def forward(self, q, k):
        return torch.ops.aten._flash_attention_forward(
            q, k, k, None, None, q.shape[1], k.shape[1], 0.0, True, False)[0]


class Efficient(nn.Module):
    def forward(self, q, k):
        return torch.ops.aten._efficient_attention_forward(
            q, k, k, None, None, None, q.shape[1], k.shape[1], 0.0, 1, False)[0]


@pytest.mark.parametrize("model", [Flash(), Efficient()], ids=["flash", "efficient"])
def test_direct_cuda_kernels_on_meta(model):
    """(B, L, H, E) layout, key/value with 2 heads (grouped-query) and 12 positions: every query
    head attends to 12 keys: MAdds = B*H*L*12*(E + E); FLOPs add per score 1 scale, 1 causal
    mask and 5 softmax."""
    report = costmodel.analyze(model, f"{B}x{L}x{H}x{E}:float16", f"{B}x12x2x{E}:float16")
    assert str(report.totals.status) == "complete"
    (call,) = calls(report, "flash_attention")
    scores = B * H * L * 12
    assert call.cost.madds == scores * 2 * E
    assert call.cost.flops == 2 * scores * 2 * E + scores * (1 + 1 + 5)
    assert call.cost.mac == B * L * H * E + 2 * B * 12 * 2 * E + B * L * H * E


class Varlen(nn.Module):
    """Three packed sequences of 5, 7 and 8 tokens (20 in all), 4 query heads, 2 kv heads."""

    def forward(self, q, k):
        from torch.nn.attention.varlen import varlen_attn

        offsets = torch.tensor([0, 5, 12, 20], dtype=torch.int32, device=q.device)
        return varlen_attn(q, k, k, offsets, offsets, 8, 8, enable_gqa=True)


def test_varlen_attention_is_an_upper_bound_with_cm009():
    pytest.importorskip("torch.nn.attention.varlen")
    report = costmodel.analyze(Varlen(), f"20x{H}x{E}:float16", f"20x2x{E}:float16")
    assert str(report.totals.status) == "complete"
    (call,) = calls(report, "flash_attention")
    bound = H * 20 * 8                                 # each of 20 queries x at most 8 keys
    assert call.cost.madds == bound * 2 * E
    exact = H * (5 * 5 + 7 * 7 + 8 * 8)                # what the offsets' values give
    assert call.cost.madds >= exact * 2 * E
    notes = [d for d in report.diagnostics if d.code == "CM009" and "packed sequences" in d.message]
    assert notes and "torch.ops.torch_attn._varlen_attn" in notes[0].message
