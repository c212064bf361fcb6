"""Reads of tensor values that must not stop the eager capture (issue 13, section 2): an `assert`
on a value (XLM / FlauBERT's `assert lengths.max().item() <= slen`), a large mask built from
constants (Longformer / LED expand their padded mask to seq x seq and ask `.any().item()`), and an
MoE MLP whose router is a `router` child (JetMoE: `expert_size.tolist()`). Expected numbers are
arithmetic written here."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import costmodel
from costmodel.core.vocab import Code, Severity, Status


class Lengths(nn.Module):
    """XLM's form: lengths counted from the ids, checked by assertions, then used as a mask."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.fc = nn.Linear(8, 8)

    def forward(self, ids):
        lengths = (ids != 0).sum(dim=1)
        assert lengths.max().item() <= ids.shape[1]
        assert (
            (lengths >= 0).all()
        ), "negative length"
        mask = torch.arange(ids.shape[1])[None] < lengths[:, None]
        return self.fc(self.emb(ids)) * mask[..., None]


class Branches(Lengths):
    def forward(self, ids):
        lengths = (ids != 0).sum(dim=1)
        if lengths.max().item() > 3:   # control flow on a value: no static analysis follows it
            return self.fc(self.emb(ids))
        return self.emb(ids)


def test_an_assertion_on_a_value_is_assumed_to_hold():
    report = costmodel.analyze(Lengths(), "2x5:int64")
    assert report.totals.status == Status.COMPLETE
    assert report.totals.madds == 2 * 5 * 8 * 8
    found = [d for d in report.diagnostics if "assertion at" in d.message]
    assert len(found) == 2 and all(d.code == Code.DATA_DEPENDENT and
                                   d.severity == Severity.INFO for d in found)
    assert "test_value_reads.py" in found[0].message


def test_a_value_read_outside_an_assertion_still_stops_the_capture():
    with pytest.raises(costmodel.errors.CostmodelError, match="reads a tensor's value"):
        costmodel.analyze(Branches(), "2x5:int64", capture="eager")


class Window(nn.Module):
    """Longformer / LED's form: a default mask of ones, padded to the window, expanded to
    seq x seq, and asked whether any position is global."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        mask = torch.ones(x.shape[:2], dtype=torch.long)
        mask = F.pad(mask, (0, 512 - x.shape[1]), value=0)
        square = mask[:, None, None, :].expand(1, 1, 512, 512).to(x.dtype)
        inverted = 1.0 - square
        if (inverted > 0).flatten().any().item():   # padding present: known from constants
            x = F.pad(x, (0, 0, 0, 512 - x.shape[1]))
        return self.fc(x)


def test_a_large_mask_built_from_constants_keeps_its_value():
    report = costmodel.analyze(Window(), "1x500x8")
    assert report.totals.status == Status.COMPLETE
    assert report.totals.madds == 512 * 8 * 8   # the padded branch ran, as it does for real


class Router(nn.Module):
    """JetMoE's router: top-k, then the number of rows per expert as a Python list."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(8, 4, bias=False)

    def forward(self, x):
        _, idx = self.layer(x).topk(2, dim=1)
        gates = torch.zeros(x.shape[0], 4, dtype=x.dtype).scatter(1, idx, 1)
        return idx, gates.long().sum(0).tolist()


class RouterMoE(nn.Module):
    """An MoE MLP with a `router` child and its experts as one weight (no `experts` child)."""

    def __init__(self) -> None:
        super().__init__()
        self.router = Router()
        self.weight = nn.Parameter(torch.randn(4, 16, 8))

    def forward(self, x):
        idx, sizes = self.router(x)
        order = idx.flatten().sort(0)[1]
        parts = x[order // 2].split(sizes, 0)
        return torch.cat([F.linear(p, self.weight[i]) for i, p in enumerate(parts)])


def test_an_moe_block_with_a_router_child_is_analysed_under_the_routing_assumption():
    tokens = 6
    model = RouterMoE()
    assert model(torch.randn(tokens, 8)).shape == (tokens * 2, 16)
    report = costmodel.analyze(model, f"{tokens}x8")
    assert report.totals.status == Status.COMPLETE
    # router: tokens x 8 x 4; experts: every token visits 2 experts of 16 x 8
    assert report.totals.madds == tokens * 8 * 4 + tokens * 2 * 16 * 8
    assert any(d.code == Code.DATA_DEPENDENT and "router" in d.message
               for d in report.diagnostics)
