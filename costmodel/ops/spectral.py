"""Bindings of the discrete Fourier transforms (`torch.fft.*`), with their fast shape rule.

Three ops, by the kind of transform: `fft` (complex to complex: fft, ifft, fft2, ifft2, fftn,
ifftn), `rfft` (real to complex, half spectrum: rfft, rfft2, rfftn, ihfft, ihfft2, ihfftn) and
`irfft` (complex half spectrum to real: irfft, irfft2, irfftn, hfft, hfft2, hfftn). The shape rule
lives here rather than in shape_rules.py (the FFT family's own; cross-checked against torch's meta
kernels in tests/test_shape_rules.py). `extra` hands the formula the transformed dims and their
logical lengths N (the signal's length, which for a half spectrum is not the stored length).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .registry import bind
from .shape_rules import META, _same

TO_COMPLEX = {torch.float16: torch.complex32, torch.float32: torch.complex64,
              torch.float64: torch.complex128}
TO_REAL = {c: r for r, c in TO_COMPLEX.items()}
ONE = ("input", "n", "dim", "norm")
MANY = ("input", "s", "dim", "norm")


def _dims(b: dict, form: str) -> tuple[int, ...] | None:
    """The transformed dims, normalised, or None (an argument form the rule leaves to torch)."""
    x, ndim = b["input"], b["input"].ndim
    if form == "1":
        dims = (b.get("dim", -1),)
    else:
        dim, s = b.get("dim"), b.get("s")
        if dim is None:
            dims = (-2, -1) if form == "2" else (
                tuple(range(-len(s), 0)) if s is not None else tuple(range(ndim)))
        else:
            dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if not isinstance(x, torch.Tensor) or not dims or any(
            not isinstance(d, int) or not -ndim <= d < ndim for d in dims):
        return None
    dims = tuple(d % ndim for d in dims)
    return dims if len(set(dims)) == len(dims) else None


def _lengths(b: dict, form: str, dims: tuple[int, ...]) -> list[int] | None:
    """The requested lengths (n / s), or None where not given; -1 in s means the input's."""
    x = b["input"]
    given = b.get("n") if form == "1" else b.get("s")
    if given is None:
        return None
    sizes = [given] if form == "1" else list(given)
    if len(sizes) != len(dims) or any(not isinstance(v, int) or v == 0 or v < -1
                                      for v in sizes):
        raise ValueError("an FFT length the rule leaves to torch")
    return [x.shape[d] if v == -1 else v for v, d in zip(sizes, dims)]


def plan(b: dict, kind: str, form: str) -> tuple[tuple[int, ...], list[int], list[int]] | None:
    """(dims, output sizes along them, logical lengths N along them), or None."""
    dims = _dims(b, form)
    if dims is None:
        return None
    x = b["input"]
    try:
        given = _lengths(b, form, dims)
    except ValueError:
        return None
    logical = given or [x.shape[d] for d in dims]
    out = list(logical)
    if kind == "c2r" and given is None:
        logical[-1] = out[-1] = 2 * (x.shape[dims[-1]] - 1)
    if kind == "r2c":
        out[-1] = logical[-1] // 2 + 1
    if any(v < 1 for v in logical):
        return None
    return dims, out, logical


def _fft_shape(kind: str, form: str) -> Callable[[dict], Any]:
    def rule(b: dict) -> Any:
        x = b["input"]
        if not isinstance(x, torch.Tensor) or x.ndim == 0:
            return None
        found = plan(b, kind, form)
        if found is None:
            return None
        if kind == "c2c":
            dtype = x.dtype if x.is_complex() else TO_COMPLEX.get(x.dtype)
        elif kind == "r2c":
            dtype = None if x.is_complex() else TO_COMPLEX.get(x.dtype)
        else:
            dtype = TO_REAL.get(x.dtype) if x.is_complex() else (
                x.dtype if x.dtype in TO_COMPLEX else None)
        if dtype is None:
            return None   # integer, bfloat16 or complex input to rfft: torch decides
        dims, out, _ = found
        shape = list(x.shape)
        for d, size in zip(dims, out):
            shape[d] = size
        return torch.empty(shape, dtype=dtype, device=META)
    return rule


def _fft_extra(kind: str, form: str) -> Callable[[dict, Any], dict]:
    def extra(b: dict, out: Any) -> dict:
        found = plan(b, kind, form) if isinstance(b.get("input"), torch.Tensor) else None
        if found is None or not isinstance(out, torch.Tensor):
            return {}
        dims, sizes, logical = found
        return {"fft_lengths": tuple(logical),
                "fft_batch": out.numel() // max(math.prod(sizes), 1)}
    return extra


for _op, _kind, _names in (
        ("fft", "c2c", "fft ifft"), ("rfft", "r2c", "rfft ihfft"), ("irfft", "c2r", "irfft hfft")):
    for _form, _suffix, _params in (("1", "", ONE), ("2", "2", MANY), ("n", "n", MANY)):
        _callables = " ".join(f"torch.fft.{name}{_suffix}" for name in _names.split())
        bind(_op, _callables, _params, shape=_fft_shape(_kind, _form),
             extra=_fft_extra(_kind, _form))
bind("copy", "torch.fft.fftshift torch.fft.ifftshift", ("input", "dim"), shape=_same,
     extra=lambda b, out: {"is_view": False})
bind("create", "torch.fft.fftfreq torch.fft.rfftfreq", ("*args",), create=True)
