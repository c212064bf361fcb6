"""Calibration's measuring and fitting tools: the timer, and the synthetic blocks whose timings
fit the in-network scales of a profile (the fixed-cost scale on floor blocks, the other two on
half of the full-size blocks) and its interval (the other half).

The blocks are small networks costmodel builds itself from a seed (`synthetic_block`); no user
model and no scored model is ever timed here. torch is imported inside the functions.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

from .latency import DeviceProfile, estimate, is_dense
from .synthetic import synthetic_block  # the blocks _fit_blocks times

#: a call this long (seconds) is its own second warm-up and first batch: the large GEMM cells
LONG_CALL = 0.02


def _best_seconds(fn: Callable[[], object], budget: float) -> float:
    """Seconds per call of `fn`, the least disturbed by other work: the fastest of many short
    batches of calls (one call per batch from 0.5 ms up, more for shorter calls), taken until
    `budget` seconds are spent (at least 3 batches, and never much past the budget: a loaded
    machine makes the calibration no slower, only noisier). A call of LONG_CALL or more is
    warmed up once and counts as the first batch (4 calls at least, not 6)."""
    fn()                                       # warm up (allocations, kernel selection)
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    if once < LONG_CALL:                       # a second warm-up, and three batches at least
        fn()
    reps = max(1, int(5e-4 / once))
    best = once if once >= LONG_CALL else float("inf")
    deadline = time.perf_counter() + budget
    done = 1 if once >= LONG_CALL else 0
    while done < 3 or (time.perf_counter() < deadline and done < 10_000):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - start) / reps)
        done += 1
    return best


#: how many synthetic blocks calibration times (half to fit, half held out)
BLOCKS = 48
#: pull of the in-network scales towards 1, per fitted block (see _relative_fit): a scale moved
#: by 0.2 costs as much as a 4.5% error on every block
RIDGE = 0.05
#: every FLOOR_EVERY-th block is timed again on FLOOR_SIZE x FLOOR_SIZE maps (FLOOR_SIZE tokens),
#: with FLOOR_WEIGHT times a block's share of the time (its calls are short)
FLOOR_EVERY = 2
FLOOR_SIZE = 4
FLOOR_WEIGHT = 0.5
#: the largest fixed-cost scale the floor blocks may set (the smallest is 1/3): a figure far
#: from 1 means the blocks were disturbed. Not 3: on a quiet machine the floor blocks reached
#: 3.0 at one thread on the EPYC (2026-12-03), so the limit, not the machine, set the scale
FIXED_MAX = 5.0
#: bytes of weights and inputs a synthetic block cycles through (copies of it), past L2 caches
#: (the fused calibration's blocks)
COLD_BYTES = 4 * 2 ** 20


def _relative_fit(rows: list[tuple[float, ...]], ridge: float = 0.0,
                  known: dict[int, float] | None = None) -> tuple[float, ...]:
    """Scales (k_1 .. k_n) minimising sum (sum_i k_i x_i / m - 1)^2 over rows (x_1 .. x_n, m)
    plus ridge * sum (k_i - 1)^2: the relative error, so small and large blocks count alike,
    and with `ridge` > 0 a pull towards 1 (no correction) that keeps terms the blocks cannot
    tell apart from trading against each other on noise. `known` holds scales already
    measured elsewhere ({index: scale}); the others are fitted around them. Falls back to one
    common scale when the normal equations are singular or give a scale <= 0."""
    known = known or {}
    n = len(rows[0]) - 1
    free = [i for i in range(n) if i not in known]

    def rest(r):                                   # what the known scales leave to explain
        return 1.0 - sum(k * r[i] for i, k in known.items()) / r[-1]
    a = [[sum(r[i] * r[j] / r[-1] ** 2 for r in rows) + (ridge if i == j else 0.0)
          for j in free] for i in free]
    b = [sum(r[i] / r[-1] * rest(r) for r in rows) + ridge for i in free]
    solved = _solve(a, b)
    if solved is not None and all(k > 0 for k in solved):
        found = dict(zip(free, solved))
        return tuple(known.get(i, found.get(i, 1.0)) for i in range(n))
    total = sum(sum(r[:-1]) / r[-1] for r in rows)
    square = sum((sum(r[:-1]) / r[-1]) ** 2 for r in rows)
    return (total / square if square else 1.0,) * n


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when singular."""
    n = len(b)
    m = [row[:] + [rhs] for row, rhs in zip(a, b)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-12 * max(1.0, max(abs(v) for row in m for v in row[:n])):
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col])]
    return [m[i][n] / m[i][i] for i in range(n)]


def floor_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A synthetic block's input shrunk until its fixed costs dominate: 4 x 4 maps (a conv
    block's (1, c, s, s)), or 4 tokens (a transformer block's (1, t, d))."""
    if len(shape) == 4:
        return (*shape[:2], FLOOR_SIZE, FLOOR_SIZE)
    return (shape[0], FLOOR_SIZE, *shape[2:])


def _interleaved_best(calls: list[Callable[[], object]], budget: float) -> list[float]:
    """Seconds of the fastest call of each of `calls`, timed in rounds that call each once in
    turn (at least 3 rounds, then more until `budget` seconds are spent): each call finds the
    caches as the others left them, as a layer finds them in a network, where every other
    layer has run since its last call (its weights and module data cold, the interpreter's and
    the dispatcher's code, shared by every op, warm)."""
    for fn in calls:
        fn()                                   # warm up (allocations, kernel selection)
    best = [float("inf")] * len(calls)
    deadline = time.perf_counter() + budget
    rounds = 0
    while rounds < 3 or (time.perf_counter() < deadline and rounds < 1000):
        for i, fn in enumerate(calls):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
        rounds += 1
    return best


def _time_blocks(shapes: list[tuple[int, tuple[int, ...]]], profile: DeviceProfile,
                 analyze: Callable, budget: float
                 ) -> list[tuple[float, float, float, float, float]]:
    """(dense, light, fixed, known, measured) seconds of each synthetic block (seed, input
    shape): the estimate's parts at unit scales of `profile` (known: the conv weight pass and
    the page faults of new large tensors, which have no scale),
    and the fastest call, timed interleaved (_interleaved_best)."""
    import torch
    models = [(synthetic_block(seed)[0], torch.randn(shape)) for seed, shape in shapes]
    with torch.no_grad():
        measured = _interleaved_best([lambda m=m, x=x: m(x) for m, x in models], budget)
    rows = []
    for (model, _), (_, shape), m in zip(models, shapes, measured):
        est = estimate(analyze(model, "x".join(map(str, shape))), profile)
        passed = sum(op.weights_s + op.faults_s for op in est.ops)
        dense = sum(op.seconds - op.dispatch_s - op.weights_s - op.faults_s for op in est.ops
                    if is_dense((op.category,)))
        light = sum(op.seconds - op.dispatch_s for op in est.ops) - passed - dense
        rows.append((dense, light, est.total_s - dense - light - passed, passed, m))
    return rows


def _fit_blocks(profile: DeviceProfile, analyze: Callable, seconds: float) -> DeviceProfile:
    """Time BLOCKS synthetic blocks, and every FLOOR_EVERY-th one again on a 4 x 4 map (4
    tokens), each set interleaved (_interleaved_best), as the layers of a network run. The
    fixed-cost scale comes from the floor blocks, where fixed costs are nearly all the time:
    in a network each op's dispatch and module call runs 2-3x as long as the same call
    repeated in a loop (measured on the EPYC: floor blocks back to back at 1.8x, interleaved
    at 2.7x). The two in-model scales are then fitted on the even full-size blocks around it,
    and the interval is taken from the residuals of the odd (held-out) ones. (Cycling copies of
    one block through 4 MiB, as before, left its weights and code in the caches, where a
    network's are not.)"""
    import dataclasses
    import statistics
    unit = dataclasses.replace(profile, in_model_scale=1.0, light_scale=1.0, overhead_scale=1.0)
    floors = list(range(0, BLOCKS, FLOOR_EVERY))
    share = seconds / (BLOCKS + len(floors) * FLOOR_WEIGHT)
    rows = _time_blocks([(seed, synthetic_block(seed)[1]) for seed in range(BLOCKS)], unit,
                        analyze, share * BLOCKS)
    floor_rows = _time_blocks([(seed, floor_shape(synthetic_block(seed)[1])) for seed in floors],
                              unit, analyze, share * len(floors) * FLOOR_WEIGHT)
    # a scale far from 1 means the blocks were disturbed (a loaded machine), not a real effect:
    # keep each within [1/3, 3] so one bad calibration cannot wreck every estimate
    b = min(max(statistics.median((m - x - y - w) / z for x, y, z, w, m in floor_rows if z > 0),
                1 / 3), FIXED_MAX)
    fit = rows[0::2]
    a, c, _, _ = (min(max(k, 1 / 3), 3.0)
                  for k in _relative_fit(fit, RIDGE * len(fit), known={2: b, 3: 1.0}))
    logs = sorted(math.log(m / (a * x + c * y + b * z + w)) for x, y, z, w, m in rows[1::2])
    low, high = _quantile(logs, 0.1), _quantile(logs, 0.9)
    return dataclasses.replace(profile, in_model_scale=a, light_scale=c, overhead_scale=b,
                               interval=(min(1.0, math.exp(low)), max(1.0, math.exp(high))),
                               interval_level=0.8)


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile of sorted `values`."""
    pos = q * (len(values) - 1)
    i = int(pos)
    j = min(i + 1, len(values) - 1)
    return values[i] + (values[j] - values[i]) * (pos - i)
