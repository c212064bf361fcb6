"""Fast output-shape rules: bound arguments -> the output meta tensor(s), or None.

Many meta kernels are Python decompositions far slower than the arithmetic (a meta hardswish takes
~1 ms, a meta layer_norm ~0.7 ms, torch's meta conv imports sympy): for ops whose output shape is
obvious, costmodel computes it instead of running the kernel. A rule returns None for anything
unusual, and torch's own meta kernel then decides (and raises its own error).
`tests/test_shape_rules.py` cross-checks every rule against torch's meta kernels.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ..core.tensors import broadcast

META = torch.device("meta")


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for size in reversed(shape):
        strides.append(acc)
        acc *= max(size, 1)
    return tuple(reversed(strides))


def empty(shape, dtype: torch.dtype, like: Tensor | None = None) -> Tensor:
    """A meta tensor of `shape`, keeping `like`'s memory layout when it has the same dense shape."""
    shape = tuple(shape)
    if like is not None and tuple(like.shape) == shape and (
            like.is_contiguous() or like.dim() == 4 and like.is_contiguous(
                memory_format=torch.channels_last)):
        return torch.empty_strided(shape, like.stride(), dtype=dtype, device=META)
    # contiguous_strides(shape), as torch.empty makes them (a test checks it), in C
    return torch.empty(shape, dtype=dtype, device=META)


def _first(b: dict) -> Tensor:
    """In place: the output is the input tensor itself."""
    return b["input"]


def _same(b: dict) -> Tensor:
    x = b["input"]
    if b.get("inplace"):
        return x
    return empty(x.shape, b.get("dtype") or x.dtype, x)


def _binary(b: dict) -> Tensor | None:
    a, o = b.get("input"), b.get("other")
    if not isinstance(a, Tensor):
        return None
    if isinstance(o, Tensor):
        if o.dtype != a.dtype or o.dim() == 0 or a.dim() == 0 or a.device != o.device:
            return None  # type promotion and 0-dim rules: let torch decide
        shape = broadcast(tuple(a.shape), tuple(o.shape))
        return empty(shape, a.dtype, a if shape == tuple(a.shape) else o)
    if isinstance(o, bool) or not isinstance(o, (int, float)):
        return None
    if isinstance(o, float) and not a.is_floating_point():
        return None
    return empty(a.shape, a.dtype, a)


def _compare(b: dict) -> Tensor | None:
    out = _binary(b)
    return None if out is None else empty(out.shape, torch.bool)


_QUANTIZED_PAIR = {torch.uint8, torch.int8}
#: The integer dtype that represents each quantized dtype on meta tensors (capture/quantized.py).
INT_OF = {torch.quint8: torch.uint8, torch.qint8: torch.int8, torch.qint32: torch.int32,
          torch.quint4x2: torch.uint8}


def _quantize(b: dict) -> Tensor | None:
    """quantize_per_tensor / _per_channel / _dynamic: the input's shape in the integer dtype
    that represents the quantized one (quint8 -> uint8); dequantize: float32. A meta tensor
    cannot be quantized (torch's meta kernel answers float32), so costmodel carries quantized
    tensors as their integer representation."""
    x = b.get("input")
    if not isinstance(x, Tensor):
        return None
    dtype = b.get("dtype")
    if dtype is None:   # dequantize: from the integer representation
        quantized = x.dtype in INT_OF or x.dtype in INT_OF.values()
        return empty(tuple(x.shape), torch.float32) if quantized else None
    return empty(tuple(x.shape), INT_OF.get(dtype, dtype)) if dtype in INT_OF else None


class InputDtypeError(RuntimeError):
    """An input real torch would refuse for its dtype: the user's input is wrong, so no other
    capture is tried."""


def _same_dtype(x: Any, w: Any, what: str) -> None:
    """Real torch refuses an input whose dtype differs from the weight's (an int64 tensor or an
    fp32 input into a bf16 layer); meta kernels do not check, so say it as torch would. A uint8
    input on an int8 weight is a quantized kernel's pair (capture/quantized.py)."""
    if isinstance(x, Tensor) and isinstance(w, Tensor) and x.dtype != w.dtype and \
            {x.dtype, w.dtype} != _QUANTIZED_PAIR:
        raise InputDtypeError(f"{what}: input dtype {str(x.dtype).removeprefix('torch.')} and "
                           f"weight dtype {str(w.dtype).removeprefix('torch.')} should be the "
                           f"same (torch refuses this on a real device)")


def _linear(b: dict) -> Tensor | None:
    x, w = b["input"], b["weight"]
    _same_dtype(x, w, "linear")
    if x.dim() == 0 or w.dim() not in (1, 2) or x.shape[-1] != w.shape[-1] or \
            x.dtype != w.dtype and {x.dtype, w.dtype} != _QUANTIZED_PAIR:
        return None   # let torch raise its own error
    shape = tuple(x.shape[:-1]) + ((w.shape[0],) if w.dim() == 2 else ())
    return empty(shape, x.dtype)


def _conv(b: dict) -> Tensor | None:
    """Output of conv1d/2d/3d: (N, Cout, *[(size + 2p - d(k - 1) - 1) // s + 1]). Anything
    unusual (string padding, a shape torch would refuse) goes to torch's own meta kernel, which
    raises the real error; this rule only saves the common case its overhead."""
    x, w = b["input"], b["weight"]
    _same_dtype(x, w, "convolution")
    groups = b.get("groups", 1)
    if not isinstance(x, Tensor) or not isinstance(w, Tensor) or \
            x.dtype != w.dtype and {x.dtype, w.dtype} != _QUANTIZED_PAIR:
        return None
    xshape, wshape = x.shape, w.shape
    k = len(wshape) - 2
    if k < 1 or len(xshape) not in (k + 1, k + 2) or type(groups) is not int or groups < 1:
        return None
    if xshape[-k - 1] != wshape[1] * groups or wshape[0] % groups:
        return None
    out = _windows(tuple(xshape[-k:]), tuple(wshape[2:]), b.get("stride", 1), b.get("padding", 0),
                   b.get("dilation", 1))
    if out is None:
        return None
    batched = len(xshape) == k + 2
    shape = ((xshape[0],) if batched else ()) + (wshape[0],) + out
    if batched and k == 2 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last):
        return torch.empty(shape, dtype=x.dtype, device=META).contiguous(
            memory_format=torch.channels_last)
    return empty(shape, x.dtype)


def _windows(sizes: tuple[int, ...], kernel: tuple[int, ...], stride: Any, padding: Any,
             dilation: Any) -> tuple[int, ...] | None:
    """Output sizes of a sliding window (conv, pooling): (size + 2p - d(k - 1) - 1) // s + 1 per
    spatial dim; None for string padding, an empty output and anything else torch should judge."""
    k = len(sizes)
    stride, padding, dilation = _per_dim(stride, k), _per_dim(padding, k), _per_dim(dilation, k)
    if stride is None or padding is None or dilation is None:
        return None
    out = []
    for size, w, s, p, d in zip(sizes, kernel, stride, padding, dilation):
        if w < 1 or s < 1 or d < 1 or p < 0:
            return None
        n = (size + 2 * p - d * (w - 1) - 1) // s + 1
        if n < 1:
            return None
        out.append(n)
    return tuple(out)


def _per_dim(value: Any, k: int) -> tuple[int, ...] | None:
    """stride=2 or stride=(2, 2) as k ints; None for 'same', a wrong length and the like."""
    if type(value) is int:
        return (value,) * k
    if not isinstance(value, (tuple, list)):
        return None
    for v in value:   # a loop, not all(<generator>): three of these per conv
        if type(v) is not int:
            return None
    if len(value) == k:
        return tuple(value)
    if len(value) == 1:
        return (value[0],) * k
    return None


def _matmul(b: dict) -> Tensor | None:
    """torch.matmul of two tensors with at least 2 dims each: broadcast batch dims, then
    (n, k) @ (k, m). Vectors, mixed dtypes and mismatches go to torch (its error, its rules)."""
    a, o = b.get("input"), b.get("other")
    if not isinstance(a, Tensor) or not isinstance(o, Tensor) or a.dtype != o.dtype:
        return None
    ashape, oshape = tuple(a.shape), tuple(o.shape)
    if len(ashape) < 2 or len(oshape) < 2 or ashape[-1] != oshape[-2]:
        return None
    try:
        batch = broadcast(ashape[:-2], oshape[:-2])
    except ValueError:
        return None
    return empty(batch + (ashape[-2], oshape[-1]), a.dtype)


def _sdpa(b: dict) -> Tensor | None:
    q, k, v = b["query"], b["key"], b["value"]
    if q.dim() < 2 or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        return None
    return empty(tuple(q.shape[:-1]) + (v.shape[-1],), q.dtype)


def _embedding(b: dict) -> Tensor:
    idx, w = b["input"], b["weight"]
    if isinstance(idx, Tensor) and idx.dtype not in (torch.int64, torch.int32):
        raise InputDtypeError(f"embedding: indices must be int64 or int32, not "
                           f"{str(idx.dtype).removeprefix('torch.')} (torch refuses this on a "
                           f"real device); pass e.g. --input 1x128:int64")
    return empty(tuple(idx.shape) + (w.shape[-1],), w.dtype)


def _cat(b: dict) -> Tensor | None:
    tensors = [t for t in b["tensors"] if t.dim() != 1 or t.shape[0] != 0]
    if not tensors or len({t.dtype for t in tensors}) != 1 or len({t.dim() for t in tensors}) != 1:
        return None
    dim = b.get("dim", 0)
    dim = dim + tensors[0].dim() if dim < 0 else dim
    shape = list(tensors[0].shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return empty(shape, tensors[0].dtype)


def _adaptive(spatial: int) -> Callable[[dict], Tensor | None]:
    def shape(b: dict) -> Tensor | None:
        if b.get("return_indices"):
            return None
        x, size = b["input"], b["output_size"]
        size = tuple(size) if isinstance(size, (list, tuple)) else (size,) * spatial
        outer = tuple(x.shape[:-spatial])
        return empty(outer + tuple(s if s is not None else x.shape[len(outer) + i]
                                   for i, s in enumerate(size)), x.dtype)
    return shape


def _with_indices(rule: Callable[[dict], Tensor | None]) -> Callable[[dict], Any]:
    """A rule for a callable that always returns (values, int64 indices of the same shape)."""
    def shape(b: dict) -> Any:
        out = rule(b)
        return None if out is None else (out, empty(out.shape, torch.int64))
    return shape


def _pool(spatial: int, dilated: bool) -> Callable[[dict], Tensor | None]:
    """max_pool / avg_pool without ceil_mode or indices, on a contiguous input:
    (size + 2p - d(k - 1) - 1) // s + 1 per spatial dim. Anything else goes to torch."""
    def shape(b: dict) -> Tensor | None:
        x = b["input"]
        if b.get("ceil_mode") or b.get("return_indices") or not isinstance(x, Tensor) or \
                len(x.shape) not in (spatial + 1, spatial + 2) or not x.is_contiguous():
            return None
        kernel = _per_dim(b["kernel_size"], spatial)
        padding = _per_dim(b.get("padding", 0), spatial)
        if kernel is None or padding is None or any(2 * p > w for p, w in zip(padding, kernel)):
            return None                    # torch refuses padding over half the window
        stride = b.get("stride")
        out = _windows(tuple(x.shape[-spatial:]), kernel,
                       kernel if stride is None or stride == [] or stride == () else stride,
                       padding, b.get("dilation", 1) if dilated else 1)
        if out is None:
            return None
        return empty(tuple(x.shape[:-spatial]) + out, x.dtype)
    return shape


def _mean_sum(b: dict) -> Tensor | None:
    """sum / mean of a floating tensor over `dim` (an int or a list of ints), with keepdim.
    Integer inputs (type promotion), a dtype argument, dim=None and the like go to torch."""
    x, dim = b["input"], b.get("dim")
    if not isinstance(x, Tensor) or not x.is_floating_point() or b.get("dtype") is not None:
        return None
    ndim = len(x.shape)
    dims = (dim,) if type(dim) is int else tuple(dim) if isinstance(dim, (list, tuple)) and dim \
        and all(type(d) is int for d in dim) else None
    if dims is None or ndim == 0:
        return None
    axes = set()
    for d in dims:
        if not -ndim <= d < ndim:
            return None
        axes.add(d % ndim)
    if len(axes) != len(dims):
        return None
    keep = bool(b.get("keepdim", False))
    shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape) if keep or i not in axes)
    return empty(shape, x.dtype)


def _interpolate(b: dict) -> Tensor | None:
    x = b["input"]
    spatial = x.dim() - 2
    size, scale = b.get("size"), b.get("scale_factor")
    if size is not None:
        size = tuple(size) if isinstance(size, (list, tuple)) else (size,) * spatial
    elif scale is not None:
        scale = tuple(scale) if isinstance(scale, (list, tuple)) else (scale,) * spatial
        size = tuple(math.floor(float(n) * s) for n, s in zip(x.shape[2:], scale))
    else:
        return None
    return empty(tuple(x.shape[:2]) + size, x.dtype)


def _mha(b: dict):
    q, k = b["query"], b["key"]
    batched = q.dim() == 3
    out = empty(q.shape, q.dtype)
    if not b.get("need_weights", True):
        return out, None
    length, src = q.shape[0], k.shape[0]
    heads = b["num_heads"]
    lead = (q.shape[1],) if batched else ()
    mid = () if b.get("average_attn_weights", True) else (heads,)
    return out, empty(lead + mid + (length, src), q.dtype)


def _grouped_mm(b: dict) -> Tensor | None:
    """torch._grouped_mm, in any floating dtype (its meta kernel refuses float32, a CUDA rule,
    though float32 runs on CPU): 2D (M, K) x 3D (G, K, N) -> (M, N); 3D x 3D -> (G, M, N);
    3D (G, M, K) x 2D (K, N) -> (M, N); 2D (M, K) x 2D (K, N) -> (G, M, N), G = len(offs).
    Mismatches go to torch's kernel (its error)."""
    a, w, offs = b.get("input"), b.get("mat2"), b.get("offs")
    if not isinstance(a, Tensor) or not isinstance(w, Tensor) or a.dtype != w.dtype or \
            a.dim() not in (2, 3) or w.dim() not in (2, 3) or b.get("bias") is not None:
        return None
    dtype = b.get("out_dtype") or a.dtype
    if a.dim() == 3 and w.dim() == 3:
        if offs is not None or a.shape[0] != w.shape[0] or a.shape[2] != w.shape[1]:
            return None
        return empty((a.shape[0], a.shape[1], w.shape[2]), dtype)
    if not isinstance(offs, Tensor) or offs.dim() != 1:
        return None
    if a.dim() == 2 and w.dim() == 2:
        return empty((offs.shape[0], a.shape[0], w.shape[1]), dtype)
    if a.shape[-1] != w.shape[-2]:
        return None
    if a.dim() == 2:
        return None if offs.shape[0] != w.shape[0] else empty((a.shape[0], w.shape[-1]), dtype)
    return None if offs.shape[0] != a.shape[0] else empty((a.shape[1], w.shape[1]), dtype)


def _clamp(b: dict) -> Tensor | None:
    """clamp / clamp_min / clamp_max with number bounds: the input's shape. A tensor bound
    broadcasts (and may promote): torch decides."""
    if isinstance(b.get("min"), Tensor) or isinstance(b.get("max"), Tensor):
        return None
    return _same(b)


def _histc(b: dict) -> Tensor | None:
    x, bins = b.get("input"), b.get("bins", 100)
    if not isinstance(x, Tensor) or not x.is_floating_point() or type(bins) is not int or bins < 1:
        return None
    return empty((bins,), x.dtype)


def _outer(b: dict) -> Tensor | None:
    a, v = b.get("input"), b.get("vec2")
    if not isinstance(a, Tensor) or not isinstance(v, Tensor) or a.dim() != 1 or v.dim() != 1 \
            or a.dtype != v.dtype:
        return None
    return empty((a.shape[0], v.shape[0]), a.dtype)


def _one_hot(b: dict) -> Tensor | None:
    """(*input.shape, num_classes), int64; num_classes=-1 (the data's max + 1): torch decides."""
    x, n = b.get("input"), b.get("num_classes", -1)
    if not isinstance(x, Tensor) or x.dtype != torch.int64 or type(n) is not int or n < 0:
        return None
    return empty(tuple(x.shape) + (n,), torch.int64)


def _grid_sample(b: dict) -> Tensor | None:
    """(N, C, H, W) sampled at grid (N, Ho, Wo, 2) -> (N, C, Ho, Wo); 3-D: grid (N, Do, Ho, Wo, 3)
    -> (N, C, Do, Ho, Wo). torch's meta kernel is a slow Python decomposition."""
    x, grid = b.get("input"), b.get("grid")
    if not isinstance(x, Tensor) or not isinstance(grid, Tensor) or x.dim() not in (4, 5) or \
            grid.dim() != x.dim() or grid.shape[0] != x.shape[0] or \
            grid.shape[-1] != x.dim() - 2 or grid.dtype != x.dtype or \
            b.get("mode", "bilinear") not in ("bilinear", "nearest", "bicubic") or \
            b.get("padding_mode", "zeros") not in ("zeros", "border", "reflection") or \
            b.get("mode") == "bicubic" and x.dim() == 5:
        return None
    return empty(tuple(x.shape[:2]) + tuple(grid.shape[1:-1]), x.dtype)


def _unpool(spatial: int) -> Callable[[dict], Tensor | None]:
    """max_unpool: (size - 1) * stride - 2 * padding + kernel per spatial dim, or output_size."""
    def shape(b: dict) -> Tensor | None:
        x, idx = b.get("input"), b.get("indices")
        if not isinstance(x, Tensor) or not isinstance(idx, Tensor) or idx.shape != x.shape or \
                x.dim() not in (spatial + 1, spatial + 2):
            return None
        lead = tuple(x.shape[:-spatial])
        size = b.get("output_size")
        if size is not None:
            size = tuple(size)
            if len(size) == x.dim():
                size = size[-spatial:]
            if len(size) != spatial or not all(type(s) is int for s in size):
                return None
            return empty(lead + size, x.dtype)
        kernel = _per_dim(b["kernel_size"], spatial)
        stride = b.get("stride")
        stride = kernel if stride is None else _per_dim(stride, spatial)
        padding = _per_dim(b.get("padding", 0), spatial)
        if kernel is None or stride is None or padding is None:
            return None
        out = tuple((n - 1) * s - 2 * p + k for n, s, p, k in
                    zip(x.shape[-spatial:], stride, padding, kernel))
        return empty(lead + out, x.dtype) if all(o > 0 for o in out) else None
    return shape


def _pool_with_indices(spatial: int) -> Callable[[dict], Any]:
    """max_pool{n}d_with_indices: (values, int64 indices), whatever `return_indices` says."""
    rule = _pool(spatial, dilated=True)
    return _with_indices(lambda b: rule({**b, "return_indices": False}))


def _weight_norm(b: dict) -> Tensor | None:
    v, g = b.get("v"), b.get("g")
    if not isinstance(v, Tensor) or not isinstance(g, Tensor) or v.dtype != g.dtype:
        return None
    return empty(v.shape, v.dtype)
