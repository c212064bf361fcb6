"""Backward of data movement, embedding and creation ops."""
from __future__ import annotations

from ...core.cost import Cost
from ...core.tensors import TensorSpec
from ..registry import Backward, GradCall, Kernels, backward, grad_out, tensor_args


# ---- data movement and embedding ------------------------------------------------------------

#: Backward is a scatter-add of gy into a zero gradient of the input's shape: 1 FLOP per element
#: of gy (indices may repeat), the index tensors read, the gradient written.
SCATTER_ADD = {"torch.gather", "Tensor.gather", "torch.take_along_dim", "Tensor.take_along_dim",
               "torch.index_select", "Tensor.index_select", "torch.take", "Tensor.take",
               "torch.masked_select", "Tensor.masked_select", "Tensor.__getitem__", "F.unfold"}
#: Backward sums gy over the repeated or broadcast copies: 1 FLOP per element of gy.
SUM_BACK = {"Tensor.expand", "Tensor.expand_as", "torch.broadcast_to", "Tensor.broadcast_to",
            "torch.broadcast_tensors", "Tensor.repeat", "Tensor.tile", "torch.tile",
            "Tensor.repeat_interleave", "torch.repeat_interleave"}
#: Backward hands gy on as it is, or as views of it: nothing computed or moved.
PASS_ON = {"torch.cat", "torch.concat", "torch.concatenate", "torch.stack", "torch.hstack",
           "torch.vstack", "torch.dstack", "Tensor.contiguous", "Tensor.clone", "torch.clone",
           "Tensor.reshape", "torch.reshape", "Tensor.reshape_as", "Tensor.view", "Tensor.view_as",
           "Tensor.flatten", "torch.flatten", "Tensor.unflatten", "torch.unflatten"}


@backward("view", "copy")
def data_movement(grad: GradCall) -> Backward:
    """View, and copy in PASS_ON: 0. SUM_BACK (expand, repeat): gy summed, 1 FLOP per element.
    SCATTER_ADD (gather, index_select, advanced indexing): 1 FLOP per element of gy. Any other
    copy (pad, flip, roll, dtype casts, pixel/channel shuffle): the inverse copy, 0 FLOPs, gy read
    and each gradient written. Index tensors are saved."""
    call, gy = grad.call, grad_out(grad.call)
    targets = [s for _, s in grad.grad_inputs()]
    index = [n for n, s in tensor_args(call) if not s.dtype.startswith(("float", "bfloat", "complex"))]
    if grad.target in SUM_BACK:
        if all(s.numel == gy.numel for s in targets):
            return Backward(Cost())
        return Kernels().add(flops=gy.numel, reads=(gy,), writes=targets).done()
    if grad.target in SCATTER_ADD:
        return Kernels().add(flops=gy.numel, reads=(gy, *(grad.spec(n) for n in index)),
                             writes=targets).done(*index)
    if call.op == "view" or grad.target in PASS_ON:
        return Backward(Cost())
    return Kernels().add(reads=(gy, *(grad.spec(n) for n in index)), writes=targets).done(*index)


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
