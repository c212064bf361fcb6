"""Backward of pooling, resampling, data movement, embedding, creation and detection ops."""
from __future__ import annotations

import math

from ...cost import Cost
from ...specs import TensorSpec
from ..pool import INTERPOLATE_FLOPS, _tuple, adaptive_window_total
from . import Backward, GradCall, Kernels, backward, grad_out, tensor_args
from .pointwise import zero_gradient


# ---- pooling and resampling -----------------------------------------------------------------

@backward("max_pool", "adaptive_max_pool")
def max_pool(grad: GradCall) -> Backward:
    """gy scattered (added) to each window's argmax: 1 FLOP per output element; gx written.
    Saves the input and the argmax indices (int64, one per output element)."""
    call, gy = grad.call, grad_out(grad.call)
    indices = TensorSpec(gy.shape, "int64", 8)
    k = Kernels().add(flops=gy.numel, reads=(gy, indices), writes=(call.t("input"),))
    if len(call.outputs) > 1:          # return_indices=True: the indices are a graph value
        return k.done("input", "out.1")
    return k.done("input", extra_bytes=8 * gy.numel)


@backward("avg_pool")
def avg_pool(grad: GradCall) -> Backward:
    """gy / k added to each of the k window elements: FLOPs = out_numel * prod(kernel) (as the
    forward); saves the input (autograd keeps it, for its shape)."""
    call, gy = grad.call, grad_out(grad.call)
    kernel = _tuple(call.attr("kernel_size"), call.attr("spatial_dims", 2))
    return Kernels().add(flops=gy.numel * math.prod(kernel), reads=(gy,),
                         writes=(call.t("input"),)).done("input")


@backward("adaptive_avg_pool")
def adaptive_avg_pool(grad: GradCall) -> Backward:
    """The exact windows of the forward, walked back: the same FLOPs. Saves the input, except at
    output size 1, which torch computes as a mean (whose backward keeps nothing)."""
    call, gy = grad.call, grad_out(grad.call)
    x = call.t("input")
    spatial = call.attr("spatial_dims", 2)
    windows = math.prod(adaptive_window_total(i, o)
                        for i, o in zip(x.shape[-spatial:], gy.shape[-spatial:]))
    k = Kernels().add(flops=math.prod(x.shape[:-spatial]) * windows, reads=(gy,), writes=(x,))
    return k.done() if all(n == 1 for n in gy.shape[-spatial:]) else k.done("input")


@backward("interpolate")
def interpolate(grad: GradCall) -> Backward:
    """Each output's gradient times each tap's weight, added into the input: taps multiplies and
    taps adds per output element (nearest 1, linear 4, bilinear 8, bicubic 32). Saves nothing."""
    call, gy = grad.call, grad_out(grad.call)
    mode = call.attr("mode", "nearest")
    if mode == "area":
        return adaptive_avg_pool(grad)
    return Kernels().add(flops=gy.numel * (INTERPOLATE_FLOPS[mode] + 1), reads=(gy,),
                         writes=(call.t("input"),)).done()


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


# ---- detection ------------------------------------------------------------------------------

backward("nms")(zero_gradient)   # kept-box indices: integers, never differentiated


@backward("roi_align")
def roi_align(grad: GradCall) -> Backward:
    """Each sample's gradient, split over its 4 bilinear taps and added into the input: the
    forward's out_numel * (8*s*s + 1) FLOPs. Saves the boxes (the input only for its shape)."""
    call, gy = grad.call, grad_out(grad.call)
    s = call.attr("sampling_ratio", 0)
    if s <= 0:
        raise ValueError("sampling_ratio <= 0 takes a box-size-dependent number of samples")
    boxes = next((n for n, v in tensor_args(call) if n != "input"), None)
    return Kernels().add(flops=gy.numel * (8 * s * s + 1), reads=(gy, grad.spec(boxes) if boxes else None),
                         writes=[spec for _, spec in grad.grad_inputs()]).done(*([boxes] if boxes else []))
