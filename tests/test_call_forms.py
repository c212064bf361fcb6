"""Call forms a formula must bind like any other: operands in one list (`torch.einsum(eq, [a, b])`),
keyword operands under torch's own names (`c.baddbmm(batch1=a, batch2=b)`, `torch.mm(a, mat2=b)`)
and numpy aliases. Expected MAdds are arithmetic; FlopCounterMode / 2 agrees where it counts."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import costmodel


class Call(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, a, b):
        return self.fn(a, b)


B, N, K, M = 2, 3, 5, 4
BMM = B * N * K * M      # (2, 3, 5) @ (2, 5, 4)


@pytest.mark.parametrize("fn, madds", [
    (lambda a, b: torch.einsum("bij,bjk->bik", a, b), BMM),
    (lambda a, b: torch.einsum("bij,bjk->bik", [a, b]), BMM),
    (lambda a, b: torch.einsum("bij,bjk->bik", (a, b)), BMM),
    (lambda a, b: torch.ones(B, N, M).baddbmm(batch1=a, batch2=b, beta=0.5, alpha=2.0), BMM),
    (lambda a, b: torch.baddbmm(torch.ones(B, N, M), a, b, beta=0.5, alpha=2.0), BMM),
    (lambda a, b: torch.baddbmm(input=torch.ones(B, N, M), batch1=a, batch2=b), BMM),
    (lambda a, b: torch.bmm(a, mat2=b), BMM),
    (lambda a, b: a[0].mm(mat2=b[0]), N * K * M),
    pytest.param(lambda a, b: torch.ones(N).addmv(mat=a[0], vec=b[0, :, 0]), N * K, id="addmv"),
    pytest.param(lambda a, b: a[0].mv(vec=b[0, :, 0]), N * K, id="mv"),
    (lambda a, b: torch.matmul(input=a, other=b), BMM),
])
def test_every_call_form_is_costed(request, fn, madds):
    report = costmodel.analyze(Call(fn), f"{B}x{N}x{K}", f"{B}x{K}x{M}")
    assert str(report.totals.status) == "complete"
    assert report.totals.madds == madds
    a, b = torch.randn(B, N, K), torch.randn(B, K, M)
    with FlopCounterMode(display=False) as counter:
        fn(a, b)
    oracle = counter.get_total_flops() // 2
    if "mv" not in request.node.callspec.id:      # FlopCounterMode counts no mv / addmv
        assert oracle == madds


class VarArgs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(10, 3)

    def forward(self, *args):
        x, scale = args
        return self.fc(x) * scale


def test_a_varargs_forward_receives_its_inputs_and_a_0d_input_is_an_empty_shape():
    report = costmodel.analyze(VarArgs(), "4x10", ())
    assert report.totals.madds == 4 * 10 * 3
    assert [(i.name, i.shape) for i in report.inputs] == [("args_0", (4, 10)), ("args_1", ())]
    assert report.totals.flops == 2 * 4 * 10 * 3 + 4 * 3 + 4 * 3     # matmul, bias, the scaling


@pytest.mark.parametrize("wrap", [torch.nn.DataParallel, torch.compile])
def test_wrappers_are_analysed_as_the_model_they_run(wrap):
    model = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 3))
    report = costmodel.analyze(wrap(model), "2x10")
    assert report.totals.madds == 2 * (10 * 20 + 20 * 3)
    assert [layer.name for layer in report.layers if layer.madds] == ["0", "2"]
