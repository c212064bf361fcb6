"""Backward rules of the recurrent layers: none yet, each with its reason."""
from __future__ import annotations

from ..registry import no_backward

_WHY = ("backpropagation through time (the per-step gate gradients and the W_ih / W_hh "
        "gradient matmuls over every step) has no formula yet")
for _op in ("lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell",
            "rnn_relu_cell"):
    no_backward(_op, _WHY)
