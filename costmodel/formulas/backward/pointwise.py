"""Backward of element-wise ops, activations, softmax, dropout and reductions."""
from __future__ import annotations

from ...core.cost import Cost
from ..forward.pointwise import ACTIVATIONS, ELEMENTWISE, diff_steps
from ..registry import (
    BACKWARD,
    Backward,
    BackwardFormula,
    GradCall,
    Kernels,
    backward,
    grad_out,
    no_backward,
    tensor_args,
)

# ---- element-wise ---------------------------------------------------------------------------

def pointwise(per_element: int, saves: str | tuple[str, ...] = "self",
              passthrough: bool = False) -> BackwardFormula:
    """Gradient of each input that needs one: `per_element` FLOPs per output element, + 1 per
    output element to sum it back if the input was broadcast.

    saves: "self" (the input itself), "out" (the result), "others" (the other tensor inputs),
    "all" (every tensor input), "" (nothing) or explicit argument names.
    passthrough: the gradient is `gy` itself (add): nothing is computed, read or written."""
    def rule(grad: GradCall) -> Backward:
        call, gy = grad.call, grad_out(grad.call)
        args = tensor_args(call)
        k = Kernels()
        saved: list[str] = []
        for name, spec in grad.grad_inputs():
            if saves == "self":
                used = [name]
            elif saves == "out":
                used = ["out"]
            elif saves == "others":
                used = [n for n, _ in args if n != name]
            elif saves == "all":
                used = [n for n, _ in args]
            else:
                used = list(saves) if isinstance(saves, tuple) else []
            saved += used
            broadcast = spec.numel < gy.numel
            if passthrough and not broadcast:
                continue
            flops = per_element * gy.numel + (gy.numel if broadcast else 0)
            k.add(flops=flops, reads=(gy, *(grad.spec(n) for n in used)), writes=(spec,))
        return k.done(*saved)
    rule.__doc__ = (f"{per_element} FLOPs per element per input needing a gradient; "
                    f"saves {saves or 'nothing'}.")
    return rule


@backward("sub", "rsub")
def subtract(grad: GradCall) -> Backward:
    """One operand gets gy itself (0), the other -gy (1 FLOP per element); broadcast: summed
    back."""
    call, gy = grad.call, grad_out(grad.call)
    negated = "other" if call.op == "sub" else "input"
    k = Kernels()
    for name, spec in grad.grad_inputs():
        broadcast = spec.numel < gy.numel
        if name == negated or broadcast:
            k.add(flops=gy.numel * (int(name == negated) + int(broadcast)), reads=(gy,),
                  writes=(spec,))
    return k.done()


@backward("div")
def divide(grad: GradCall) -> Backward:
    """a / b: grad_a = gy / b (1 FLOP per element), grad_b = -grad_a * out / ... (2); saves b
    (and a)."""
    gy = grad_out(grad.call)
    k = Kernels()
    saved = []
    for name, spec in grad.grad_inputs():
        per = 1 if name == "input" else 2
        used = ["other"] if name == "input" else ["input", "other"]
        saved += used
        k.add(flops=gy.numel * (per + int(spec.numel < gy.numel)),
              reads=(gy, *(grad.spec(n) for n in used)), writes=(spec,))
    return k.done(*saved)


SAVES_OUTPUT = ("relu", "sigmoid", "tanh", "exp", "exp2", "expm1", "sqrt", "rsqrt", "reciprocal")
PIECEWISE = ("relu", "relu6", "leaky_relu", "hardtanh", "threshold", "hardshrink", "softshrink",
             "clamp", "abs", "nan_to_num")
ZERO_GRAD = ("sign", "sgn", "floor", "ceil", "round", "trunc", "floor_divide", "heaviside",
             "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor",
             "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "isnan",
             "isinf", "isfinite", "argmax", "argmin", "any", "all", "count_nonzero", "argsort")

backward("add")(pointwise(0, "", passthrough=True))
backward("frac")(pointwise(0, "", passthrough=True))
backward("neg")(pointwise(1, ""))
backward("mul")(pointwise(1, "others"))
backward("where")(pointwise(1, ("condition",)))
backward("masked_fill")(pointwise(1, ("mask",)))
backward("maximum", "minimum", "fmax", "fmin")(pointwise(1, "all"))
backward("tril", "triu")(pointwise(0, ""))          # the same mask applied to gy: a copy
backward(*(op for op in SAVES_OUTPUT if op not in PIECEWISE))(pointwise(2, "out"))
backward("relu")(pointwise(1, "out"))
backward(*(op for op in PIECEWISE if op != "relu"))(pointwise(1, "self"))
backward("prelu")(pointwise(2, "all"))               # grad-input 1 + grad-weight 1, summed back
backward("pow", "atan2", "hypot", "logaddexp", "xlogy", "copysign", "fmod", "remainder", "lerp",
         "addcmul", "addcdiv")(pointwise(2, "all"))


@backward(*ZERO_GRAD)
def zero_gradient(grad: GradCall) -> Backward:
    """The derivative is 0 almost everywhere: 0 FLOPs; the zero gradient is written."""
    return Kernels().add(writes=[s for _, s in grad.grad_inputs()]).done()


_SMOOTH = [op for op in ACTIVATIONS + ELEMENTWISE if op not in BACKWARD]
backward(*_SMOOTH)(pointwise(2, "self"))             # gelu, silu, log, erf, ...: derivative * gy


@backward("softmax", "log_softmax")
def softmax(grad: GradCall) -> Backward:
    """y * (gy - sum(gy * y)) or gy - exp(y) * sum(gy): 4 FLOPs per element; saves the output."""
    call, gy = grad.call, grad_out(grad.call)
    return Kernels().add(flops=4 * gy.numel, reads=(gy, call.out),
                         writes=(call.t("input"),)).done("out")


@backward("dropout")
def dropout(grad: GradCall) -> Backward:
    """Training: gy * mask, 1 FLOP per element; saves the mask at the activation's dtype, as the
    forward formula writes it (torch's CPU dropout keeps a scaled float mask; CUDA's fused kernel
    keeps 1 byte per element). Inference (the identity): nothing."""
    call, gy = grad.call, grad_out(grad.call)
    if not call.attr("training", False) or call.attr("p", 0.5) == 0:
        return Backward(Cost())
    return Kernels().add(flops=gy.numel, reads=(gy, gy), writes=(call.t("input"),)).done(
        extra_bytes=gy.numel * gy.itemsize)


# ---- reductions -----------------------------------------------------------------------------

@backward("sum", "nansum")
def sum_(grad: GradCall) -> Backward:
    """gy broadcast back to the input's shape: a view, nothing computed or moved."""
    return Backward(Cost())


@backward("cumsum")
def cumsum(grad: GradCall) -> Backward:
    """A reversed cumulative sum of gy: 1 FLOP per element; saves nothing."""
    gy, x = grad_out(grad.call), grad.call.t("input")
    return Kernels().add(flops=x.numel, reads=(gy,), writes=(x,)).done()


def _per_input(per_element: int, saves: tuple[str, ...]) -> BackwardFormula:
    def rule(grad: GradCall) -> Backward:
        call, gy = grad.call, grad_out(grad.call)
        x = call.t("input")
        used = saves
        if call.op in ("max", "min", "median", "topk", "sort") and len(call.outputs) > 1:
            used = ("out.1",)                          # values and indices: the indices are kept
        return Kernels().add(flops=per_element * x.numel,
                             reads=(gy, *(grad.spec(n) for n in used)), writes=(x,)).done(*used)
    rule.__doc__ = (f"{per_element} FLOPs per input element (gy brought back to the input's "
                    f"shape); saves {', '.join(saves) or 'nothing'}.")
    return rule


backward("mean", "nanmean")(_per_input(1, ()))        # gy expanded, divided by the count
backward("amax", "amin", "max", "min", "median", "topk", "sort")(_per_input(1, ("input", "out")))
backward("prod", "cumprod", "norm")(_per_input(2, ("input", "out")))
backward("logsumexp")(_per_input(3, ("input", "out")))  # exp(x - y) * gy
backward("var", "std", "var_mean", "std_mean")(_per_input(3, ("input",)))  # 2 (x - mean) / n * gy


no_backward("histc", "torch defines no derivative for histc (counts are piecewise constant); its "
            "input (MoE expert ids) never needs a gradient")


no_backward("quantize", "quantized tensors carry no gradient (quantization-aware training uses "
            "fake quantization, which is float)")
no_backward("multinomial", "its output is integer indices (samples): nothing to differentiate")
no_backward("bucketize", "its output is integer indices (bucket numbers): nothing to "
            "differentiate")


@backward("diff")
def diff(grad: GradCall) -> Backward:
    """Each pass's adjoint, gx[i] = gy[i - 1] - gy[i] (the edges a copy or a negation): 1 FLOP per
    element of that pass's input, so rest * sum over k = 1..n of (L - k + 1); saves nothing.
    prepend's and append's gradients are slices of the same result."""
    gy, x = grad_out(grad.call), grad.call.t("input")
    return Kernels().add(flops=diff_steps(grad.call, extra=1), reads=(gy,), writes=(x,)).done()


@backward("outer")
def outer(grad: GradCall) -> Backward:
    """grad-a = gy @ b and grad-b = gy^T @ a: n * m MAdds each; each saves the other vector."""
    call, gy = grad.call, grad_out(grad.call)
    k = Kernels()
    for name, other in (("input", "vec2"), ("vec2", "input")):
        if grad.wants(name):
            k.add(gy.numel, 2 * gy.numel, reads=(gy, call.t(other)), writes=(call.t(name),))
    return k.done(*(o for n, o in (("input", "vec2"), ("vec2", "input")) if grad.wants(n)))


@backward("polar")
def polar(grad: GradCall) -> Backward:
    """grad-abs = Re(conj(gy) e^{i angle}), grad-angle = abs * Im(...): 2 FLOPs per element for
    each wanted input (the element-wise convention: derivative, then times gy); saves both."""
    call, gy = grad.call, grad_out(grad.call)
    k = Kernels()
    for name in ("abs", "angle"):
        if grad.wants(name):
            k.add(flops=2 * gy.numel, reads=(gy, call.t("abs"), call.t("angle")),
                  writes=(call.t(name),))
    return k.done("abs", "angle")
