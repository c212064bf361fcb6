"""Recurrent layers: LSTM, GRU and Elman RNN (tanh or relu), multi-layer, bidirectional, with
proj_size (LSTM), padded or packed, and their single-step cells.

Per time step and batch row, one layer and direction with hidden size H, input size I (the
previous layer's D * H_out above layer 0), state size H_out (proj_size, else H) and G gates
(LSTM 4, GRU 3, RNN 1):

- matmuls: gates_x = W_ih x (G*H*I MAdds) and gates_h = W_hh h (G*H*H_out MAdds); with
  proj_size, h = W_hr h' (H*H_out MAdds). MAdds counts only these matmuls.
- element-wise, 1 FLOP per element each (costmodel's convention):
  - LSTM: gates_x + gates_h (4H); sigmoid of i, f, o and tanh of g (4H); c = f*c + i*g (3H);
    tanh(c) (H); h = o*tanh(c) (H): 13H, plus the biases b_ih and b_hh (8H).
  - GRU: r and z sums (2H); r * (W_hn h) and its add to W_in x (2H); sigmoid of r, z and tanh
    of n (3H); h = (1 - z)*n + z*h (4H): 11H, plus the biases (6H).
  - RNN: the sum (H) and tanh or relu (H): 2H, plus the biases (2H).
- FLOPs = 2 * MAdds + the element-wise FLOPs.

Rows are the input's leading elements: T * B padded (batch_first or not), T unbatched, and for a
packed sequence the packed rows, sum(batch_sizes): exact, not an upper bound (padding costs
nothing there). Layer sizes come from the weight shapes, so nothing is assumed. MAC reads every
input (weights, states, the sequence) once and writes every output once: a lower bound, since a
real kernel re-reads W_hh and the state at every step.
"""
from __future__ import annotations

import math

from ...core.cost import Cost
from ...core.vocab import Category
from ..registry import OpCall, formula, io_mac, params_of

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}

#: element-wise FLOPs per hidden unit and step: (without biases, the biases' adds)
ELEMENTWISE = {"lstm": (13, 8), "gru": (11, 6), "rnn_tanh": (2, 2), "rnn_relu": (2, 2)}


def _rows(call: OpCall) -> int:
    x = call.t("input")
    return math.prod(x.shape[:-1]) if x.ndim > 1 else 1


def _cost(call: OpCall, madds: int, flops: int) -> Cost:
    mac, mac_bytes = io_mac(call)
    return Cost(madds, 2 * madds + flops, params_of(*call.inputs()), mac, mac_bytes)


@formula("lstm", "gru", "rnn_tanh", "rnn_relu", category=Category.RECURRENT)
def rnn(call: OpCall) -> Cost:
    """Per layer and direction, rows * (G*H*(I + H_out) [+ H*H_out with proj_size]) MAdds and
    rows * H * (element-wise count) FLOPs besides (see the module docstring)."""
    weights = call.tensors.get("params") or ()
    biases = bool(call.attr("has_biases", True))
    groups = call.attr("num_layers", 1) * (2 if call.attr("bidirectional", False) else 1)
    per = len(weights) // groups if groups else 0
    plain, bias = ELEMENTWISE[call.op]
    rows, madds, flops = _rows(call), 0, 0
    for g in range(groups):
        w_ih, w_hh = weights[g * per], weights[g * per + 1]
        gate_rows, width = w_ih.shape                              # G*H, I
        hidden = gate_rows // GATES[call.op]                       # H
        state = w_hh.shape[1]                                      # H_out
        madds += rows * gate_rows * (width + state)
        if per == 3 + 2 * biases:                                  # proj_size: W_hr (H_out, H)
            madds += rows * hidden * state
        flops += rows * hidden * (plain + (bias if biases else 0))
    return _cost(call, madds, flops)


@formula("lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell", category=Category.RECURRENT)
def cell(call: OpCall) -> Cost:
    """One step of one layer: rows * G*H*(I + H) MAdds, and rows * H * (element-wise count)
    FLOPs besides, as for the full layers (see the module docstring)."""
    w_ih, w_hh = call.t("w_ih"), call.t("w_hh")
    op = call.op.removesuffix("_cell")
    hidden = w_hh.shape[1]
    rows = _rows(call)
    madds = rows * w_ih.shape[0] * (w_ih.shape[1] + hidden)
    plain, bias = ELEMENTWISE[op]
    biases = call.t("b_ih") is not None
    return _cost(call, madds, rows * hidden * (plain + (bias if biases else 0)))
