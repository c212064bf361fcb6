"""Calibration's shape-dependent measurements: rate tables of the contractions, rates and
bandwidths of the transformer-era light ops, and how fast weights stream by their size.

Why tables: on a CPU a contraction's FLOP/s depends on its GEMM shape far more than a single
rate can say. Measured on a 2-core EPYC at one thread (torch 2.14, oneDNN): a 28x28 1x1 conv
with 512 channels runs at ~95 GFLOP/s in one group, ~71 in 8 groups (64 channels each) and ~20
in 64 groups (8 each); a batch-1 linear layer with 50 tokens and 768 -> 3072 features at ~60,
with 1024 tokens at ~90. So each kind of contraction gets a table of FLOP/s on a grid of
(rows, width) -- rows: output positions or tokens per matrix; width: channels per group, or
the smaller GEMM dimension -- and the estimate interpolates it (profiles.table_rate) at each
op's own shape (latency.op_shape). Every figure is a micro-benchmark of one synthetic op; no
model is timed here. torch is imported inside the functions.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from .measure import _best_seconds
from .profiles import PAGE_BYTES

#: the grid: rows (output positions of a square map: 7^2 .. 112^2; tokens) and width
CONV_ROWS = (49, 196, 784, 3136, 12544)
CONV_WIDTH = (4, 8, 16, 32, 64, 128, 256, 512)
GEMM_ROWS = (1, 4, 16, 64, 256, 1024, 4096)
GEMM_WIDTH = (32, 64, 128, 256, 512, 1024)
MATMUL_ROWS = (16, 49, 64, 196, 784)
MATMUL_WIDTH = (16, 32, 64, 128)
#: the attention table: query rows per head (a decode step: 1 to a few; a prompt chunk) and keys
#: (the cache length), at head width SDPA_HEAD
SDPA_ROWS = (1, 4, 16, 64, 256, 1024)
SDPA_KEYS = (64, 256, 1024, 4096)
SDPA_HEAD = 64
#: FLOPs of the largest op measured (~10 ms at 1 thread); larger cells take the rate of the
#: largest measured cell of their row. Not lower: at 2 threads a conv's rate still grows past
#: 2e8 FLOPs (a synthetic block of 3x3 convs of 192 channels on 56 x 56 maps ran 1.9x faster at
#: 2 threads than at 1, where cells filled from 2e8 said 1.47x), so large convs came out ~1.3x
#: too slow and the synthetic blocks pulled the 2-thread dense scale down to 0.6-0.9 to make up
#: for it (measured on the EPYC, 2026-12-03)
MAX_FLOPS = 1e9
#: FLOPs of the largest linear pair measured (~0.2 s at 1 thread: a 1,024-token prompt through a
#: 1,024 -> 4,096 -> 1,024 MLP). Larger cells take the cell above them (fewer rows, the same
#: width): past ~1,000 rows a GEMM's rate is set by its width (at 1,024 and 4,096 rows the
#: measured cells of one width agree within 5% on the EPYC), while filling along the row from
#: the narrow cells made a 1,024-token prefill of a 1,024-wide model 10-18% too slow (79 GFLOP/s
#: where the width's own cell, measured, is ~90; benchmarks/results/generation_latency.md)
LINEAR_MAX_FLOPS = 2e10
#: the grouped-conv tables: group counts, rows, and channels per group
GROUPS = (2, 8, 32)
GROUP_ROWS = (49, 196, 784, 3136)
GROUP_WIDTH = (4, 8, 16, 32, 64, 128)
#: channel counts of the depthwise-conv table
DEPTHWISE_WIDTH = (16, 32, 64, 128, 256, 512, 1024)
#: per-op weight sizes (bytes) of the weight-streaming measurement, and the bytes streamed per
#: size (twice a 32 MiB last-level cache, so every matrix is read cold)
WEIGHT_SIZES = (2 ** 18, 2 ** 20, 2 ** 22, 2 ** 24, 2 ** 26)
STREAM_BYTES = 2 ** 26


def _cycled(shape, cold_bytes: int = 2 ** 22):
    """An endless cycle of random inputs of `shape` that together overflow `cold_bytes`: an op
    in a network reads what the op before it wrote, not what it read itself a moment ago."""
    import torch
    count = -(-cold_bytes // (4 * math.prod(shape)))
    return itertools.cycle([torch.randn(shape) for _ in range(max(1, min(count, 16)))])


def _fill(rates: list[list[float | None]], by_column: bool = False) -> list[list[float]]:
    """Cells not measured (too large) take the nearest measured cell of their row, else of the
    row before; with `by_column`, first the nearest measured cell above them in their column
    (fewer rows, the same width: a GEMM's rate past ~1,000 rows is set by its width)."""
    if by_column:
        rates = [list(row) for row in rates]
        for j in range(len(rates[0]) if rates else 0):
            above = None
            for row in rates:
                if row[j] is None:
                    row[j] = above
                else:
                    above = row[j]
    out: list[list[float]] = []
    for row in rates:
        known = [(j, r) for j, r in enumerate(row) if r is not None]
        if not known:
            out.append(list(out[-1]) if out else [1.0] * len(row))
            continue
        out.append([r if r is not None else min(known, key=lambda jr: abs(jr[0] - j))[1]
                    for j, r in enumerate(row)])
    return out


#: every cell is measured in PASSES passes over the grid, and the fastest kept: a burst of
#: other work on the machine slows one pass of a cell, rarely all of them
PASSES = 2
#: a cell more than DIP times slower than both its neighbours along its row or along its column
#: is measured again, up to RECHECKS more times, keeping the fastest: on the shared 2-core VM at
#: two threads, single cells came out 2-6x below both neighbours (3.7 GFLOP/s between 20.9 and
#: 23.2) in one calibration and not in the next, and an estimate read them as real
DIP = 1.5
RECHECKS = 2


def _table(rows, width, measure: Callable[[int, int], float | None], scale: float = 1.0,
           by_column: bool = False) -> dict:
    """A rate table over rows x width: each cell's fastest of PASSES passes (measure gets
    budget / PASSES per call, see the callers), cells too large filled by _fill. The width
    axis is recorded as width x `scale`: the feature latency.op_shape computes for the op
    measured (a k x k conv with w channels in and out has GEMM width sqrt(k^2 w x w) = k w)."""
    best: list[list[float | None]] = [[None] * len(width) for _ in rows]
    for _ in range(PASSES):
        for i, r in enumerate(rows):
            for j, w in enumerate(width):
                rate = measure(r, w)
                if rate is not None:
                    best[i][j] = max(rate, best[i][j] or 0.0)
    for _ in range(RECHECKS):
        found = dips(best)
        for i, j in found:
            rate = measure(rows[i], width[j])
            if rate is not None:
                best[i][j] = max(rate, best[i][j] or 0.0)
        if not found:
            break
    return {"rows": [float(r) for r in rows], "width": [float(w * scale) for w in width],
            "rates": _fill(best, by_column)}


def dips(rates: list[list[float | None]]) -> list[tuple[int, int]]:
    """(row, column) of the cells more than DIP times slower than both their neighbours along
    their row, or along their column (cells at an edge have one neighbour on that axis and are
    not judged on it; unmeasured cells are skipped)."""
    found = []
    for i, row in enumerate(rates):
        for j, rate in enumerate(row):
            if rate is None:
                continue
            along = ((row[j - 1] if j else None, row[j + 1] if j + 1 < len(row) else None),
                     (rates[i - 1][j] if i else None,
                      rates[i + 1][j] if i + 1 < len(rates) else None))
            if any(a is not None and b is not None and rate * DIP < min(a, b)
                   for a, b in along):
                found.append((i, j))
    return found


def _conv_rate(rows: int, width: int, k: int, groups: int, fixed: float, budget: float,
               stride: int = 1) -> float | None:
    """FLOP/s of a k x k conv with `width` channels per group in and out, in `groups` groups,
    with `rows` output positions on a square map (the input `stride` times as wide), after
    `fixed` seconds of fixed cost; None when larger than MAX_FLOPS."""
    import torch
    import torch.nn.functional as F
    size = round(math.sqrt(rows))
    channels = width * groups
    flops = 2 * k * k * width * channels * size * size
    if flops > MAX_FLOPS:
        return None
    weight = torch.randn(channels, width, k, k)
    xs = _cycled((1, channels, size * stride, size * stride))
    t = _best_seconds(lambda: F.conv2d(next(xs), weight, stride=stride, padding=k // 2,
                                       groups=groups), budget)
    return flops / max(t - fixed, t / 2)


def conv_tables(budget: float, overheads: dict[str, float]) -> dict[str, dict]:
    """FLOP/s of 1x1 and 3x3 convs on their grids (batch 1, square maps, in = out channels),
    after the kind's fixed cost: dense ("conv", "spatial conv") on CONV_ROWS x CONV_WIDTH, and
    grouped in each of GROUPS groups ("group conv@G", "spatial group conv@G") on GROUP_ROWS x
    GROUP_WIDTH channels per group. A grouped conv's rate is set by its channels per group
    and by its number of groups together (at 64 channels per group, 2 groups run near the dense
    rate and 8 groups at two thirds of it), so latency.op_rate interpolates between the
    tables of the two nearest group counts."""
    cells = 2 * (len(CONV_ROWS) * len(CONV_WIDTH) + len(GROUPS) * len(GROUP_ROWS)
                 * len(GROUP_WIDTH) + len(CONV_ROWS) * len(DEPTHWISE_WIDTH))
    share = budget / (cells * PASSES)
    tables = {}
    for kind, k in (("conv", 1), ("spatial conv", 3)):
        fixed = overheads.get(kind, 0.0)
        tables[kind] = _table(CONV_ROWS, CONV_WIDTH, lambda rows, width, k=k, fixed=fixed:
                              _conv_rate(rows, width, k, 1, fixed, share), k)
    for kind, k in (("group conv", 1), ("spatial group conv", 3)):
        fixed = overheads.get("group conv", 0.0)
        for g in GROUPS:
            tables[f"{kind}@{g}"] = _table(
                GROUP_ROWS, GROUP_WIDTH, lambda rows, width, k=k, g=g, fixed=fixed:
                _conv_rate(rows, width, k, g, fixed, share), k)
    # depthwise 3x3 convs: one channel per group, the width axis is the channel count; at
    # stride 2 ("depthwise conv/2", by output positions) a depthwise conv reads four input
    # positions per output and runs at about half the rate of stride 1 (measured on the EPYC)
    fixed = overheads.get("depthwise conv", 0.0)
    for kind, stride in (("depthwise conv", 1), ("depthwise conv/2", 2)):
        tables[kind] = _table(CONV_ROWS, DEPTHWISE_WIDTH, lambda rows, channels, stride=stride:
                              _conv_rate(rows, 1, 3, channels, fixed, share, stride))
    return tables


def gemm_tables(budget: float, overheads: dict[str, float], cache_bytes: int = 32 * 2 ** 20
                ) -> dict[str, dict]:
    """FLOP/s of linear layers (rows tokens; in and out features width and 4 x width, both
    ways, as in a transformer's MLP) and of batched matmuls (rows x width x rows and rows x
    rows x width per matrix, as in attention) on their grids. A linear layer's weights are read
    cold, as in a network whose weights exceed the last-level cache: each call takes the next
    of copies that together are twice `cache_bytes` (at most 256). Hot weights flatter the rate
    at tens of tokens: on the EPYC a 64-token 128 -> 512 layer runs at ~117 GFLOP/s on one
    hot matrix and ~76 on cold ones (256 tokens and up: within 5%)."""
    import torch
    import torch.nn.functional as F
    cells = len(GEMM_ROWS) * len(GEMM_WIDTH) + len(MATMUL_ROWS) * len(MATMUL_WIDTH)
    share = budget / (cells * PASSES)
    fixed = overheads.get("linear", 0.0)
    weights: dict[int, itertools.cycle] = {}

    def linear(rows: int, width: int) -> float | None:
        flops = 2 * 2 * rows * width * 4 * width
        if flops > LINEAR_MAX_FLOPS:
            return None
        if width not in weights:
            count = max(1, min(256, -(-2 * cache_bytes // (2 * 4 * width * 4 * width))))
            up, down = torch.randn(4 * width, width), torch.randn(width, 4 * width)
            weights[width] = itertools.cycle([(up.clone(), down.clone()) for _ in range(count)])
        ws = weights[width]
        xs, hs = _cycled((rows, width)), _cycled((rows, 4 * width))

        def call():
            w_up, w_down = next(ws)
            return F.linear(next(xs), w_up), F.linear(next(hs), w_down)
        t = _best_seconds(call, share)
        return flops / max(t - 2 * fixed, t / 2)

    def matmul(rows: int, width: int) -> float | None:
        batch = max(1, min(64, int(2e7 // (4 * rows * rows * width))))
        flops = 2 * 2 * batch * rows * rows * width
        q, k = torch.randn(batch, rows, width), torch.randn(batch, width, rows)
        p, v = torch.randn(batch, rows, rows), torch.randn(batch, rows, width)
        t = _best_seconds(lambda: (torch.matmul(q, k), torch.matmul(p, v)), share)
        return flops / max(t - 2 * fixed, t / 2)
    # a linear's width feature is sqrt(in x out) = sqrt(w x 4w) = 2w (latency.op_shape)
    return {"linear": _table(GEMM_ROWS, GEMM_WIDTH, linear, 2.0, by_column=True),
            "matmul": _table(MATMUL_ROWS, MATMUL_WIDTH, matmul)}


def attention_table(budget: float, overheads: dict[str, float]) -> dict[str, dict]:
    """FLOP/s (costmodel's FLOPs of the op, formulas attention_cost) of
    F.scaled_dot_product_attention without a causal mask, by query rows and keys per head
    (SDPA_ROWS x SDPA_KEYS, head width SDPA_HEAD; as many heads as make the call ~50 MFLOP).
    A decode step attends from 1-4 query rows over the whole cache: on a CPU that runs far below
    the GEMM rate (measured at one thread on the EPYC: ~10 GFLOP/s at 1 row over 1,024 keys,
    against ~80 for a square 256 x 256), which no GEMM table shows. Causal attention over a
    square (a prompt) is not in this table (its kernel skips the masked half)."""
    import torch.nn.functional as F

    from ..formulas.forward.contraction import attention_cost
    share = budget / (len(SDPA_ROWS) * len(SDPA_KEYS) * PASSES)
    fixed = overheads.get("sdpa", 0.0)

    def cell(rows: int, keys: int) -> float | None:
        work = 4 * rows * keys * SDPA_HEAD
        if work > 2 * MAX_FLOPS:
            return None
        heads = max(1, min(64, int(MAX_FLOPS / 4 // work)))
        q, k = (1, heads, rows, SDPA_HEAD), (1, heads, keys, SDPA_HEAD)
        flops = attention_cost(q, k, k, False)[1]
        qs, ks, vs = _cycled(q), _cycled(k), _cycled(k)
        t = _best_seconds(lambda: F.scaled_dot_product_attention(next(qs), next(ks), next(vs)),
                          share)
        return flops / max(t - fixed, t / 2)
    return {"sdpa": _table(SDPA_ROWS, SDPA_KEYS, cell)}


def weight_bandwidths(budget: float, fixed: float) -> tuple[tuple[float, float], ...]:
    """(bytes of one op's weights, bytes/s) for batch-1 linear layers over WEIGHT_SIZES square
    matrices, STREAM_BYTES of them per size (each read cold), after the fixed cost per op; the
    fastest of PASSES passes over the sizes, then made non-decreasing in size (a longer matrix
    streams at least as fast per byte as a shorter one: what is slower is a disturbed
    measurement, and takes the rate of the next smaller size)."""
    import torch
    import torch.nn.functional as F
    best = dict.fromkeys(WEIGHT_SIZES, 0.0)
    for _ in range(PASSES):
        for nbytes in WEIGHT_SIZES:
            n = round(math.sqrt(nbytes / 4))
            ws = [torch.randn(n, n) for _ in range(max(2, STREAM_BYTES // nbytes))]
            v = torch.randn(1, n)

            def stream(ws=ws, v=v):
                for w in ws:
                    F.linear(v, w)
            t = _best_seconds(stream, budget / len(WEIGHT_SIZES) / PASSES) / len(ws)
            best[nbytes] = max(best[nbytes], 4 * n * n / max(t - fixed, t / 2))
            ws.clear()
    points, floor = [], 0.0
    for nbytes in WEIGHT_SIZES:
        floor = max(floor, best[nbytes])
        points.append((float(4 * round(math.sqrt(nbytes / 4)) ** 2), floor))
    return tuple(points)


#: convs (in, out, kernel, map size) whose weights are large next to their work, timed with hot
#: weights and with cold ones for the weight pass (conv_weight_pass)
WEIGHT_PASS_CONVS = ((256, 256, 3, 7), (128, 128, 3, 14), (1024, 256, 1, 7), (512, 2048, 1, 7),
                     (256, 1024, 1, 14))


def conv_weight_pass(budget: float, cache_bytes: int = 32 * 2 ** 20) -> float:
    """Seconds per byte of weights that a conv takes beyond its rate-table time when its
    weights are cold, as in a network (every other layer ran since its last call, and a
    network's weights outgrow the last-level cache): each conv of WEIGHT_PASS_CONVS timed on
    one weight tensor (hot, as the table cells are) and on copies that together are twice
    `cache_bytes` (cold), and the median of (cold - hot) / weight bytes, never below 0. On a
    CPU, oneDNN reorders a conv's weights into its blocked layout on every eager call: a pass
    over the weights that does not overlap the compute, so the roofline's max() hides it.
    Measured on the EPYC at one and two threads, quiet: ~19 GB/s of conv weights."""
    import statistics

    import torch
    import torch.nn.functional as F
    share = budget / (2 * PASSES * len(WEIGHT_PASS_CONVS))
    extra = []
    for cin, cout, k, size in WEIGHT_PASS_CONVS:
        weight, x = torch.randn(cout, cin, k, k), torch.randn(1, cin, size, size)
        copies = itertools.cycle([weight.clone() for _ in range(
            max(2, min(64, -(-2 * cache_bytes // weight.nbytes))))])
        hot = cold = float("inf")
        for _ in range(PASSES):
            hot = min(hot, _best_seconds(lambda x=x, w=weight, k=k: F.conv2d(x, w, padding=k // 2),
                                         share))
            cold = min(cold, _best_seconds(
                lambda x=x, ws=copies, k=k: F.conv2d(x, next(ws), padding=k // 2), share))
        extra.append(max(cold - hot, 0.0) / weight.nbytes)
    return statistics.median(extra)


#: bytes of each new tensor timed for the cost of first-touch page faults: twice glibc's largest
#: mmap threshold, so every allocation is a new mapping (profiles.MMAP_BYTES)
FRESH_BYTES = 2 ** 26


def page_fault_seconds(budget: float) -> float:
    """Seconds per 4 KiB page that writing a new tensor larger than glibc's mmap threshold takes
    beyond writing one that already exists: a FRESH_BYTES tensor allocated and filled per call,
    against the same fill of one kept tensor, fastest of PASSES passes each, the difference
    per page (never below 0). Every call maps the block anew and unmaps it when freed, so each
    page faults in (and is zeroed by the kernel) on its first write. Measured on the EPYC at one
    thread, quiet: ~1.4 us per page, 46 ms for the 131 MB of logits a 32,000-word vocabulary
    gives a 1,024-token prompt."""
    import torch
    n = FRESH_BYTES // 4
    kept = torch.empty(n)
    share = budget / (2 * PASSES)
    fresh = old = float("inf")
    for _ in range(PASSES):
        old = min(old, _best_seconds(lambda: kept.fill_(1.0), share))
        fresh = min(fresh, _best_seconds(lambda: torch.empty(n).fill_(1.0), share))
    return max(fresh - old, 0.0) / (FRESH_BYTES // PAGE_BYTES)


#: (shape, permutation) of the strided copies timed for the "copy" bandwidth: a channel shuffle,
#: NHWC <-> NCHW, a window partition, attention heads split
COPIES = (((1, 2, 58, 28, 28), (0, 2, 1, 3, 4)), ((1, 56, 56, 96), (0, 3, 1, 2)),
          ((1, 96, 56, 56), (0, 2, 3, 1)), ((1, 8, 7, 8, 7, 96), (0, 1, 3, 2, 4, 5)),
          ((197, 3, 12, 64), (1, 2, 0, 3)))


def light_rates(budget: float, overheads: dict[str, float]) -> tuple[dict[str, float],
                                                                     dict[str, float]]:
    """Rates (FLOP/s, costmodel's FLOPs) of softmax, layer norm and 3x3 average pooling on
    shapes of transformers and CNNs, and the bandwidth (bytes read + written per second) of
    strided copies and concatenations ("copy"). Returns (rates, bandwidths)."""
    import torch
    import torch.nn.functional as F
    share = budget / 5
    fixed = overheads.get("elementwise", 0.0)

    def rate(cases) -> float:
        flops = seconds = 0.0
        for fn, shape, f in cases:
            xs = _cycled(shape)
            t = _best_seconds(lambda fn=fn, xs=xs: fn(next(xs)), share / len(cases))
            flops, seconds = flops + f, seconds + max(t - fixed, t / 2)
        return flops / seconds
    ln = {c: (torch.ones(c), torch.zeros(c)) for c in (96, 192, 384, 768)}
    rates = {
        "softmax": rate([(lambda x: torch.softmax(x, -1), s, 5 * math.prod(s))
                         for s in ((64, 3, 49, 49), (12, 197, 197), (12, 50, 50))]),
        "layer_norm": rate([(lambda x, c=c: F.layer_norm(x, (c,), *ln[c]), (t, c), 7 * t * c)
                            for t, c in ((3136, 96), (784, 192), (196, 384), (197, 768))]),
        "avg_pool": rate([(lambda x: F.avg_pool2d(x, 3, 1, 1), (1, c, s, s), 9 * c * s * s)
                          for c, s in ((192, 35), (768, 17), (64, 56))]),
    }
    moved = seconds = 0.0
    for shape, perm in COPIES:
        xs = [x.permute(perm) for x in itertools.islice(_cycled(shape), 4)]
        turn = itertools.cycle(xs)
        t = _best_seconds(lambda turn=turn: next(turn).contiguous(), share / (len(COPIES) + 1))
        moved, seconds = moved + 2 * 4 * math.prod(shape), seconds + max(t - fixed, t / 2)
    halves = _cycled((1, 116, 28, 28))
    t = _best_seconds(lambda: torch.cat((next(halves), next(halves)), 1), share / 6)
    moved, seconds = moved + 4 * 4 * 116 * 28 * 28, seconds + max(t - fixed, t / 2)
    return rates, {"copy": moved / seconds}
