"""Generation cost as closed forms in the context length (pure: no torch).

One decode step's cost is affine in the number of cached tokens `c` (attention reads and scores
`new x (cached + new)`; every other op is constant), until a sliding window caps what a layer
keeps; past that break it is affine again with a smaller slope. So a step's cost is piecewise
affine in `c`, with breaks where a cache layer stops growing. `Piecewise` fits each segment from
two per-step reports (two captures per segment, whatever the number of steps) and evaluates it
exactly with integer arithmetic; capture/ (costmodel/generation.py) measures the points.

Liveness rule for activations (`peak_activation_bytes`): an output of a graph node is live from
the node that makes it to the last node that reads it (the graph output: to the end). Outputs of
nodes with zero memory access (views, reshapes) alias their input and add nothing. Tensors no node
makes (weights, and the KV cache a step starts from) are not activations; they are counted as
weights and KV-cache bytes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, Callable, Sequence

# the quantities a step measures, in order; every one is piecewise affine in the context
FIELDS = ("madds", "flops", "mac_bytes", "kv_cache_bytes")


@dataclass(frozen=True)
class StepRow:
    """One decode step: `context` tokens already cached, one new token per sequence."""

    context: int
    madds: int
    flops: int
    mac_bytes: int
    kv_cache_bytes: int   # the cache the step starts from (`context` tokens, windows capping)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Segment:
    lo: int                  # first context of the segment
    hi: int | None           # last context (None: unbounded)
    at: int                  # the context of `values`
    values: tuple[int, ...]
    slopes: tuple[Fraction, ...]

    def __call__(self, context: int) -> tuple[int, ...]:
        out = []
        for v, s in zip(self.values, self.slopes):
            x = v + s * (context - self.at)
            if x.denominator != 1:
                raise ArithmeticError(f"the closed form is not integral at context {context}")
            out.append(int(x))
        return tuple(out)


def segment_bounds(start: int, breaks: Sequence[int]) -> list[tuple[int, int | None]]:
    """The segments [lo, hi] from context `start` on, split at each break (the first context of
    a new regime: a sliding-window layer whose cache is full from there on)."""
    points = sorted({b for b in breaks if b > start})
    bounds: list[tuple[int, int | None]] = []
    lo = start
    for b in points:
        bounds.append((lo, b - 1))
        lo = b
    bounds.append((lo, None))
    return bounds


def fit_contexts(lo: int, hi: int | None) -> tuple[int, int]:
    """The two contexts measured to fit a segment: its two ends when bounded, else lo and 2lo+8
    (far apart, so that a non-affine cost would show at the contexts a test checks)."""
    if hi is not None and hi > lo:
        return lo, hi
    return lo, 2 * lo + 8


class Piecewise:
    """A step cost as exact piecewise-affine forms in the context."""

    def __init__(self, segments: Sequence[Segment]) -> None:
        self.segments = tuple(segments)

    @classmethod
    def fit(cls, start: int, breaks: Sequence[int],
            measure: Callable[[int], tuple[int, ...]]) -> Piecewise:
        segments = []
        for lo, hi in segment_bounds(start, breaks):
            a, b = fit_contexts(lo, hi)
            va, vb = measure(a), measure(b)
            slopes = tuple(Fraction(y - x, b - a) for x, y in zip(va, vb))
            segments.append(Segment(lo, hi, a, va, slopes))
        return cls(segments)

    def __call__(self, context: int) -> tuple[int, ...]:
        for seg in self.segments:
            if context >= seg.lo and (seg.hi is None or context <= seg.hi):
                return seg(context)
        raise ValueError(f"context {context} is before the first fitted context "
                         f"{self.segments[0].lo}")


def rows(form: Piecewise, first: int, steps: int) -> list[StepRow]:
    """The decode steps from `first` cached tokens on, one token each: O(steps) arithmetic,
    no capture."""
    return [StepRow(c, *form(c)) for c in range(first, first + steps)]


def curve_contexts(first: int, steps: int, points: int = 5) -> list[int]:
    """`points` contexts of the decode steps: the first, the last and evenly between."""
    idx = {round(i * (steps - 1) / max(points - 1, 1)) for i in range(points)}
    return [first + i for i in sorted(idx)]


def sum_rows(found: Sequence[StepRow]) -> dict[str, int]:
    return {f: sum(getattr(r, f) for r in found) for f in FIELDS[:3]}


def peak_activation_bytes(graph: Any) -> int:
    """The largest sum of live activation bytes at any node of one capture (module docstring)."""
    nodes = list(graph)
    last = len(nodes)
    death: dict[tuple[str, int], int] = {}
    for i, node in enumerate(nodes):
        for src in node.sources:
            if src is not None:
                death[src] = max(death.get(src, 0), i)
    events = [0] * (last + 1)
    for i, node in enumerate(nodes):
        if node.cost is None or node.cost.mac == 0 or node.kind == "placeholder":
            continue
        for j, spec in enumerate(node.outputs):
            size = spec.reads * spec.itemsize
            events[i] += size
            end = death.get((node.name, j), last)
            events[min(end, last - 1) + 1] -= size
    live = peak = 0
    for delta in events:
        live += delta
        peak = max(peak, live)
    return peak


def intensity(flops: int, mac_bytes: int) -> float:
    """Arithmetic intensity: FLOPs per byte of memory access."""
    return flops / mac_bytes if mac_bytes else 0.0


def bound(flops: int, mac_bytes: int, peak_flops: float, bandwidth: float) -> str:
    """Which roof applies: compute when the intensity is above the ridge point
    peak_flops / bandwidth, else memory."""
    return "compute" if intensity(flops, mac_bytes) >= peak_flops / bandwidth else "memory"


@dataclass(frozen=True)
class GroupQuantizedKV:
    """The bytes of a group-wise integer KV cache as transformers' `QuantizedCache` keeps it with
    the `quanto` or `hqq` backend (KIVI-style, `QuantizedLayer`): per layer, keys and values
    each hold

    - the quantized tokens: `nbits` bits per element, packed (rounded up to whole bytes per
      tensor), plus one scale and one zero-point per `group` elements in the cache's dtype
      (`itemsize` bytes each: the backends' group-wise affine quantization);
    - the residual tokens, at full precision: the cache appends each new token to a
      full-precision residual and, when it would reach `residual` tokens, quantizes everything
      and empties it. After a prompt of `prompt` tokens (quantized at once) and k decode steps,
      the residual holds k mod `residual` tokens.

    `per_token` is kv heads x head dim: the elements one cached token of one sequence adds to
    one tensor (the batch multiplies it).
    """

    layers: int
    per_token: int
    itemsize: int
    nbits: int = 4
    group: int = 64
    residual: int = 128

    def residual_tokens(self, context: int, prompt: int) -> int:
        return (context - prompt) % self.residual if context > prompt else 0

    def __call__(self, context: int, prompt: int, batch: int = 1) -> int:
        """Bytes of the cache holding `context` tokens per sequence, `prompt` of them from the
        prompt pass, for `batch` sequences."""
        kept = self.residual_tokens(context, prompt)
        per_token = self.per_token * batch
        quantized = (context - kept) * per_token
        packed = -(-quantized * self.nbits // 8)
        scales = 2 * -(-quantized // self.group) * self.itemsize
        return self.layers * 2 * (packed + scales + kept * per_token * self.itemsize)
