"""The RNN family (nn.LSTM / GRU / RNN and the cells): MAdds and FLOPs against arithmetic written
here (FlopCounterMode counts none of them), output shapes against a real forward."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import costmodel


class Seq(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)


def rnn_expected(kind, rows, inp, hidden, layers=1, directions=1, proj=0, bias=True):
    """Per layer and direction: rows * G*H*(I + H_out) (+ rows*H*H_out with proj) MAdds;
    element-wise per step and unit: LSTM 13 (+8 biases), GRU 11 (+6), RNN 2 (+2)."""
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    plain, extra = {"lstm": (13, 8), "gru": (11, 6), "rnn": (2, 2)}[kind]
    state = proj or hidden
    madds = flops = 0
    for layer in range(layers):
        width = inp if layer == 0 else directions * state
        per = rows * gates * hidden * (width + state) + (rows * hidden * state if proj else 0)
        madds += directions * per
        flops += directions * rows * hidden * (plain + (extra if bias else 0))
    return madds, 2 * madds + flops


@pytest.mark.parametrize("make, kind, kw, shape", [
    (lambda: nn.LSTM(16, 32, num_layers=2, batch_first=True), "lstm",
     dict(layers=2), (3, 7, 16)),
    (lambda: nn.LSTM(16, 32, num_layers=2, bidirectional=True, proj_size=8), "lstm",
     dict(layers=2, directions=2, proj=8), (7, 3, 16)),
    (lambda: nn.LSTM(16, 32, bias=False), "lstm", dict(bias=False), (7, 16)),   # unbatched
    (lambda: nn.GRU(16, 24, num_layers=3, bidirectional=True, batch_first=True), "gru",
     dict(layers=3, directions=2), (2, 5, 16)),
    (lambda: nn.RNN(16, 8, nonlinearity="relu"), "rnn", {}, (5, 2, 16)),
    (lambda: nn.RNN(16, 8, num_layers=2, bias=False), "rnn", dict(layers=2, bias=False),
     (5, 2, 16)),
])
def test_rnn_layers(make, kind, kw, shape):
    torch.manual_seed(0)
    layer = make().eval()
    hidden = layer.hidden_size
    rows = shape[0] * shape[1] if len(shape) == 3 else shape[0]
    madds, flops = rnn_expected(kind, rows, layer.input_size, hidden, **kw)
    report = costmodel.analyze(Seq(layer), "x".join(map(str, shape)))
    assert report.totals.status == "complete"
    assert (report.totals.madds, report.totals.flops) == (madds, flops)
    assert report.totals.params == sum(p.numel() for p in layer.parameters())
    real = layer(torch.randn(shape))
    node = next(n for n in report.graph if n.module == "layer")
    assert [s.shape for s in node.outputs] == [tuple(real[0].shape)] + [
        tuple(t.shape) for t in (real[1] if isinstance(real[1], tuple) else (real[1],))]


@pytest.mark.parametrize("make, kind", [(lambda: nn.LSTMCell(12, 20), "lstm"),
                                        (lambda: nn.GRUCell(12, 20), "gru"),
                                        (lambda: nn.RNNCell(12, 20), "rnn"),
                                        (lambda: nn.RNNCell(12, 20, bias=False), "rnn")])
def test_cells(make, kind):
    cell = make()
    madds, flops = rnn_expected(kind, 4, 12, 20, bias=cell.bias)
    report = costmodel.analyze(cell, "4x12")
    assert report.totals.status == "complete"
    assert (report.totals.madds, report.totals.flops) == (madds, flops)
    assert report.totals.params == sum(p.numel() for p in cell.parameters())


class Packed(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 32, batch_first=True)

    def forward(self, data):
        # the packed form of sequences of lengths 6, 4 and 1: 11 rows, 3, 2, 2, 2, 1, 1 per step
        packed = nn.utils.rnn.PackedSequence(data, torch.tensor([3, 2, 2, 2, 1, 1]))
        return self.lstm(packed)[0].data


def test_a_packed_sequence_costs_its_packed_rows_exactly():
    report = costmodel.analyze(Packed(), "11x16")
    madds, flops = rnn_expected("lstm", 6 + 4 + 1, 16, 32)
    assert report.totals.madds == madds
    lstm = next(layer for layer in report.layers if layer.name == "lstm")
    assert (lstm.madds, lstm.flops) == (madds, flops)


def test_training_mode_says_the_rnn_backward_is_missing():
    report = costmodel.analyze(Seq(nn.GRU(8, 8)), "5x2x8", mode="train")
    assert any(d.code == "CM010" and "through time" in d.message for d in report.diagnostics)
