"""Known values and the trace flags of the eager capture (eager.py).

Known values: tensors that hold no input data keep their real value next to their meta tensor
(`Recording.values`; at most `VALUE_CAP` elements for a buffer, `COMPUTED_CAP` for a value computed
here: a 1024 x 1024 mask, as Longformer / LED expand their padded 1 x 512 mask): the outputs of
constant factories (`torch.ones`, `torch.arange`, `zeros_like`, ...; not random or uninitialised
ones), small integer buffers and one-element buffers (meta.py), and whatever is computed from such
tensors only (the same call runs on the real values, on the CPU). Reading one (`.item()`,
`.tolist()`, `bool()`, `int()`, f"{t}") answers from its value; a 0-d one passed where torch wants
a number (`F.pad(x, (t, 0))`, `x[..., :t]`) is that number; a data-dependent op on known values
(`nonzero`, a boolean mask) has its exact size. A write from unknown data (`mask[x > 0] = 1`) makes
the value unknown again. A device move (`x.to("cpu")`, `.cuda()`) stays on meta.

While the capture runs, `as_a_trace` tells the code it runs that it is a trace (see there).
"""
from __future__ import annotations

import ast
import contextlib
import functools
import linecache
import os
import sys
from typing import Any

import torch
from torch import Tensor

from ..core.vocab import OpFlag
from ..ops import META, lookup
from .recorder import _tensors
from .routing import ROUTING_CAP

#: Factories of constant values (not random, not uninitialised): a small output keeps its value.
CONST_FACTORIES = {torch.zeros, torch.ones, torch.full, torch.arange, torch.linspace,
                   torch.logspace, torch.eye, torch.tril_indices, torch.triu_indices}
#: The same, shaped like a tensor whose values they do not read.
CONST_LIKE = {torch.zeros_like, torch.ones_like, torch.full_like, Tensor.new_zeros,
              Tensor.new_ones, Tensor.new_full, Tensor.new_tensor}
#: Calls that turn a tensor's value into Python data.
READS = {Tensor.item, Tensor.tolist, Tensor.__bool__, Tensor.__int__, Tensor.__float__,
         Tensor.__index__, Tensor.__format__, Tensor.numpy, Tensor.__complex__}
#: Reads of an activation's value that an `assert` statement may make (assumed to hold, see
#: Holds): the value and the truth. int() / float() must give a real number, which no assumption
#: supplies.
ASSUMED_READS = {Tensor.item, Tensor.__bool__}
#: Device moves: on a meta tensor they stay on meta (a move changes no shape and costs nothing
#: here).
MOVES = {Tensor.to, Tensor.cpu, Tensor.cuda}
#: The most elements a value computed from known values may have (a real CPU tensor each).
COMPUTED_CAP = 1 << 20
_SETITEM = Tensor.__setitem__
_UNKNOWN = object()
_RANDOM_WORDS = ("rand", "normal", "bernoulli", "multinomial", "poisson", "dropout", "uniform",
                 "exponential", "cauchy", "geometric", "empty")



class Holds:
    """What a tensor's value read inside an `assert` statement gives (`.item()`): a number for
    which every comparison holds, so the assertion passes. An assertion is a check, not control
    flow (as `torch._check`): the capture assumes it holds and reports where."""

    def _holds(self, other: Any) -> bool:
        return True

    __lt__ = __le__ = __gt__ = __ge__ = __eq__ = __ne__ = _holds
    __hash__ = object.__hash__

    def _same(self, *other: Any) -> Holds:
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = _same
    __floordiv__ = __mod__ = __neg__ = __abs__ = __pow__ = _same

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "<a tensor value assumed to satisfy an assertion>"


_INTERNAL = (os.path.dirname(torch.__file__), os.path.dirname(os.path.dirname(__file__)))


@functools.lru_cache(maxsize=64)
def _assert_spans(filename: str) -> tuple[tuple[int, int], ...]:
    """(first, last) line of every `assert` statement in a source file."""
    try:
        tree = ast.parse("".join(linecache.getlines(filename)))
    except (SyntaxError, ValueError):
        return ()
    return tuple((node.lineno, node.end_lineno or node.lineno) for node in ast.walk(tree)
                 if isinstance(node, ast.Assert))


def in_assert() -> str | None:
    """'file:line' when the user code running now (the innermost frame outside torch and
    costmodel) is inside an `assert` statement, else None."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame = frame.f_back
    if frame is None:
        return None
    filename, line = frame.f_code.co_filename, frame.f_lineno
    if any(first <= line <= last for first, last in _assert_spans(filename)):
        parts = filename.replace(os.sep, "/").split("/")
        return f"{'/'.join(parts[-3:])}:{line}"
    return None


def _meta_like(value: Any) -> Any:
    """`value` with each tensor replaced by a meta tensor of its sizes, strides and dtype."""
    if isinstance(value, Tensor):
        return torch.empty_strided(tuple(value.shape), value.stride(), dtype=value.dtype,
                                   device=META)
    if isinstance(value, (list, tuple)):
        items = [_meta_like(v) for v in value]
        return type(value)(items) if type(value) in (list, tuple) or not hasattr(
            type(value), "_fields") else type(value)(*items)
    return value


def _try(func: Any, args: tuple, kwargs: dict) -> Any:
    """func on real values, or _UNKNOWN where it fails (a meta tensor of unknown value among
    them): then the result's value is unknown, as an activation's."""
    try:
        return func(*args, **kwargs)
    except Exception:  # noqa: BLE001
        return _UNKNOWN


def _random(name: str) -> bool:
    """A random or uninitialised result: its values are not constants."""
    return any(word in name for word in _RANDOM_WORDS)


def _real_args(values: dict[int, tuple[Tensor, Tensor]], value: Any) -> Any:
    """`value` with each meta tensor of known value replaced by that value (a CPU tensor), and
    the meta device by the CPU."""
    if isinstance(value, Tensor):
        known = values.get(id(value))
        return known[1] if known is not None else value
    if isinstance(value, (list, tuple)):
        return type(value)(_real_args(values, v) for v in value)
    if isinstance(value, dict):
        return {k: _real_args(values, v) for k, v in value.items()}
    if isinstance(value, torch.device) and value.type == "meta" or \
            isinstance(value, str) and value == "meta":
        return "cpu"
    return value


def as_numbers(values: dict[int, tuple[Tensor, Tensor]], value: Any) -> Any:
    """`value` with each 0-d meta tensor of known value replaced by its Python number."""
    if isinstance(value, Tensor):
        known = values.get(id(value))
        return known[1].item() if known is not None and value.ndim == 0 else value
    if isinstance(value, (list, tuple)):
        return type(value)(as_numbers(values, v) for v in value)
    if isinstance(value, dict):
        return {k: as_numbers(values, v) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(*(as_numbers(values, v) for v in (value.start, value.stop, value.step)))
    return value


def _has_number(values: dict[int, tuple[Tensor, Tensor]], value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.ndim == 0 and id(value) in values
    if isinstance(value, (list, tuple)):
        return any(_has_number(values, v) for v in value)
    if isinstance(value, dict):
        return any(_has_number(values, v) for v in value.values())
    if isinstance(value, slice):
        return any(_has_number(values, v) for v in (value.start, value.stop, value.step))
    return False


def stay_on_meta(func: Any, args: tuple, kwargs: dict) -> tuple[Any, tuple, dict]:
    """x.to(device) / x.cpu() / x.cuda() on a meta tensor, as a call that keeps it on meta (a
    device move changes no shape); `x.to(other)` reads only other's dtype."""
    if func is not Tensor.to:   # .cpu(), .cuda(...): no dtype change
        return Tensor.to, (args[0], META), {}

    def fix(value: Any) -> Any:
        if isinstance(value, Tensor):
            return value.dtype
        if isinstance(value, (str, torch.device)) or type(value) is int:   # x.to("cpu"), .to(0)
            return META
        return value
    return func, (args[0], *(fix(a) for a in args[1:])), {
        k: fix(v) if k in ("device", "other") else v for k, v in kwargs.items()}


class KnownValues:
    """The eager recorder's handling of known values (a mixin: `values`, `calls`, `recording`,
    `exact` and `_meta` are the recorder's)."""

    values: dict[int, tuple[Tensor, Tensor]]
    assumed: set[int]     # ids in `values` whose value rests on an assumed routing (routing.py)

    def _assumed_read(self) -> None:
        """A read or a data-dependent size that used an assumed routing (the recorder notes it)."""

    def _from_assumed(self, args: tuple, kwargs: dict) -> bool:
        assumed, values = self.assumed, self.values
        return bool(assumed) and any(id(t) in assumed and values[id(t)][0] is t
                                     for t in _tensors((args, kwargs)) if id(t) in values)

    def _numbers(self, args: tuple, kwargs: dict) -> bool:
        """Whether a 0-d tensor of known value sits among the arguments (or in a slice)."""
        return _has_number(self.values, (args, kwargs))

    # ---- known values -------------------------------------------------------------------------
    def _known(self, func, types, args, kwargs):
        """A call that may read or make a tensor of known value (a constant factory's output, a
        small integer buffer, what was computed from them): the meta call is recorded as any
        other, and the same call runs on the real values, so code can read them back."""
        values = self.values
        binding = lookup(func)
        if func in READS:   # .item(), bool(), .tolist(), f"{t}": answered from the real value
            if id(args[0]) in values:
                if id(args[0]) in self.assumed:
                    self._assumed_read()
                return func(*_real_args(values, args), **_real_args(values, kwargs))
            return self._meta(func, types, args, kwargs)
        if binding.sizes is not None and func is not _SETITEM and all(
                id(t) in values or t.device != META for t in _tensors((args, kwargs))):
            real = _try(func, _real_args(values, args), _real_args(values, kwargs))
            if real is not _UNKNOWN:   # a data-dependent size, of known data: exact
                return self._exact(func, binding, args, kwargs, real)
        out = self._meta(func, types, args, kwargs)
        outs = _tensors(out)
        real: Any = _UNKNOWN
        assumed = self._from_assumed(args, kwargs)
        cap = ROUTING_CAP if assumed else COMPUTED_CAP
        if any(t.numel() > cap for t in outs) or _random(binding.name):
            pass
        elif func in CONST_FACTORIES:
            real = _try(func, _real_args(values, args), {**kwargs, "device": "cpu"})
        elif func in CONST_LIKE:
            template = torch.empty(tuple(args[0].shape), dtype=args[0].dtype)
            real = _try(func, (template, *_real_args(values, args[1:])),
                        {**kwargs, "device": "cpu"})
        elif all(id(t) in values or t.device != META for t in _tensors((args, kwargs))):
            real = _try(func, _real_args(values, args), _real_args(values, kwargs))
        if real is _UNKNOWN:
            writes = binding.mutates or OpFlag.INPLACE in binding.flags or func is _SETITEM
            if writes and args and isinstance(args[0], Tensor):
                values.pop(id(args[0]), None)   # written from data: its value is unknown now
                self.assumed.discard(id(args[0]))
            return out
        for meta, value in zip(outs, _tensors(real)):
            if meta.is_meta and meta.shape == value.shape:
                values[id(meta)] = (meta, value)
                if assumed:
                    self.assumed.add(id(meta))
        return out

    def _exact(self, func: Any, binding: Any, args: tuple, kwargs: dict, real: Any) -> Any:
        """A data-dependent op (nonzero, a boolean mask, unique) on tensors of known value: its
        meta output has the real output's sizes, recorded without an upper-bound assumption."""
        out = _meta_like(real)
        rule = binding.rule
        bound = rule.bind(args, kwargs) if rule is not None else dict(enumerate(args), **kwargs)
        recorded = out if rule is None or rule.result is None else rule.result(bound, out)
        if _tensors(recorded):
            self.calls.append(self.recording.record(binding, bound, recorded))
        assumed = self._from_assumed(args, kwargs)
        if assumed:
            self._assumed_read()   # its size follows the assumed routing
        for meta, value in zip(_tensors(out), _tensors(real)):
            self.values[id(meta)] = (meta, value)
            if assumed:
                self.assumed.add(id(meta))
        self.exact = True
        return out


@contextlib.contextmanager
def as_a_trace(values: dict[int, Any], compiling: bool = True):
    """The capture is a trace, and says so to the code it runs (restored on exit):

    - `torch.compiler.is_compiling()` is True (unless `compiling` is False: api.py retries a
      capture that stopped that way, for code whose compile path needs more than its eager one,
      e.g. Switch Transformers wants an attention_mask then), as under torch.export's non-strict
      mode (which
      also runs the real Python forward on fake tensors and sets the same flag). Libraries skip
      their value checks under a trace: transformers' `is_tracing()` (true under compile, jit,
      fx proxies and FakeTensor) guards `warn_if_padding_and_no_attention_mask`,
      `_ignore_causal_mask_sdpa` and `_ignore_bidirectional_mask_sdpa`, and takes the
      compile-friendly path, which computes the same thing without reading values.
    - `torch._check_tensor_all_with` / `torch._check_tensor_all` (compiler hints: "assume this
      holds") assume a meta condition holds instead of reading it; a real one is still checked.
    - torch.distributions objects built with the default argument validation skip it
      (`Distribution.set_default_validate_args(False)`): validation reads values, and the
      arguments are meta tensors.
    - `nn.Transformer*`'s `_detect_is_causal_mask` reads the mask to see if it is causal: a mask
      of unknown values (a meta input, not a constant) counts as not causal, so the mask is
      applied as given, which costs what a causal mask costs on the MATH backend.
    """
    compiler = torch.compiler
    distribution = torch.distributions.Distribution
    transformer = torch.nn.modules.transformer
    saved = (compiler._is_compiling_flag, distribution._validate_args,
             torch._check_tensor_all_with, transformer._detect_is_causal_mask)
    check, detect = saved[2], saved[3]

    def check_tensor_all_with(error_type, cond, message=None):
        if isinstance(cond, Tensor) and cond.is_meta:
            return None   # a compiler hint on values the capture does not have: assume it holds
        return check(error_type, cond, message)

    def detect_is_causal_mask(mask, is_causal=None, size=None):
        if is_causal is None and isinstance(mask, Tensor) and mask.is_meta and \
                id(mask) not in values:
            return False   # unknown values: apply the mask as given
        return detect(mask, is_causal, size)

    compiler._is_compiling_flag = compiling or saved[0]
    distribution._validate_args = False
    torch._check_tensor_all_with = check_tensor_all_with
    transformer._detect_is_causal_mask = detect_is_causal_mask
    try:
        yield
    finally:
        (compiler._is_compiling_flag, distribution._validate_args,
         torch._check_tensor_all_with, transformer._detect_is_causal_mask) = saved


def to_meta(value: Any) -> Any:
    """`value` with each CPU tensor in it moved to meta (a constant met a meta activation)."""
    if isinstance(value, Tensor):
        return value if value.device == META else value.to(META)
    if isinstance(value, (list, tuple)):
        return type(value)(to_meta(v) for v in value)
    if isinstance(value, dict):
        return {k: to_meta(v) for k, v in value.items()}
    return value


@contextlib.contextmanager
def nonzero_assumed():
    """torch.fx.experimental._config.patch(meta_nonzero_assume_all_nonzero=True), without the
    class that `patch` builds on every call: meta nonzero() keeps every element (the upper
    bound)."""
    config = torch.fx.experimental._config
    saved = config.meta_nonzero_assume_all_nonzero
    config.meta_nonzero_assume_all_nonzero = True
    try:
        yield
    finally:
        config.meta_nonzero_assume_all_nonzero = saved
