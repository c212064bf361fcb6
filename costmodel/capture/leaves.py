"""Direct calls of the commonest torch.nn layers in the eager capture (a speed path only).

A layer such as nn.Conv2d runs its Python forward, which calls F.conv2d, which torch hands to the
recorder (the TorchFunctionMode) with its arguments, which the recorder sorts out (metadata,
known values, moves) and binds to names before its shape rule and its record. For the exact
classes below, whose forward is still torch's own, that forward makes one torch call (none for
nn.Identity) whose arguments are read from the layer's attributes: each entry here gives that
callable and the (args, kwargs) the forward hands it, as the recorder receives them, or None
when the forward would take another branch (a padding mode, batch statistics, an input of
another rank), and then the layer runs as any other. `run` then does what the recorder does for
such a plain call (its binding, shape rule or meta kernel, and record) and the capture makes the
node as for any layer, so the records are the same, at a third of the Python calls;
`tests/test_leaves.py` checks each entry against the full path, and `active()` drops an entry
whose forward or torch function was replaced (monkeypatched) since costmodel was imported.
Everything in `run` happens with the recorder popped, as inside `__torch_function__`.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import lookup
from .known import CONST_LIKE, MOVES, READS
from .recorder import _has_tensor
from .routing import ROUTING_CALLS

#: the arguments the forward's torch call hands the recorder, (args, kwargs), or None: take the
#: full path
Call = Callable[[nn.Module, Tensor], "tuple[tuple, dict] | None"]


def _conv2d(m: Any, x: Tensor) -> tuple[tuple, dict] | None:
    # Conv2d.forward -> _conv_forward -> F.conv2d(input, weight, bias, stride, padding, ...)
    if m.padding_mode != "zeros":
        return None
    return (x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups), {}


def _batch_norm(dims: tuple[int, ...]) -> Call:
    def call(m: Any, x: Tensor) -> tuple[tuple, dict] | None:
        # _BatchNorm.forward at inference: F.batch_norm(input, running_mean, running_var,
        # weight=, bias=, training=, momentum=, eps=); training updates a counter first
        if m.training or x.dim() not in dims:   # _check_input_dim raises: the full path
            return None
        momentum = m.momentum
        mean, var = m.running_mean, m.running_var
        return (x, mean, var), {"weight": m.weight, "bias": m.bias,
                                "training": mean is None and var is None,
                                "momentum": 0.0 if momentum is None else momentum, "eps": m.eps}
    return call


def _linear(m: Any, x: Tensor) -> tuple[tuple, dict]:
    return (x, m.weight, m.bias), {}


def _inplace(m: Any, x: Tensor) -> tuple[tuple, dict]:
    # F.relu(input, inplace=), F.hardswish(input, inplace), F.hardsigmoid, F.silu
    return (x,), {"inplace": m.inplace}


def _hardtanh(m: Any, x: Tensor) -> tuple[tuple, dict]:
    # nn.Hardtanh and nn.ReLU6: F.hardtanh(input, min_val, max_val, inplace)
    return (x,), {"min_val": m.min_val, "max_val": m.max_val, "inplace": m.inplace}


def _gelu(m: Any, x: Tensor) -> tuple[tuple, dict]:
    return (x,), {"approximate": m.approximate}


def _input(m: Any, x: Tensor) -> tuple[tuple, dict]:
    return (x,), {}


def _dropout(m: Any, x: Tensor) -> tuple[tuple, dict]:
    # F.dropout(input, p, training, inplace)
    return (x,), {"p": m.p, "training": m.training, "inplace": m.inplace}


def _pool(m: Any, x: Tensor) -> tuple[tuple, dict]:
    # F.adaptive_avg_pool2d(input, output_size)
    return (x, m.output_size), {}


def _flatten(m: Any, x: Tensor) -> tuple[tuple, dict]:
    # input.flatten(start_dim, end_dim)
    return (x, m.start_dim, m.end_dim), {}


def _layer_norm(m: Any, x: Tensor) -> tuple[tuple, dict]:
    # F.layer_norm(input, normalized_shape, weight=, bias=, eps=)
    return (x, m.normalized_shape), {"weight": m.weight, "bias": m.bias, "eps": m.eps}


#: class -> (the torch callable its forward calls, as the recorder sees it, or None for none;
#: its arguments; what of torch the forward reads at call time, as (owner, attribute))
_TABLE: dict[type, tuple[Any, Call | None, tuple[tuple[Any, str], ...]]] = {
    nn.Conv2d: (torch.conv2d, _conv2d, ((nn.Conv2d, "_conv_forward"), (F, "conv2d"))),
    nn.BatchNorm2d: (F.batch_norm, _batch_norm((4,)), ((F, "batch_norm"),)),
    nn.BatchNorm1d: (F.batch_norm, _batch_norm((2, 3)), ((F, "batch_norm"),)),
    nn.Linear: (F.linear, _linear, ((F, "linear"),)),
    nn.ReLU: (F.relu, _inplace, ((F, "relu"),)),
    nn.Hardswish: (F.hardswish, _inplace, ((F, "hardswish"),)),
    nn.Hardsigmoid: (F.hardsigmoid, _inplace, ((F, "hardsigmoid"),)),
    nn.SiLU: (F.silu, _inplace, ((F, "silu"),)),
    nn.ReLU6: (F.hardtanh, _hardtanh, ((F, "hardtanh"),)),
    nn.Hardtanh: (F.hardtanh, _hardtanh, ((F, "hardtanh"),)),
    nn.GELU: (F.gelu, _gelu, ((F, "gelu"),)),
    nn.Sigmoid: (torch.sigmoid, _input, ((torch, "sigmoid"),)),
    nn.Tanh: (torch.tanh, _input, ((torch, "tanh"),)),
    nn.Dropout: (F.dropout, _dropout, ((F, "dropout"),)),
    nn.AdaptiveAvgPool2d: (F.adaptive_avg_pool2d, _pool, ((F, "adaptive_avg_pool2d"),)),
    nn.Flatten: (Tensor.flatten, _flatten, ((Tensor, "flatten"),)),
    nn.LayerNorm: (F.layer_norm, _layer_norm, ((F, "layer_norm"),)),
    nn.Identity: (None, None, ()),
}
#: what each class's forward and the torch attributes it reads were at import
_ORIGINAL = {kind: (kind.forward, tuple(getattr(owner, name) for owner, name in reads))
             for kind, (_, _, reads) in _TABLE.items()}


def _plain(func: Any) -> bool:
    """The recorder binds the call, runs its shape rule (or meta kernel) and records it, and
    nothing else: no in-place write, no data-dependent size, no device move, no value read."""
    if func is None:
        return True
    binding = lookup(func)
    rule = binding.rule
    return rule is not None and rule.result is None and not rule.create and \
        rule.op != "quantize" and not binding.mutates and binding.sizes is None and \
        func not in MOVES and func not in READS and func not in CONST_LIKE and \
        func not in ROUTING_CALLS


def active() -> dict[type, tuple[Any, Call | None]]:
    """The entries whose class still has torch's forward and whose torch functions are still
    torch's (asked once per capture: a model's code may have patched them)."""
    found = {}
    for kind, (func, call, reads) in _TABLE.items():
        forward, functions = _ORIGINAL[kind]
        if kind.forward is forward and all(
                getattr(owner, name) is fn for (owner, name), fn in zip(reads, functions)) and \
                _plain(func):
            found[kind] = (func, call)
    return found


#: `run`'s answer when the layer must take the full path (its own forward under the recorder)
FULL = object()
_pop = torch._C._pop_torch_function_stack
_push = torch._C._push_on_torch_function_stack
_mode_on = torch._C._is_torch_function_mode_enabled


def run(capture: Any, module: nn.Module, qualname: str, func: Any, call: Call | None,
        x: Tensor) -> Any:
    """Layer `module` (an `active()` class) called on one meta activation `x`: its node, made
    as the full path makes it (`capture._leaf_node`), and its output; or FULL where the full
    path must decide (the recorder is not the innermost mode, `x` has a known value, the forward
    would branch elsewhere, anything raised)."""
    recorder = capture.recorder
    if not _mode_on():   # torch functions disabled: the forward's calls would go unrecorded
        return FULL
    mode = _pop()   # as torch does around __torch_function__
    try:
        if mode is not recorder or not x.is_meta or id(x) in recorder.values:
            return FULL
        calls: tuple = ()
        out = x   # nn.Identity
        if call is not None:
            given = call(module, x)
            if given is None:
                return FULL
            args, kwargs = given
            binding = lookup(func)   # as the recorder's __torch_function__, for a plain call
            rule = binding.rule
            bound = rule.bind(args, kwargs)
            out = rule.shape(bound) if rule.shape is not None else None
            if out is None:
                out = func(*args, **kwargs)
            if not _has_tensor(out):
                return FULL
            calls = (capture.recording.record(binding, bound, out),)
    except Exception:  # noqa: BLE001 - the full path raises its own error, with its message
        return FULL
    finally:
        _push(mode)
    recorder.calls = []
    return capture._leaf_node(module, qualname, (x,), {}, out, calls, ())
