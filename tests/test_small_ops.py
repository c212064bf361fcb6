"""Section 4's smaller ops, each alone in a module so the totals are its own cost, against the
arithmetic of its docstring (FlopCounterMode counts none of them: no matmul inside)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import costmodel


class Fn(nn.Module):
    def __init__(self, fn, *params):
        super().__init__()
        self.fn = fn
        self.p = nn.ParameterList(params)

    def forward(self, *xs):
        return self.fn(*xs, *self.p)


def run(fn, *inputs, params=(), mode="eval"):
    report = costmodel.analyze(Fn(fn, *params), *inputs, mode=mode)
    assert str(report.totals.status) == "complete", report.totals.unsupported
    return report


LONG4 = torch.zeros(4, dtype=torch.long)
N, C = 4, 10
ROWS = torch.tensor([[0], [1], [1], [3], [2], [0]]).expand(6, 8).contiguous()   # scatter index


@pytest.mark.parametrize("fn, inputs, flops", [
    (lambda x: torch.clamp_min(x, 0.0), ("2x8",), 16),
    (lambda x: torch.diff(x), ("2x8",), 2 * 7),                     # 7 subtractions per row
    (lambda x: x.diff(dim=0), ("3x8",), 2 * 8),
    (lambda x: torch.diff(x, n=2), ("2x8",), 2 * (7 + 6)),          # pass 1: 7, pass 2: 6
    (lambda x, p: torch.diff(x, prepend=p, dim=-1), ("2x8", "2x1"), 2 * 8),
    (lambda x, p: torch.diff(x, n=3, dim=1, append=p), ("2x5x3", "2x2x3"), 2 * 3 * (6 + 5 + 4)),
    (lambda x: x.clamp_max(1.0), ("2x8",), 16),
    (lambda x: x.clamp_min_(0.0), ("2x8",), 16),
    (lambda a, b: torch.outer(a, b), ("3", "5"), 3 * 5),
    (lambda a, b: a.outer(b), ("3", "5"), 3 * 5),
    (lambda r, t: torch.polar(r, t), ("4x4", "4x4"), 16),
    (lambda x: torch.view_as_real(torch.view_as_complex(x)), ("4x3x2",), 0),
    (lambda x: torch.view_as_complex(x).real + torch.view_as_complex(x).imag, ("4x3x2",), 12),
    (lambda x, t: F.mse_loss(x, t), (f"{N}x{C}", f"{N}x{C}"), N * C * (2 + 1)),
    (lambda x, t: F.mse_loss(x, t, reduction="none"), (f"{N}x{C}", f"{N}x{C}"), N * C * 2),
    (lambda x, t: F.l1_loss(x, t, reduction="sum"), (f"{N}x{C}", f"{N}x{C}"), N * C * (2 + 1)),
    (lambda x, t: F.smooth_l1_loss(x, t), (f"{N}x{C}", f"{N}x{C}"), N * C * (4 + 1)),
    (lambda x, t: F.huber_loss(x, t), (f"{N}x{C}", f"{N}x{C}"), N * C * (4 + 1)),
    (lambda x, t: F.binary_cross_entropy(torch.sigmoid(x), t), (f"{N}x{C}", f"{N}x{C}"),
     N * C + N * C * (8 + 1)),                               # the sigmoid, then the loss
    (lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=torch.ones(C)),
     (f"{N}x{C}", f"{N}x{C}"), N * C * (7 + 3 + 1)),
    (lambda x, t: F.kl_div(x, t, reduction="batchmean"), (f"{N}x{C}", f"{N}x{C}"), N * C * (3 + 1)),
    (lambda x, t: F.cross_entropy(x, t), (f"{N}x{C}", LONG4), 5 * N * C + N + N),
    (lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), (f"{N}x{C}", LONG4),
     5 * N * C + N + N * C + 2 * N + N),
    (lambda x, t: F.cross_entropy(x, t), (f"{N}x{C}", f"{N}x{C}"), 5 * N * C + 2 * N * C + N),
    (lambda x, t: F.nll_loss(x, t), (f"{N}x{C}", LONG4), N + N),
    (lambda x, t: F.nll_loss(x, t, reduction="none"), (f"{N}x{C}", LONG4), N),
    # a binary search among n boundaries: ceil(log2(n + 1)) compares per element
    (lambda x: torch.bucketize(x, torch.linspace(0, 1, 7)), ("3x10",), 30 * 3),
    (lambda x: torch.searchsorted(torch.linspace(0, 1, 15), x), ("3x10",), 30 * 4),
    (lambda x: torch.searchsorted(torch.linspace(0, 1, 8).expand(3, 8).contiguous(), x),
     ("3x10",), 30 * 4),
    # one combine per source element (+ one division per output element for the mean)
    (lambda s, i: torch.zeros(4, 8).scatter_reduce(0, i, s, reduce="amax"), ("6x8", ROWS), 48),
    (lambda s, i: torch.zeros(4, 8).scatter_reduce(0, i, s, reduce="mean", include_self=False),
     ("6x8", ROWS), 48 + 32),
    (lambda s: torch.zeros(4, 8).index_reduce(0, torch.tensor([0, 1, 1, 3, 2, 0]), s, "prod"),
     ("6x8",), 48),
    # substitution: per right-hand side n(n - 1)/2 multiply-adds (2 FLOPs each) + n divisions
    (lambda a, b: torch.linalg.solve_triangular(a, b, upper=True), ("2x4x4", "2x4x3"),
     2 * 3 * (4 * 3 + 4)),
    (lambda a, b: torch.linalg.solve_triangular(a, b, upper=False, unitriangular=True),
     ("2x4x4", "2x4x3"), 2 * 3 * (4 * 3)),
    (lambda a, b: torch.linalg.solve_triangular(a, b, upper=True, left=False), ("4x4", "3x4"),
     3 * (4 * 3 + 4)),
    # unique: a sort (1 per element, as sort) and a neighbour compare; consecutive: the compare
    (lambda x: torch.unique(x), ("12",), 2 * 12),
    (lambda x: torch.unique(x, return_inverse=True, return_counts=True)[0], ("12",), 2 * 12),
    (lambda x: torch.unique_consecutive(x), ("12",), 12),
    # multinomial: each row's running sum, then a binary search per sample (ceil(log2 8) = 3)
    (lambda x: torch.multinomial(x, 3), ("2x8",), 2 * 8 + 2 * 3 * 3),
    # masked_scatter copies (0 FLOPs): only the comparison that makes the mask counts
    (lambda x, s: x.masked_scatter(x > 0, s), ("3x10", "40"), 30),
])
def test_small_op_flops(fn, inputs, flops):
    report = run(fn, *inputs)
    assert report.totals.flops == flops and report.totals.madds == 0


def test_real_and_imag_are_named():
    report = run(lambda x: torch.view_as_complex(x).real, "4x3x2")
    names = {c.target for node in report.graph for c in node.call_costs}
    assert "Tensor.real" in names and "Tensor.__get__" not in names


def test_complex_rope():
    """RoPE in complex form (LLaMA's reference code): polar, view_as_complex, a complex
    multiply, view_as_real."""
    class Rope(nn.Module):
        def forward(self, x, angles):
            freqs = torch.polar(torch.ones_like(angles), angles)
            xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
            return torch.view_as_real(xc * freqs).flatten(-2)

    report = costmodel.analyze(Rope(), "2x8x16", "8x8")
    assert str(report.totals.status) == "complete"
    assert report.totals.flops == 8 * 8 + 2 * 8 * 8              # polar + the complex multiply
    assert report.graph.nodes["output"].inputs[0].shape == (2, 8, 16)


def test_one_hot():
    report = run(lambda i: F.one_hot(i, 7), torch.zeros(2, 5, dtype=torch.long))
    assert report.totals.flops == 0
    assert report.totals.mac == 2 * 5 + 2 * 5 * 7                # indices read, output written


def test_one_hot_without_num_classes_is_a_clear_error():
    """num_classes=-1 is the data's largest index + 1: no static size; a one-line error."""
    with pytest.raises(costmodel.AnalysisError, match="value"):
        costmodel.analyze(Fn(lambda i: F.one_hot(i)), torch.zeros(2, 5, dtype=torch.long))


@pytest.mark.parametrize("mode, taps", [("bilinear", 7), ("nearest", 0), ("bicubic", 31)])
def test_grid_sample(mode, taps):
    report = run(lambda x, g: F.grid_sample(x, g, mode=mode, align_corners=False),
                 "2x3x4x6", "2x5x7x2")
    assert report.totals.flops == 2 * 3 * 5 * 7 * taps + 2 * (2 * 5 * 7 * 2)
    assert report.graph.nodes["output"].inputs[0].shape == (2, 3, 5, 7)


def test_grid_sample_3d():
    report = run(lambda x, g: F.grid_sample(x, g, align_corners=False), "1x2x4x4x4", "1x3x3x3x3")
    assert report.totals.flops == 2 * 27 * 15 + 2 * 27 * 3


def test_max_pool_with_indices_and_unpool():
    def fn(x):
        y, idx = F.max_pool2d(x, 2, return_indices=True)
        return F.max_unpool2d(y, idx, 2)

    report = run(fn, "1x3x8x8")
    assert report.totals.flops == 3 * 4 * 4 * (2 * 2)              # the pool; unpool moves only
    assert report.graph.nodes["output"].inputs[0].shape == (1, 3, 8, 8)


def test_weight_norm():
    v, g = nn.Parameter(torch.randn(8, 4, 3)), nn.Parameter(torch.randn(8, 1, 1))
    report = run(lambda x, v, g: x + torch._weight_norm(v, g, 0), "8x4x3", params=(v, g))
    assert report.totals.flops == 3 * 96 + 2 * 8 + 96               # weight norm + the add
    assert report.totals.params == 96 + 8


def test_weight_norm_parametrization_is_complete():
    conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(4, 8, 3))
    report = costmodel.analyze(conv, "1x4x10")
    assert str(report.totals.status) == "complete"
    assert report.totals.params == sum(p.numel() for p in conv.parameters())
    assert report.totals.madds == 8 * 8 * 4 * 3                    # out length 8


@pytest.mark.parametrize("fn, inputs", [
    (lambda x, t: F.cross_entropy(x, t), (f"{N}x{C}", LONG4)),
    (lambda x, t: F.mse_loss(x, t), (f"{N}x{C}", f"{N}x{C}")),
    (lambda x, g: F.grid_sample(x, g, align_corners=False), ("2x3x4x6", "2x5x7x2")),
    (lambda a, b: torch.outer(a, b), ("3", "5")),
    (lambda x, p: torch.diff(x, n=2, append=p), ("8", "2")),
    (lambda s, i: torch.zeros(4, 8).scatter_reduce(0, i, s, reduce="amax"), ("6x8", ROWS)),
    (lambda a, b: torch.linalg.solve_triangular(a, b, upper=True), ("4x4", "4x3")),
])
def test_training_mode_has_backward(fn, inputs):
    """mode='train' costs their backward too (not a silent zero): the first operand is a
    parameter, so it needs a gradient."""
    first = nn.Parameter(torch.randn(tuple(int(s) for s in inputs[0].split("x"))))
    report = run(lambda *xs: fn(xs[-1], *xs[:-1]), *inputs[1:], params=(first,), mode="train")
    assert report.train.backward.flops > 0 and report.train.status == "complete"


def test_diff_backward_is_one_flop_per_element_of_each_pass():
    """n=2 on 8 + 2 appended elements: the passes read 10 then 9 elements; each adjoint is one
    subtraction per element read."""
    x = nn.Parameter(torch.randn(8))
    report = run(lambda p, x: torch.diff(x, n=2, append=p), "2", params=(x,), mode="train")
    assert report.train.backward.flops == 10 + 9
    assert report.train.forward.flops == 9 + 8


def test_packed_sequence_check_of_transformers_masks_is_complete():
    """A miniature of transformers' `masking_utils.find_packed_sequence_indices`, which every
    decoder's mask runs with use_cache=False (training, or a plain forward without a cache): diff
    of the position ids with the first one minus 1 prepended, then a cumulative sum. It left the
    whole model partial (`torch.diff` had no formula)."""
    def packed(position_ids):
        first_dummy_value = position_ids[:, :1] - 1
        position_diff = torch.diff(position_ids, prepend=first_dummy_value, dim=-1)
        return (position_diff != 1).cumsum(-1)

    report = run(packed, "2x32:int64")
    diff = next(layer for layer in report.layers if layer.op == "diff")
    assert diff.cost.flops == 2 * 32 and diff.outputs == ((2, 32),)


def test_aten_slice_called_directly_is_a_view():
    """torch.ops.aten.slice called from Python, as torch's `generic_associative_scan` does (the
    scan transformers' Mamba models take under a trace): a view, no FLOPs; it left them partial."""
    from torch._higher_order_ops.associative_scan import generic_associative_scan

    combined = []

    def combine(a_left, b_left, a_right, b_right):    # Mamba's: h_t = a_t * h_{t-1} + b_t
        combined.append(a_right.numel())
        return a_left * a_right, a_right * b_left + b_right

    def scan(a, b):
        return generic_associative_scan(combine, [a, b], dim=2)[1]

    report = run(scan, "1x4x8x3", "1x4x8x3")
    slices = [layer for layer in report.layers if layer.target == "torch.ops.aten.slice"]
    assert slices and all(layer.cost.flops == 0 for layer in slices)
    # the scan's arithmetic, from a real run: 3 element-wise ops per element of each combine
    combined.clear()
    scan(torch.rand(1, 4, 8, 3), torch.rand(1, 4, 8, 3))
    assert report.totals.flops == 3 * sum(combined)


def test_masked_scatter_and_scatter_reduce_mac():
    """masked_scatter reads at most what it writes (30 of the 30 + 40 data elements), the mask,
    and writes 30; scatter_reduce reads input, index and source and writes the output."""
    report = run(lambda x, m, s: x.masked_scatter(m, s), "3x10", "3x10:bool", "40")
    assert report.totals.mac == 30 + 30 + 30
    report = run(lambda x, s, i: x.scatter_reduce(0, i, s, reduce="sum"), "4x8", "6x8", ROWS)
    assert report.totals.mac == 32 + 48 + 48 + 32


def test_unique_of_known_values_has_its_exact_size():
    """torch.unique of a tensor built from constants (ViLT's `valid_idx[:, 0].unique()`) has
    the real number of distinct values: 3 here, so the sum reads 3 elements."""
    report = run(lambda x: x + torch.unique(torch.tensor([4, 1, 1, 4, 7])).sum(), "2")
    node = [n for n in report.graph if n.target.endswith("unique")][0]
    assert node.outputs[0].shape == (3,) and not node.data_dependent
