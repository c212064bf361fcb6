"""Bindings of the recurrent layers: the fused multi-layer RNNs torch.nn.LSTM / GRU / RNN call
(`torch.lstm`, `torch.gru`, `torch.rnn_tanh`, `torch.rnn_relu`, padded or packed) and the cells
(`torch.lstm_cell`, `torch.gru_cell`, `torch.rnn_tanh_cell`, `torch.rnn_relu_cell`).

Without a shape rule torch's meta kernel decomposes the RNN step by step in Python (seconds for a
long sequence); the rules below give the outputs from the shapes alone."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from .registry import bind
from .shape_rules import empty

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
_PADDED = ("input", "hx", "params", "has_biases", "num_layers", "dropout", "train",
           "bidirectional", "batch_first")
_PACKED = ("input", "batch_sizes", "hx", "params", "has_biases", "num_layers", "dropout", "train",
           "bidirectional")


def _bind_rnn(args: tuple, kwargs: dict) -> dict:
    """torch.lstm(input, hx, params, ...) or, for a PackedSequence,
    torch.lstm(data, batch_sizes, hx, params, ...): both bound by name."""
    packed = len(args) > 3 and isinstance(args[3], (list, tuple)) or "batch_sizes" in kwargs
    bound = dict(zip(_PACKED if packed else _PADDED, args))
    bound.update(kwargs)
    hx = bound.get("hx")
    if isinstance(hx, Tensor):           # gru / rnn: one state tensor
        bound["hx"] = (hx,)
    return bound


def _rnn_shape(b: dict) -> Any:
    """output: the input's leading dims + (D * H_out,), with D = 2 if bidirectional and H_out
    the state's last dim (proj_size when set); the states keep the shapes of `hx`."""
    x, hx = b.get("input"), b.get("hx")
    if not isinstance(x, Tensor) or not hx or not all(isinstance(h, Tensor) for h in hx):
        return None
    directions = 2 if b.get("bidirectional") else 1
    out = empty(tuple(x.shape[:-1]) + (directions * hx[0].shape[-1],), x.dtype)
    return (out, *(empty(h.shape, h.dtype) for h in hx))


def _cell_shape(b: dict) -> Any:
    hx = b.get("hx")
    if isinstance(hx, Tensor):
        return empty(hx.shape, hx.dtype)
    if isinstance(hx, (list, tuple)) and all(isinstance(h, Tensor) for h in hx):
        return tuple(empty(h.shape, h.dtype) for h in hx)
    return None


for _op in GATES:
    bind(_op, f"torch.{_op}", _PADDED, binder=_bind_rnn, shape=_rnn_shape)
    bind(f"{_op}_cell", f"torch.{_op}_cell", ("input", "hx", "w_ih", "w_hh", "b_ih", "b_hh"),
         shape=_cell_shape)
