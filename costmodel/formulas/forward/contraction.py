"""Contractions: linear, bilinear, matmul/mm/bmm/mv, addmm/baddbmm, einsum and attention.

Composite ops reuse the primitives: addmm is a matmul plus an add, attention is two matmuls plus a
softmax, nn.MultiheadAttention is projections (linear) around attention.
"""
from __future__ import annotations

import math

from ...core.cost import Cost
from ...core.tensors import TensorSpec, broadcast
from ...core.vocab import Category
from ..registry import OpCall, formula, io_mac, params_of, simple_cost
from .pointwise import SOFTMAX_FLOPS


def matmul_madds(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """MAdds of a @ b with torch.matmul semantics: batch * n * k * m (1-D operands have n or
    m = 1)."""
    if len(a) == 1 and len(b) == 1:
        return a[0]
    n, k = (1, a[0]) if len(a) == 1 else a[-2:]
    m = 1 if len(b) == 1 else b[-1]
    batch = broadcast(a[:-2], b[:-2] if len(b) > 1 else ())
    return math.prod(batch) * n * k * m


@formula("linear", category=Category.LINEAR)
def linear(call: OpCall) -> Cost:
    """MAdds = prod(batch dims) * in_features * out_features; bias adds 1 FLOP per output
    element."""
    weight, bias, out = call.t("weight"), call.t("bias"), call.out
    madds = out.numel * weight.shape[-1]
    flops = 2 * madds + (out.numel if bias is not None else 0)
    mac, mac_bytes = io_mac(call)
    return Cost(madds, flops, params_of(weight, bias), mac, mac_bytes)


@formula("bilinear", category=Category.LINEAR)
def bilinear(call: OpCall) -> Cost:
    """y = x1^T A x2 + b with A (out, in1, in2): MAdds = batch * out * in1 * in2
    + batch * out * in2."""
    weight, bias, out = call.t("weight"), call.t("bias"), call.out
    _, in1, in2 = weight.shape
    madds = out.numel * in1 * in2 + out.numel * in1
    flops = 2 * madds + (out.numel if bias is not None else 0)
    mac, mac_bytes = io_mac(call)
    return Cost(madds, flops, params_of(weight, bias), mac, mac_bytes)


@formula("matmul", category=Category.MATMUL)
def matmul(call: OpCall) -> Cost:
    """a @ b (matmul, mm, bmm, mv, dot, @): MAdds = batch * n * k * m with broadcasting."""
    madds = matmul_madds(call.t("input").shape, call.t("other").shape)
    mac, mac_bytes = io_mac(call)
    return Cost(madds, 2 * madds, params_of(*call.inputs()), mac, mac_bytes)


@formula("addmm", category=Category.MATMUL)
def addmm(call: OpCall) -> Cost:
    """beta * input + alpha * (mat1 @ mat2) (addmm, baddbmm): a matmul plus 1 FLOP per output
    element."""
    madds = matmul_madds(call.t("mat1").shape, call.t("mat2").shape)
    mac, mac_bytes = io_mac(call)
    return Cost(madds, 2 * madds + call.out.numel, params_of(*call.inputs()), mac, mac_bytes)


def grouped_mm_madds(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """MAdds of torch._grouped_mm(a, b, offs=offs): the sum over groups g of rows_g * K * N.

    The group sizes are values in `offs` (cumulative ends), which a static analysis does not
    read; what it knows is the total, and the total is all the formula needs:

    - 2D (M, K) x 3D (G, K, N), the MoE forward (tokens sorted by expert, one weight per expert):
      sum_g rows_g * K * N = offs[-1] * K * N = M * K * N, exact whatever the split when the
      offsets cover every row (`offs[-1] == M`, as in transformers, whose offsets are the
      cumulative token counts of all M routed rows); rows past offs[-1] are skipped by the kernel,
      so M * K * N is an upper bound otherwise;
    - 3D (G, M, K) x 3D (G, K, N): a batched matmul, G * M * K * N, exact;
    - 3D (G, M, K) x 2D (K, N) (N split into G column groups): M * K * N, as above;
    - 2D (M, K) x 2D (K, N) (K split into G groups, the weight gradient): M * K * N, as above.
    """
    if len(a) == 3 and len(b) == 3:
        return a[0] * a[1] * a[2] * b[2]
    if len(a) == 3:
        return a[1] * a[2] * b[1]
    return a[0] * a[1] * b[-1]


@formula("grouped_mm", category=Category.MATMUL)
def grouped_mm(call: OpCall) -> Cost:
    """A grouped matmul (MoE experts): MAdds = `grouped_mm_madds` (the sum over groups of
    rows x K x N, exact from the total rows); a bias adds 1 FLOP per output element."""
    madds = grouped_mm_madds(call.t("input").shape, call.t("mat2").shape)
    bias = call.out.numel if call.t("bias") is not None else 0
    mac, mac_bytes = io_mac(call)
    return Cost(madds, 2 * madds + bias, params_of(*call.inputs()), mac, mac_bytes)


# ---- einsum ---------------------------------------------------------------------------------

def _subscripts(equation: str, operands: tuple[TensorSpec, ...]
                ) -> tuple[list[list[str]], list[str]]:
    """Split an einsum equation into per-operand index lists, expanding '...' to named dims."""
    equation = equation.replace(" ", "")
    lhs, _, rhs = equation.partition("->")
    terms = lhs.split(",")
    ell_ndim = 0
    parsed = []
    for term, op in zip(terms, operands):
        explicit = term.replace("...", "")
        n_ell = op.ndim - len(explicit) if "..." in term else 0
        ell_ndim = max(ell_ndim, n_ell)
        ell = [f"...{i}" for i in range(ell_ndim - n_ell, ell_ndim)]
        head, _, tail = term.partition("...")
        parsed.append(list(head) + (ell if "..." in term else []) + list(tail))
    if "->" in equation:
        head, _, tail = rhs.partition("...")
        out_ell = [f"...{i}" for i in range(ell_ndim)] if "..." in rhs else []
        out = list(head) + out_ell + list(tail)
    else:  # implicit output: ellipsis dims, then letters that appear once, sorted
        counts: dict[str, int] = {}
        for idx in parsed:
            for i in idx:
                counts[i] = counts.get(i, 0) + 1
        out = [f"...{i}" for i in range(ell_ndim)] + sorted(
            i for i, c in counts.items() if c == 1 and not i.startswith("..."))
    return parsed, out


def einsum_cost(equation: str, operands: tuple[TensorSpec, ...]) -> tuple[int, int]:
    """(MAdds, other FLOPs) of an einsum contracted left to right, as torch does without opt_einsum.

    For each pair, a dim that is in only one operand and nowhere later is summed out first
    (1 FLOP per element of that operand); the pair then costs the product of the sizes of every
    remaining dim in either operand (a batched matmul). A pair that sums nothing (a Hadamard or
    outer product, or a contraction over dims of size 1 only, which torch runs as a broadcast
    `aten.mul`) is multiplies without adds: FLOPs, not MAdds.
    """
    indices, out = _subscripts(equation, operands)
    sizes: dict[str, int] = {}
    for idx, op in zip(indices, operands):
        for i, n in zip(idx, op.shape):
            sizes[i] = max(sizes.get(i, 1), n)
    madds = other = 0
    current = indices[0]
    current_numel = operands[0].numel
    if len(indices) == 1:
        reduced = set(current) - set(out)
        return 0, (current_numel if reduced else 0)
    for pos in range(1, len(indices)):
        rest = set(out).union(*indices[pos + 1:])
        nxt = indices[pos]
        keep_a = [i for i in current if i in nxt or i in rest]
        keep_b = [i for i in nxt if i in current or i in rest]
        if len(keep_a) < len(set(current)):
            other += current_numel
        if len(keep_b) < len(set(nxt)):
            other += operands[pos].numel
        union = list(dict.fromkeys(keep_a + keep_b))
        current = [i for i in union if i in rest]
        if math.prod(sizes[i] for i in union if i not in rest) > 1:   # a sum: a contraction
            madds += math.prod(sizes[i] for i in union)
        else:                              # nothing summed (Hadamard, outer): multiplies only
            other += math.prod(sizes[i] for i in union)
        current_numel = math.prod(sizes[i] for i in current)
    return madds, other


@formula("einsum", category=Category.MATMUL)
def einsum(call: OpCall) -> Cost:
    """Pairwise contraction left to right: MAdds = prod of the sizes of the dims of each pair."""
    operands = call.tensors["operands"]
    madds, other = einsum_cost(call.attr("equation"), operands)
    mac, mac_bytes = io_mac(call)
    return Cost(madds, 2 * madds + other, params_of(*operands), mac, mac_bytes)


# ---- attention ------------------------------------------------------------------------------

def _attention_batch(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...]) -> tuple[int, ...]:
    """Broadcast batch/head dims; where k and v have fewer heads than q (grouped-query attention,
    enable_gqa=True), each query head still attends, so the query's head count is the one used."""
    ndim = max(len(q), len(k), len(v))
    out = []
    for i in range(-ndim, 0):
        sizes = [s[i] for s in (q, k, v) if len(s) >= -i]
        big = {n for n in sizes if n != 1}
        out.append(q[i] if len(big) > 1 and len(q) >= -i else (big.pop() if big else 1))
    return tuple(out)


def attention_cost(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...],
                   masked: bool) -> tuple[int, int]:
    """(MAdds, FLOPs) of softmax(q k^T * scale + mask) v for q (.., L, E), k (.., S, E),
    v (.., S, Ev).

    MAdds = B*L*S*E (scores) + B*L*S*Ev (weighted sum), B = the broadcast batch and head dims
    (grouped-query attention broadcasts k and v over the query heads). Every score also costs
    1 FLOP of scaling, 1 of mask (if any) and the softmax. The causal mask keeps the full square:
    the same convention as FlopCounterMode and the kernels that compute it.
    """
    *batch, length, e = q
    s, ev = k[-2], v[-1]
    scores = math.prod(_attention_batch(tuple(batch), k[:-2], v[:-2])) * length * s
    madds = scores * e + scores * ev
    return madds, 2 * madds + scores * (1 + int(masked) + SOFTMAX_FLOPS)


@formula("sdpa", category=Category.ATTENTION)
def sdpa(call: OpCall) -> Cost:
    """scaled_dot_product_attention as one fused op: MAC = q + k + v (+ mask) + output."""
    q, k, v = call.t("query"), call.t("key"), call.t("value")
    masked = call.t("attn_mask") is not None or bool(call.attr("is_causal", False))
    madds, flops = attention_cost(q.shape, k.shape, v.shape, masked)
    mac, mac_bytes = io_mac(call)
    return Cost(madds, flops, params_of(*call.inputs()), mac, mac_bytes)


@formula("mha", category=Category.ATTENTION)
def multi_head_attention(call: OpCall) -> Cost:
    """nn.MultiheadAttention = input projections (linear) + attention + output projection
    (linear).

    query (L, N, E), key (S, N, Ek), value (S, N, Ev) (or without N): MAdds =
    L*N*E*E + S*N*Ek*E + S*N*Ev*E (projections) + 2*N*L*S*E (attention) + L*N*E*E (output).
    MAC sums the separate kernels; self-attention reads its input once for the packed projection.
    """
    q, k, v = call.t("query"), call.t("key"), call.t("value")
    e = q.shape[-1]
    lq, lk = q.numel // e, k.numel // k.shape[-1]          # L*N and S*N
    n = q.shape[1] if q.ndim == 3 else 1
    heads = call.attr("num_heads", 1)
    has_bias = call.t("in_proj_bias") is not None
    proj = lq * e * e + lk * k.shape[-1] * e + lk * v.shape[-1] * e
    attn_madds, attn_flops = attention_cost(
        (n, heads, lq // n, e // heads), (n, heads, lk // n, e // heads),
        (n, heads, lk // n, e // heads),
        call.t("attn_mask") is not None or bool(call.attr("is_causal")))
    out_proj = lq * e * e
    madds = proj + attn_madds + out_proj
    bias_flops = ((lq * e + 2 * lk * e if has_bias else 0)
                  + (lq * e if call.t("out_proj_bias") is not None else 0))
    flops = 2 * (proj + out_proj) + attn_flops + bias_flops

    weights = [s for s in call.inputs() if s.role != "activation"]
    weight_reads = sum(s.reads for s in weights)
    weight_bytes = sum(s.reads * s.itemsize for s in weights)
    isz = q.itemsize
    if call.attr("self_attention"):
        act = lq * e + 3 * lq * e                      # packed projection: read x, write q, k, v
    else:
        act = (lq * e + lq * e) + (lk * k.shape[-1] + lk * e) + (lk * v.shape[-1] + lk * e)
    act += (lq * e + 2 * lk * e) + lq * e                   # attention: read q, k, v; write context
    act += lq * e + lq * e                                  # output projection: read, write
    act += sum(o.numel for o in call.outputs[1:])           # attention weights, when returned
    mac = act + weight_reads
    return Cost(madds, flops, params_of(*weights), mac, act * isz + weight_bytes)


@formula("scaled_mm", category=Category.MATMUL)
def scaled_mm(call: OpCall) -> Cost:
    """torch._scaled_mm, the fp8 matmul: (M, K) x (K, N) -> (M, N) at out_dtype.
    MAdds = M*K*N; FLOPs = 2*M*K*N + 2*M*N (the scale_a and scale_b multiplies) + M*N with a
    bias; MAC = the operands at their own dtype (1 byte for fp8) + scales + bias + output."""
    a, b = call.t("input"), call.t("mat2")
    m, k = a.shape[-2], a.shape[-1]
    n = b.shape[-1]
    madds = m * k * n
    flops = 2 * madds + 2 * m * n + (m * n if call.t("bias") is not None else 0)
    mac, mac_bytes = io_mac(call)
    return Cost(madds, flops, params_of(*call.inputs()), mac, mac_bytes)


def _masked(call: OpCall) -> bool:
    window = call.attr("window_size")
    return (call.t("attn_mask") is not None or bool(call.attr("is_causal"))
            or bool(call.attr("custom_mask_type")) or call.attr("window_size_left") is not None
            or (isinstance(window, (list, tuple)) and tuple(window) != (-1, -1)))


@formula("flash_attention", category=Category.ATTENTION)
def flash_attention(call: OpCall) -> Cost:
    """The flash / memory-efficient attention kernels called directly, and variable-length
    attention (torch.nn.attention.varlen): softmax(q k^T * scale) v as one fused kernel.

    Dense, q (B, L, H, E), k (B, S, Hk, E), v (B, S, Hk, Ev): the same MAdds and FLOPs as
    scaled_dot_product_attention on (B, H, L, E). Packed, q (Tq, H, E), k and v (Tk, Hk, E) with
    cumulative offsets of n sequences: the score pairs sum_i Lq_i * Lk_i depend on the offsets'
    values; their upper bound is min(Tq * max_k, Tk * max_q) per head (each query attends to at
    most max_k keys), so MAdds = H * pairs * (E + Ev) and the FLOPs as for sdpa (CM009: an upper
    bound). MAC = q + k + v (+ bias) + output."""
    q, k, v = call.t("query"), call.t("key"), call.t("value")
    masked = _masked(call)
    if q.ndim == 4:
        b, length, h, e = q.shape
        madds, flops = attention_cost(
            (b, h, length, e), (k.shape[0], k.shape[2], k.shape[1], k.shape[3]),
            (v.shape[0], v.shape[2], v.shape[1], v.shape[3]), masked)
    else:
        (tq, h, e), tk, ev = q.shape, k.shape[0], v.shape[-1]
        max_q, max_k = call.attr("max_q", tq), call.attr("max_k", tk)
        scores = h * min(tq * max_k, tk * max_q)
        madds = scores * e + scores * ev
        flops = 2 * madds + scores * (1 + int(masked) + SOFTMAX_FLOPS)
    mac, mac_bytes = io_mac(call)
    return Cost(madds, flops, params_of(*call.inputs()), mac, mac_bytes)


@formula("solve_triangular", category=Category.MATMUL)
def solve_triangular(call: OpCall) -> Cost:
    """torch.linalg.solve_triangular(A, B): A is (*, n, n) triangular, X has B's shape, with r
    right-hand sides of length n (r = X.numel / n). Substitution per right-hand side: n(n - 1)/2
    multiply-adds and n divisions (none when `unitriangular`). FLOPs = r * (n(n - 1) + n) (r * n(n
    - 1) when unitriangular). MAdds = 0: a solve is not one of the contractions MAdds count (conv,
    linear, matmul, einsum, attention), and FlopCounterMode counts none either. MAC = A + B read +
    X written."""
    return simple_cost(call, flops=triangular_solve_flops(call))


def triangular_solve_flops(call: OpCall) -> int:
    """r * (n(n - 1) + n) FLOPs of solve_triangular (r * n(n - 1) when unitriangular)."""
    n = call.t("A").shape[-1]
    rhs = call.out.numel // n if n else 0
    return rhs * (n * (n - 1) + (0 if call.attr("unitriangular", False) else n))
