"""Backward of the contractions: linear, bilinear, matmul, addmm, einsum, attention."""
from __future__ import annotations

import math

from ...core.tensors import TensorSpec
from ..forward.contraction import (
    _attention_batch,
    einsum_cost,
    grouped_mm_madds,
    matmul_madds,
    triangular_solve_flops,
)
from ..registry import Backward, GradCall, Kernels, backward, grad_out, no_backward

# ---- contractions ---------------------------------------------------------------------------

def _weighted(grad: GradCall, madds: int, x: str, w: str, b: str | None) -> Backward:
    """grad-input and grad-weight are each one contraction of `madds`; bias sums gy."""
    call, gy = grad.call, grad_out(grad.call)
    k = _pair(grad, x, w, madds)
    if b is not None and grad.wants(b):
        k.add(flops=gy.numel, reads=(gy,), writes=(call.t(b),))
    saved = ((x,) if grad.wants(w) else ()) + ((w,) if grad.wants(x) else ())
    return k.done(*saved)


@backward("linear")
def linear(grad: GradCall) -> Backward:
    """grad-input gy @ W and grad-weight gy^T @ x: forward MAdds each; bias: gy summed over rows."""
    call = grad.call
    madds = call.out.numel * call.t("weight").shape[-1]
    return _weighted(grad, madds, "input", "weight", "bias")


@backward("bilinear")
def bilinear(grad: GradCall) -> Backward:
    """Each of input1, input2 and weight: one contraction of the forward's MAdds; saves both
    inputs."""
    call, gy = grad.call, grad_out(grad.call)
    _, in1, in2 = call.t("weight").shape
    madds = call.out.numel * in1 * in2 + call.out.numel * in1
    k = Kernels()
    for name in ("input1", "input2", "weight"):
        if grad.wants(name):
            others = [call.t(n) for n in ("input1", "input2", "weight") if n != name]
            k.add(madds, 2 * madds, reads=(gy, *others), writes=(call.t(name),))
    if grad.wants("bias"):
        k.add(flops=gy.numel, reads=(gy,), writes=(call.t("bias"),))
    return k.done("input1", "input2")


def _pair(grad: GradCall, a: str, b: str, madds: int) -> Kernels:
    """a @ b: grad_a = gy @ b^T and grad_b = a^T @ gy, each batch * n * k * m MAdds."""
    call, gy = grad.call, grad_out(grad.call)
    k = Kernels()
    if grad.wants(a):
        k.add(madds, 2 * madds, reads=(gy, call.t(b)), writes=(call.t(a),))
    if grad.wants(b):
        k.add(madds, 2 * madds, reads=(call.t(a), gy), writes=(call.t(b),))
    return k


@backward("matmul")
def matmul(grad: GradCall) -> Backward:
    """grad of each operand = forward MAdds (a broadcast operand's sum is folded into the
    contraction); each saves the other operand."""
    call = grad.call
    madds = matmul_madds(call.t("input").shape, call.t("other").shape)
    k = _pair(grad, "input", "other", madds)
    return k.done(*(("other",) if grad.wants("input") else ()),
                  *(("input",) if grad.wants("other") else ()))


@backward("addmm")
def addmm(grad: GradCall) -> Backward:
    """mat1/mat2 as matmul; the added input gets gy itself (0) or, if broadcast, gy summed."""
    call, gy = grad.call, grad_out(grad.call)
    madds = matmul_madds(call.t("mat1").shape, call.t("mat2").shape)
    k = _pair(grad, "mat1", "mat2", madds)
    bias = call.t("input")
    if grad.wants("input") and bias is not None and bias.numel < gy.numel:
        k.add(flops=gy.numel, reads=(gy,), writes=(bias,))
    return k.done(*(("mat2",) if grad.wants("mat1") else ()),
                  *(("mat1",) if grad.wants("mat2") else ()))


@backward("einsum")
def einsum(grad: GradCall) -> Backward:
    """Each operand's gradient is an einsum of gy with the other operands: the forward's MAdds
    (exact for two operands; an approximation for longer chains). Saves every other operand."""
    call, gy = grad.call, grad_out(grad.call)
    operands = call.tensors["operands"]
    madds, other = einsum_cost(call.attr("equation"), operands)
    k = Kernels()
    saved = []
    for i, spec in enumerate(operands):
        if f"operands.{i}" in grad.needs:
            rest = [s for j, s in enumerate(operands) if j != i]
            k.add(madds, 2 * madds + other, reads=(gy, *rest), writes=(spec,))
            saved += [f"operands.{j}" for j in range(len(operands)) if j != i]
    return k.done(*saved)


def _attention_backward(k: Kernels, scores: int, e: int, ev: int, q: bool, kk: bool, v: bool,
                        recompute: bool, masked: bool) -> None:
    """MAdds and FLOPs of softmax(q k^T) v's backward, for `scores` = batch * L * S scores.

    recompute (fused kernels): P = softmax(q k^T * scale + mask) again from the saved log-sum-exp,
    scores * e MAdds + (scale, mask, subtract lse, exp) per score. Then gV = P^T gO (scores * ev),
    gP = gO V^T (scores * ev, when q or k need a gradient), gS = P * (gP - rowsum(gO * O)) * scale
    (3 per score), gQ = gS K (scores * e), gK = gS^T Q (scores * e).
    """
    if recompute:
        k.add(scores * e, 2 * scores * e + scores * (3 + int(masked)))
    if v:
        k.add(scores * ev, 2 * scores * ev)
    if q or kk:
        k.add(scores * ev, 2 * scores * ev + 3 * scores)
    if q:
        k.add(scores * e, 2 * scores * e)
    if kk:
        k.add(scores * e, 2 * scores * e)


@backward("sdpa")
def sdpa(grad: GradCall) -> Backward:
    """One fused kernel (flash / memory-efficient / CPU flash), as FlopCounterMode counts it:
    recompute q k^T, then gV, gP, gQ, gK. MAdds = B*L*S*(E + Ev + Ev + E + E) with every input
    needing a gradient: 2.5x the forward at E = Ev. Saves q, k, v, the output and the log-sum-exp
    (B*L floats); never the L x S attention matrix. MAC: reads q, k, v, out, gO; writes the
    grads."""
    call, gy = grad.call, grad_out(grad.call)
    q, key, v = call.t("query"), call.t("key"), call.t("value")
    *batch, length, e = q.shape
    s, ev = key.shape[-2], v.shape[-1]
    b = math.prod(_attention_batch(tuple(batch), key.shape[:-2], v.shape[:-2]))
    masked = call.t("attn_mask") is not None or bool(call.attr("is_causal", False))
    k = Kernels()
    _attention_backward(k, b * length * s, e, ev, grad.wants("query"), grad.wants("key"),
                        grad.wants("value"), True, masked)
    k.add(flops=2 * gy.numel)     # rowsum(gO * O)
    k.add(reads=(q, key, v, call.out, gy),
          writes=[spec for name, spec in grad.grad_inputs()])
    return k.done("query", "key", "value", "out", "attn_mask", extra_bytes=4 * b * length)


@backward("mha")
def multi_head_attention(grad: GradCall) -> Backward:
    """nn.MultiheadAttention: the linear rule for the input and output projections, the attention
    rule for the core. need_weights=True runs the explicit (math) path, which saves the attention
    matrix and recomputes nothing; need_weights=False runs fused sdpa (recompute, log-sum-exp).

    Saves the inputs (for the in-projection grad-weights), the projected q, k, v, the attention
    output (for the out-projection grad-weight), and the log-sum-exp (fused) or the attention
    matrix and the scaled q (math path)."""
    call = grad.call
    q, key, v = call.t("query"), call.t("key"), call.t("value")
    e = q.shape[-1]
    lq, lk = q.numel // e, key.numel // key.shape[-1]
    n = q.shape[1] if q.ndim == 3 else 1
    heads = call.attr("num_heads", 1)
    separate = bool(call.attr("use_separate_proj_weight", False))
    weights = ({"query": "q_proj_weight", "key": "k_proj_weight", "value": "v_proj_weight"}
               if separate else dict.fromkeys(("query", "key", "value"), "in_proj_weight"))
    isz = q.itemsize
    proj = {"query": (q, lq), "key": (key, lk), "value": (v, lk)}
    k = Kernels()
    flows = {}                                 # does the projected q / k / v need a gradient?
    for name, (x, rows) in proj.items():
        weight_grad = grad.wants(weights[name]) or grad.wants("in_proj_bias")
        flows[name] = grad.wants(name) or weight_grad
        madds = rows * x.shape[-1] * e
        p = TensorSpec((rows, e), q.dtype, isz)
        if grad.wants(name):
            k.add(madds, 2 * madds, reads=(p,), writes=(x,))
        if grad.wants(weights[name]):
            k.add(madds, 2 * madds, reads=(x, p))
        if grad.wants("in_proj_bias"):
            k.add(flops=rows * e, reads=(p,))
    for name in set(weights.values()) | {"in_proj_bias"}:
        if grad.wants(name):
            k.add(writes=(call.t(name),))
    context = TensorSpec((lq, e), q.dtype, isz)
    scores = n * heads * (lq // n) * (lk // n)
    fused = not call.attr("need_weights", True)
    masked = call.t("attn_mask") is not None or bool(call.attr("is_causal", False))
    inner = any(flows.values())
    if inner:
        _attention_backward(k, scores, e // heads, e // heads, flows["query"], flows["key"],
                            flows["value"], fused, masked)
        k.add(reads=(context, TensorSpec((lq + 2 * lk, e), q.dtype, isz)),
              writes=(TensorSpec((lq + 2 * lk, e), q.dtype, isz),))
        if not fused:   # the attention matrix is read, and gP / gS are written and read back
            k.add(reads=(TensorSpec((3 * scores,), q.dtype, isz),),
                  writes=(TensorSpec((2 * scores,), q.dtype, isz),))
    out_madds = lq * e * e
    gy = TensorSpec((lq, e), q.dtype, isz)
    if inner:
        k.add(out_madds, 2 * out_madds, reads=(gy, call.t("out_proj_weight")), writes=(context,))
    if grad.wants("out_proj_weight"):
        k.add(out_madds, 2 * out_madds, reads=(context, gy), writes=(call.t("out_proj_weight"),))
    if grad.wants("out_proj_bias"):
        k.add(flops=lq * e, reads=(gy,), writes=(call.t("out_proj_bias"),))
    extra = ((lq + 2 * lk) * e + lq * e) * isz            # projected q, k, v and the context
    if fused:
        extra += 4 * n * heads * (lq // n)                 # float32 log-sum-exp per query row
    else:
        extra += (scores + lq * e) * isz                   # the attention matrix and q * scale
    saved = [name for name in ("query", "key", "value") if grad.wants(weights[name])]
    return k.done(*saved, extra_bytes=extra if inner else 0)


@backward("grouped_mm")
def grouped_mm(grad: GradCall) -> Backward:
    """grad-input gy @ W_g^T and grad-weight x_g^T @ gy (itself a 2D x 2D grouped matmul over the
    same offsets): the forward's MAdds each; each saves the other operand."""
    call = grad.call
    madds = grouped_mm_madds(call.t("input").shape, call.t("mat2").shape)
    k = _pair(grad, "input", "mat2", madds)
    return k.done(*(("mat2",) if grad.wants("input") else ()),
                  *(("input",) if grad.wants("mat2") else ()))


no_backward("scaled_mm", "torch defines no derivative for _scaled_mm (its grad_fn is "
            "NotImplemented): fp8 training runs its own kernels")
no_backward("flash_attention", "the flash / memory-efficient kernels called directly are costed "
            "forward only so far; F.scaled_dot_product_attention has the backward rule")


@backward("solve_triangular")
def solve_triangular(grad: GradCall) -> Backward:
    """grad-B = a triangular solve with A's transpose (the forward's FLOPs); grad-A = -(grad-B
    X^T), kept on A's triangle: r * n(n + 1)/2 multiply-adds, counted as 2 FLOPs each (no MAdds, as
    the forward). Saves A and X."""
    call, gy = grad.call, grad_out(grad.call)
    a, b, out = call.t("A"), call.t("B"), call.out
    n = a.shape[-1]
    k = Kernels()
    if grad.wants("B") or grad.wants("A"):
        k.add(flops=triangular_solve_flops(call), reads=(gy, a), writes=(b,))
    if grad.wants("A"):
        k.add(flops=(out.numel // n if n else 0) * n * (n + 1), reads=(b, out), writes=(a,))
    return k.done("A", "out")
