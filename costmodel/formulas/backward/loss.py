"""Backward of the loss functions: per element, what the derivative applies to gy."""
from __future__ import annotations

from ..forward.loss import PER_ELEMENT, class_rows
from ..registry import Backward, GradCall, Kernels, backward, grad_out

#: FLOPs per element of each gradient: mse 2 (x - t) gy: sub, mul; l1 sign(x - t) gy: sub, sign,
#: mul; smooth_l1 / huber: sub, compare, scale-or-sign, mul; binary_cross_entropy
#: gy (x - t) / (x (1 - x)): sub, 1 - x, mul, div, mul; with logits gy (sigmoid(x) - t): sigmoid,
#: sub, mul; kl_div -t gy (exp(t) with log_target): neg, mul, (exp).
GRAD_PER_ELEMENT = {"mse_loss": 2, "l1_loss": 3, "smooth_l1_loss": 4, "binary_cross_entropy": 5,
                    "binary_cross_entropy_with_logits": 3, "kl_div": 2}
assert set(GRAD_PER_ELEMENT) == set(PER_ELEMENT)


@backward(*GRAD_PER_ELEMENT)
def elementwise_loss(grad: GradCall) -> Backward:
    """GRAD_PER_ELEMENT[op] FLOPs per element for each of input and target that needs a gradient
    (+ 1 with a weight); reads gy (a scalar when reduced), input and target; saves both."""
    call, gy = grad.call, grad_out(grad.call)
    per = GRAD_PER_ELEMENT[call.op] + (call.t("weight") is not None)
    k = Kernels()
    for name in ("input", "target"):
        if grad.wants(name):
            x = call.t(name)
            k.add(flops=per * x.numel, reads=(gy, call.t("input"), call.t("target")), writes=(x,))
    return k.done("input", "target")


@backward("nll_loss")
def nll_loss(grad: GradCall) -> Backward:
    """-gy (times w[t]) written at each position's target class, zeros elsewhere: 1 FLOP per
    position (+ 1 with weight); the whole gradient is written; saves the target."""
    call, gy = grad.call, grad_out(grad.call)
    rows, _ = class_rows(call)
    per = 1 + (call.t("weight") is not None)
    return Kernels().add(flops=per * rows, reads=(gy, call.t("target")),
                         writes=(call.t("input"),)).done("target")


@backward("cross_entropy")
def cross_entropy(grad: GradCall) -> Backward:
    """(softmax(x) - onehot(t)) gy: exp of the saved log-probabilities, subtract, multiply:
    3 FLOPs per input element (+ 1 with weight or label smoothing). Saves the log_softmax output
    (at the input's dtype, not a graph value) and the target."""
    call, gy = grad.call, grad_out(grad.call)
    x = call.t("input")
    per = 3 + (call.t("weight") is not None) + ((call.attr("label_smoothing") or 0.0) > 0)
    k = Kernels().add(flops=per * x.numel, reads=(gy, x, call.t("target")), writes=(x,))
    return k.done("target", extra_bytes=x.numel * x.itemsize)
