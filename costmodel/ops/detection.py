"""Bindings of torchvision's detection operators (custom ops, by qualified name)."""
from __future__ import annotations

import torch

from .registry import bind_op
from .shape_rules import META

# Detection operators (torchvision registers them as torch.ops.torchvision.*).
bind_op("nms", "torchvision::nms", ("boxes", "scores", "iou_threshold"),
        # data-dependent: how many boxes survive depends on the scores; the static upper bound
        # is every box, which the eager capture assumes and reports (CM009)
        shape=lambda b: torch.empty((b["boxes"].shape[0],), dtype=torch.int64, device=META),
        sizes=lambda b, args, kwargs: "nms keeps a number of boxes that depends on the data")
bind_op("roi_align", "torchvision::roi_align",
        ("input", "rois", "spatial_scale", "pooled_height", "pooled_width", "sampling_ratio",
         "aligned"))
