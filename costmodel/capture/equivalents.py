"""Library functions whose loops run over tensor values, and what the eager capture runs instead.

Each entry swaps one function of a loaded library for an equivalent of static shape while the
capture runs (and puts the original back after it); the swap is reported (CM009) with why:

- torchvision's `batched_nms` loops over `torch.unique(labels)` when boxes are many: counted as its
  coordinate-trick form (one nms over all boxes), which torchvision itself uses for fewer boxes and
  which gives the same result (INFO: nothing is assumed).
- Mask R-CNN's `paste_masks_in_image` resizes each detected mask to its box's size, read from the
  box (`int(box[2] - box[0] + 1)`): costed at the upper bound, every mask resized to the whole
  image (a box never exceeds it: the detections are clipped to the image), then pasted into an
  image-sized zero mask, for each of the detections kept (at most the model's
  `box_detections_per_img`, as the capture already caps them). A WARNING: an upper bound.
- Keypoint R-CNN's `heatmaps_to_keypoints` resizes each detection's heatmaps (bicubic) to its
  box's size, read with `.item()`: costed at the upper bound, each box as large as its image
  (`RoIHeads.forward` is wrapped to know the image sizes), then the argmax over the map and the
  gather of each keypoint's score, for each detection kept. A WARNING: an upper bound.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from ..core.vocab import Severity

#: the image sizes of the RoIHeads forward that is running (set by the wrapper below)
_IMAGE_SHAPES: list[list[tuple[int, int]]] = []


def paste_masks_upper_bound(masks: torch.Tensor, boxes: torch.Tensor, img_shape: Any,
                            padding: int = 1) -> torch.Tensor:
    """torchvision's paste_masks_in_image with every box the whole image: pad each mask,
    expand the boxes, resize the N masks to H x W (bilinear) and paste them into N zero masks."""
    from torchvision.models.detection.roi_heads import expand_boxes, expand_masks

    masks, scale = expand_masks(masks, padding=padding)
    expand_boxes(boxes, scale).to(dtype=torch.int64)
    im_h, im_w = (int(v) for v in img_shape)
    n = masks.shape[0]
    resized = F.interpolate(masks, size=(im_h, im_w), mode="bilinear", align_corners=False)
    pasted = torch.zeros((n, 1, im_h, im_w), dtype=masks.dtype, device=masks.device)
    pasted[:, :, :, :] = resized
    return pasted


def _heatmaps_upper_bound(maps: torch.Tensor, rois: torch.Tensor, image: tuple[int, int]
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """heatmaps_to_keypoints with every box as large as its image (H x W): the N x K heatmaps
    resized bicubic to H x W, the argmax over each map, the keypoints' coordinates and scores."""
    n, k = maps.shape[0], maps.shape[1]
    h, w = image
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    widths.ceil(), heights.ceil()
    roi_map = F.interpolate(maps, size=(h, w), mode="bicubic", align_corners=False)
    pos = roi_map.reshape(n, k, -1).argmax(dim=2)
    x_int = pos % w
    y_int = torch.div(pos - x_int, w, rounding_mode="floor")
    x = (x_int.float() + 0.5) * (widths / w)[:, None] + rois[:, 0:1]
    y = (y_int.float() + 0.5) * (heights / h)[:, None] + rois[:, 1:2]
    xy_preds = torch.stack((x, y, torch.ones_like(x)), dim=1)
    end_scores = roi_map.reshape(n, k, -1).gather(2, pos[:, :, None])[:, :, 0]
    return xy_preds.permute(0, 2, 1), end_scores


def keypoints_upper_bound(x: torch.Tensor, boxes: list[torch.Tensor]
                          ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """torchvision's keypointrcnn_inference, each image's detections through
    `_heatmaps_upper_bound` at that image's size."""
    shapes = _IMAGE_SHAPES[-1]
    probs, scores = [], []
    for maps, rois, image in zip(x.split([b.shape[0] for b in boxes], dim=0), boxes, shapes):
        prob, score = _heatmaps_upper_bound(maps, rois, (int(image[0]), int(image[1])))
        probs.append(prob)
        scores.append(score)
    return probs, scores


def _with_image_shapes(forward: Callable) -> Callable:
    def run(self: Any, features: Any, proposals: Any, image_shapes: Any, *args: Any,
            **kwargs: Any) -> Any:
        _IMAGE_SHAPES.append(image_shapes)
        try:
            return forward(self, features, proposals, image_shapes, *args, **kwargs)
        finally:
            _IMAGE_SHAPES.pop()
    return run


_TV = "torchvision.models.detection."
_PASTE = ("Mask R-CNN's paste_masks_in_image resizes each detected mask to its box, whose size "
          "depends on the data: costed at the upper bound, each mask resized to the whole image "
          "and pasted, for each detection kept (at most the model's box_detections_per_img)")
_KEYPOINTS = ("Keypoint R-CNN's heatmaps_to_keypoints resizes each detection's heatmaps to its "
              "box, whose size depends on the data: costed at the upper bound, each box as large "
              "as its image, for each detection kept (at most the model's "
              "box_detections_per_img)")

#: (module, attribute, replacement: the name of an attribute of the same module, or a function of
#: the original, why, severity)
EQUIVALENTS: tuple[tuple[str, str, str | Callable, str | None, Severity], ...] = (
    ("torchvision.ops.boxes", "_batched_nms_vanilla", "_batched_nms_coordinate_trick",
     "torchvision's batched_nms loops over torch.unique(labels) when boxes are many; it was "
     "counted as its coordinate-trick form (one nms over all boxes), which torchvision uses for "
     "fewer boxes and which gives the same result", Severity.INFO),
    (_TV + "roi_heads", "paste_masks_in_image", lambda original: paste_masks_upper_bound,
     _PASTE, Severity.WARNING),
    (_TV + "transform", "paste_masks_in_image", lambda original: paste_masks_upper_bound,
     _PASTE, Severity.WARNING),
    (_TV + "roi_heads", "keypointrcnn_inference", lambda original: (
        lambda x, boxes: keypoints_upper_bound(x, boxes) if _IMAGE_SHAPES else original(x, boxes)),
     _KEYPOINTS, Severity.WARNING),
    (_TV + "roi_heads", "RoIHeads.forward", _with_image_shapes, None, Severity.INFO),
)


@contextlib.contextmanager
def swapped(replaced: dict[str, tuple[str, Severity]], stack: list[str]) -> Iterator[None]:
    """Swap in the equivalents of the loaded libraries; `replaced` gets why -> (the module that
    called one, severity). The originals are put back on exit."""
    saved = []
    try:
        for module_name, name, equivalent, why, severity in EQUIVALENTS:
            module = sys.modules.get(module_name)
            owner_name, _, attr = name.rpartition(".")
            owner = getattr(module, owner_name, None) if owner_name else module
            if owner is None or not hasattr(owner, attr):
                continue
            original = getattr(owner, attr)
            if isinstance(equivalent, str):
                if not hasattr(owner, equivalent):
                    continue
                replacement = getattr(owner, equivalent)
            else:
                replacement = equivalent(original)
            saved.append((owner, attr, original))
            if why is None:
                setattr(owner, attr, replacement)
                continue

            def run(*args, _fn=replacement, _why=why, _severity=severity, **kwargs):
                replaced.setdefault(_why, (stack[-1], _severity))
                return _fn(*args, **kwargs)

            setattr(owner, attr, run)
        yield
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)
