"""Backward of the detection operators: nms and RoI Align."""
from __future__ import annotations

from ..registry import Backward, GradCall, Kernels, backward, grad_out, tensor_args
from .pointwise import zero_gradient

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
    return Kernels().add(flops=gy.numel * (8 * s * s + 1),
                         reads=(gy, grad.spec(boxes) if boxes else None),
                         writes=[spec for _, spec in grad.grad_inputs()]
                         ).done(*([boxes] if boxes else []))
