"""Backward of data movement, embedding and creation ops."""
from __future__ import annotations

from ...core.cost import Cost
from ...core.tensors import TensorSpec
from ...core.vocab import OpFlag
from ..registry import (
    Backward,
    GradCall,
    Kernels,
    backward,
    grad_out,
    no_backward,
    tensor_args,
)

# ---- data movement and embedding ------------------------------------------------------------

@backward("view", "copy")
def data_movement(grad: GradCall) -> Backward:
    """How the gradient flows is a flag of the copy's binding (`ops/movement.py`):
    - view, and a PASS_ON copy (cat, stack, reshape, clone): gy handed on as it is or as views, 0.
    - SUM_BACK (expand, repeat, tile): gy summed over the copies, 1 FLOP per element of gy.
    - SCATTER_ADD (gather, index_select, take, masked_select, advanced indexing, unfold): gy
      scatter-added into a zero gradient of the input's shape (indices may repeat), 1 FLOP per
      element of gy; the index tensors are read.
    - any other copy (pad, flip, roll, dtype casts, pixel/channel shuffle): the inverse copy,
      0 FLOPs, gy read and each gradient written.
    Index tensors are saved."""
    call, gy = grad.call, grad_out(grad.call)
    targets = [s for _, s in grad.grad_inputs()]
    index = [n for n, s in tensor_args(call)
             if not s.dtype.startswith(("float", "bfloat", "complex"))]
    flags = call.flags
    if OpFlag.SUM_BACK in flags:
        if all(s.numel == gy.numel for s in targets):
            return Backward(Cost())
        return Kernels().add(flops=gy.numel, reads=(gy,), writes=targets).done()
    if OpFlag.SCATTER_ADD in flags:
        return Kernels().add(flops=gy.numel, reads=(gy, *(grad.spec(n) for n in index)),
                             writes=targets).done(*index)
    if call.op == "view" or OpFlag.PASS_ON in flags:
        return Backward(Cost())
    return Kernels().add(reads=(gy, *(grad.spec(n) for n in index)), writes=targets).done(*index)


@backward("scatter_reduce")
def scatter_reduce(grad: GradCall) -> Backward:
    """grad-input: gy where the input survives (all of it for "sum"), grad-src: gy gathered at the
    index. "sum" is copies only (0 FLOPs; the index is saved); "mean" divides by the counts and the
    others (prod, amax, amin) compare or multiply with the saved input, source and output: 2 FLOPs
    per element of each wanted gradient."""
    call, gy = grad.call, grad_out(grad.call)
    index = call.t("index")
    plain = call.attr("reduce") == "sum"
    saved = ("index",) if plain else ("index", "input", "src", "out")
    reads = (gy, index) if plain else (gy, index, call.t("input"), call.t("src"), call.out)
    k = Kernels()
    for _, target in grad.grad_inputs():
        k.add(flops=0 if plain else 2 * target.numel, reads=reads, writes=(target,))
    return k.done(*saved)


@backward("embedding")
def embedding(grad: GradCall) -> Backward:
    """grad-weight is a scatter-add of gy's rows into a zeroed dense gradient: 1 FLOP per element
    of gy; MAC = indices + gy read, each touched row read and written, the gradient zero-filled.
    The indices need no gradient; they are saved."""
    call, gy = grad.call, grad_out(grad.call)
    weight, idx = call.t("weight"), call.t("input")
    if not grad.wants("weight"):
        return Backward(Cost())
    rows = TensorSpec(gy.shape, weight.dtype, weight.itemsize)
    return Kernels().add(flops=gy.numel, reads=(idx, gy, rows), writes=(weight, rows)).done("input")


@backward("create")
def create(grad: GradCall) -> Backward:
    """Factories take no tensor that needs a gradient."""
    return Backward(Cost())


no_backward("unique", "torch defines no derivative for unique")
no_backward("unique_consecutive", "torch defines no derivative for unique_consecutive")
no_backward("nonzero", "its output is integer indices: nothing to differentiate")
no_backward("one_hot", "its input is integer indices and its output integers: nothing to "
            "differentiate")
