"""Fourier transforms through analyze(): the shape rule, the formula (5 N log2 N real FLOPs per
complex transform, 2.5 N log2 N with real input or output; ops/spectral.py), the printed names
(`torch.fft.rfft`, not `torch.fft_rfft`) and the backward in train mode. FlopCounterMode counts
no FFT, so the expected numbers are arithmetic written here."""
from __future__ import annotations

import torch
from torch import nn

import costmodel


def spectral(report):
    return [(c.op, c.cost) for node in report.graph for c in node.call_costs
            if c.op in ("fft", "rfft", "irfft")]


class GlobalFilter(nn.Module):
    """GFNet's global filter layer: rfft2 over the tokens' grid, a learned complex filter,
    irfft2 back (B=2, 8 x 8 grid, 16 channels)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 5, 16, 2) * 0.02)

    def forward(self, x):                                   # x: (2, 8, 8, 16)
        y = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")
        y = y * torch.view_as_complex(self.weight)
        return torch.fft.irfft2(y, s=(8, 8), dim=(1, 2), norm="ortho")


def test_global_filter_rfft2_irfft2():
    model = GlobalFilter()
    x = torch.randn(2, 8, 8, 16)
    assert model(x).shape == x.shape
    report = costmodel.analyze(model, "2x8x8x16")
    assert str(report.totals.status) == "complete"
    batch, m = 2 * 16, 8 * 8                               # transforms, grid points (2^6)
    (op1, fwd), (op2, inv) = spectral(report)
    assert (op1, op2) == ("rfft", "irfft")
    assert fwd.flops == inv.flops == batch * m * 6 * 5 // 2
    assert fwd.mac == 2 * 8 * 8 * 16 + 2 * 8 * 5 * 16       # real input + half spectrum
    assert fwd.mac_bytes == 4 * 2 * 8 * 8 * 16 + 8 * 2 * 8 * 5 * 16
    assert {"torch.fft.rfft2", "torch.fft.irfft2"} <= {layer.target for layer in report.layers}


class Complex(nn.Module):
    def forward(self, x):
        y = torch.fft.fft(x, n=16, dim=1)                 # zero-padded to 16
        z = torch.fft.ifftn(y)                            # every dim: 4 x 16
        return torch.fft.fftshift(z).real


def test_fft_ifftn_and_printed_names():
    report = costmodel.analyze(Complex(), "4x10")
    assert str(report.totals.status) == "complete"
    costs = spectral(report)
    assert [op for op, _ in costs] == ["fft", "fft"]
    assert costs[0][1].flops == 4 * 5 * 16 * 4            # 4 transforms of 16: 5 N log2 N
    assert costs[1][1].flops == 5 * 64 * 6                 # one 4 x 16 transform, M = 64
    targets = {node.target for node in report.graph}
    assert {"torch.fft.fft", "torch.fft.ifftn", "torch.fft.fftshift"} <= targets
    assert {"fft", "ifftn", "fftshift"} <= {node.name for node in report.graph}   # not fft_fft


def test_unknown_fft_is_named_as_torch_fft():
    """An FFT costmodel does not bind is named as the user wrote it."""
    from costmodel.ops.registry import printed_name
    assert printed_name(torch._C._fft.fft_rfft) == "torch.fft.rfft"


def test_fft_backward():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(8))

        def forward(self, x):
            return torch.fft.rfft(x * self.w).abs()

    report = costmodel.analyze(M(), "4x8", mode="train")
    assert report.train.status == "complete"
    rfft = next(c for layer in report.layers for c in layer.calls if c.op == "rfft")
    forward = 4 * 8 * 3 * 5 // 2                            # 4 real transforms of N = 8
    assert rfft.backward.flops == forward                   # the adjoint transform
    assert rfft.cost.flops == 2 * forward
    assert rfft.backward.mac == 4 * 5 + 4 * 8               # reads gy (half spectrum), writes gx
