"""Tensor specs and input-shape strings. Pure Python: no torch import here."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import InputSpecError
from .vocab import Role

#: bytes per element, by the short dtype name costmodel prints.
ITEMSIZE = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2,
    "float8_e4m3fn": 1, "float8_e5m2": 1,
    "complex128": 16, "complex64": 8,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1,
}
_ALIASES = {"float": "float32", "fp32": "float32", "half": "float16", "fp16": "float16",
            "bf16": "bfloat16", "double": "float64", "long": "int64", "int": "int32"}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """What a formula may know about a tensor: its shape, dtype and how much memory backs it.

    `stored` is the number of distinct elements in memory, which is smaller than `numel` for a
    broadcast (expanded) tensor; memory access counts read `stored` elements, not `numel`.
    `role` is a `Role`: activation, param, buffer or const.
    """

    shape: tuple[int, ...]
    dtype: str = "float32"
    itemsize: int = 4
    stored: int = -1
    role: str = Role.ACTIVATION

    def __init__(self, shape: tuple[int, ...], dtype: str = "float32", itemsize: int = 4,
                 stored: int = -1, role: str = Role.ACTIVATION) -> None:
        # the dataclass's own __init__, with each slot written by its descriptor: a frozen
        # dataclass calls object.__setattr__ once per field, and a capture makes one spec per
        # tensor (tests/test_report.py checks it matches the fields)
        _SET_SPEC[0](self, shape)
        _SET_SPEC[1](self, dtype)
        _SET_SPEC[2](self, itemsize)
        _SET_SPEC[3](self, stored)
        _SET_SPEC[4](self, role)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def reads(self) -> int:
        """Elements actually read from memory."""
        return self.numel if self.stored < 0 else self.stored

    @property
    def ndim(self) -> int:
        return len(self.shape)


_SET_SPEC = tuple(TensorSpec.__dict__[name].__set__
                  for name in ("shape", "dtype", "itemsize", "stored", "role"))


def spec(*shape: int, dtype: str = "float32", role: str = Role.ACTIVATION) -> TensorSpec:
    """Convenience constructor for tests and docs: `spec(1, 3, 224, 224)`."""
    return TensorSpec(tuple(shape), dtype, ITEMSIZE[dtype], -1, role)


def canonical_dtype(name: str) -> str:
    """'fp16' -> 'float16'; raises InputSpecError for names costmodel does not know."""
    key = name.strip().lower().removeprefix("torch.")
    key = _ALIASES.get(key, key)
    if key not in ITEMSIZE:
        known = ", ".join(sorted(ITEMSIZE))
        raise InputSpecError(f"unknown dtype {name!r}; use one of: {known}")
    return key


_DIM = re.compile(r"^\d+$")


def parse_input(text: str) -> tuple[str | None, tuple[int, ...], str]:
    """Parse '[name[.key...]=]1x3x224x224[:dtype]' into (name, shape, dtype).

    >>> parse_input("attention_mask=1x128:int64")
    ('attention_mask', (1, 128), 'int64')
    """
    raw = text
    text = text.strip()
    if not text:
        raise InputSpecError("empty input shape; expected something like 1x3x224x224")
    name = None
    if "=" in text:
        name, text = (part.strip() for part in text.split("=", 1))
        parts = name.split(".")   # batch.image=...: a key of a dict (or item of a list) input
        if not parts[0].isidentifier() or not all(p.isidentifier() or p.isdigit()
                                                  for p in parts[1:]):
            raise InputSpecError(f"bad input name {name!r} in {raw!r}; expected name=1x3x224x224 "
                                 f"or name.key=1x3x224x224 for a key of a dict input")
    dtype = "float32"
    if ":" in text:
        text, dtype_name = text.rsplit(":", 1)
        dtype = canonical_dtype(dtype_name)
    dims = text.lower().replace("*", "x").split("x")
    if not all(_DIM.match(d.strip()) for d in dims):
        raise InputSpecError(
            f"malformed input shape {raw!r}; expected positive integers joined by 'x', "
            "like 1x3x224x224 or 1x128:int64")
    shape = tuple(int(d) for d in dims)
    if any(d == 0 for d in shape):
        raise InputSpecError(f"input shape {raw!r} has a zero dimension; "
                             "every dimension must be >= 1")
    check_size(shape, raw)
    return name, shape, dtype


MAX_ELEMENTS = 2 ** 63 - 1   # a tensor's element count is a signed 64-bit integer


def check_size(shape: tuple[int, ...], raw: object) -> None:
    """Refuse a shape no tensor can have: more elements than a signed 64-bit count holds."""
    numel = 1
    for d in shape:
        numel *= d
    if numel > MAX_ELEMENTS:
        raise InputSpecError(f"input shape {raw!r} has {numel:.3g} elements, more than any "
                             f"tensor can hold (2**63 - 1)")


def format_shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def format_input(name: str, shape: tuple[int, ...], dtype: str | None = None) -> str:
    """An input as `--input` spells it: 'x=1x3x224x224:float32' ('x=1x3x224x224' without dtype)."""
    return f"{name}={format_shape(shape)}" + (f":{dtype}" if dtype is not None else "")


def broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy broadcasting of shapes."""
    if len(shapes) == 2 and shapes[0] == shapes[1]:   # most binary ops: the same shapes
        return tuple(shapes[0])
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for i in range(-ndim, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i} - {1}
        if len(sizes) > 1:
            raise ValueError(f"shapes {shapes} do not broadcast")
        result.append(sizes.pop() if sizes else 1)
    return tuple(result)
