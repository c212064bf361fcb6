"""torchvision detection models, built with weights=None and weights_backbone=None on meta.

The number of proposals and detections depends on the data. costmodel's eager capture assumes
each data-dependent op keeps every candidate (the static upper bound) until the model's own limits
cap it (RPN's post-NMS top N, top-k candidates, detections per image), says so (CM009) and flags
the affected graph nodes `data_dependent`. Backbone, FPN and heads on fixed counts are exact.

The published `_ops` were counted at an 800x800 input (every model resizes its input itself:
Faster R-CNN, RetinaNet and FCOS to 800, SSD to 300, SSDlite to 320) and:
- match costmodel's total for every model whose box head runs on the capped count;
- for the two Faster R-CNN MobileNet models, equal backbone + FPN + RPN head only: the published
  count ran the box head on no proposal at all (their RPN drops proposals scoring under 0.05), so
  the gap is exactly the box head on post_nms_top_n proposals, which costmodel counts.
`num_params` counts the published models, whose ResNet/MobileNet body uses FrozenBatchNorm2d
(scale and shift are buffers) when built with pretrained weights; the test builds them that way.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

torchvision = pytest.importorskip("torchvision")

from torchvision.models import get_model, get_model_weights  # noqa: E402
from torchvision.ops.misc import FrozenBatchNorm2d  # noqa: E402

import costmodel  # noqa: E402

from conftest import build_meta  # noqa: E402

FULL = ["fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn",
        "retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn", "ssd300_vgg16",
        "ssdlite320_mobilenet_v3_large"]
NO_BOX_HEAD = ["fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn"]
# builders that use FrozenBatchNorm2d in the backbone body when given pretrained weights
# (`norm_layer = FrozenBatchNorm2d if is_trained else nn.BatchNorm2d`); the v2 models do not
FROZEN = {"fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
          "fasterrcnn_mobilenet_v3_large_320_fpn", "retinanet_resnet50_fpn", "fcos_resnet50_fpn"}


def freeze_batch_norm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            with torch.device("meta"):
                setattr(module, name, FrozenBatchNorm2d(child.num_features, child.eps))
        else:
            freeze_batch_norm(child)


def build(name: str) -> nn.Module:
    model = build_meta(get_model, name=name, weights=None, weights_backbone=None)
    if name in FROZEN:
        freeze_batch_norm(model.backbone.body)
    return model


def analyze(name: str):
    return costmodel.analyze(build(name), "1x3x800x800")


def close(madds: int, published_g: float) -> bool:
    published = published_g * 1e9
    return abs(madds - published) <= max(0.005 * published, 0.0006e9)


@pytest.mark.parametrize("name", FULL)
def test_matches_published_ops_and_params(name):
    weights = get_model_weights(name).DEFAULT
    report = analyze(name)
    assert report.capture == "eager (meta tensors)"
    assert report.totals.status == "complete", report.totals.unsupported
    assert close(report.totals.madds, weights.meta["_ops"])
    assert report.totals.params == weights.meta["num_params"]
    assert any(d.code == "CM009" for d in report.diagnostics)


@pytest.mark.parametrize("name", NO_BOX_HEAD)
def test_mobilenet_gap_is_the_box_head_on_the_assumed_proposals(name):
    weights = get_model_weights(name).DEFAULT
    model = build(name)
    report = costmodel.analyze(model, "1x3x800x800")
    modules = {row.key: row.madds for row in report.by_module(depth=1)}
    assert close(modules["backbone"] + modules["rpn"], weights.meta["_ops"])
    assert report.totals.params == weights.meta["num_params"]
    # the data-dependent part, from the model's own config: N proposals through TwoMLPHead
    # (256*7*7 -> 1024 -> 1024) and the predictor (1024 -> 91 classes and 91*4 box deltas)
    n = model.rpn.post_nms_top_n()
    assert modules["roi_heads"] == n * (256 * 7 * 7 * 1024 + 1024 * 1024 + 1024 * 91 + 1024 * 364)


def test_faster_rcnn_assumptions_are_stated_and_flagged():
    from torchvision.ops import boxes

    vanilla = boxes._batched_nms_vanilla
    model = build("fasterrcnn_resnet50_fpn")
    report = costmodel.analyze(model, "1x3x800x800")
    assert boxes._batched_nms_vanilla is vanilla       # the swap is undone after the capture
    messages = [d.message for d in report.diagnostics if d.code == "CM009"]
    n = model.rpn.post_nms_top_n()          # 1000 at test time, from the model's config
    assert any(f"keeps {n} of the data-dependent candidates" in m and "'rpn'" in m
               for m in messages)
    detections = model.roi_heads.detections_per_img
    assert any(f"keeps {detections} of the data-dependent" in m and "'roi_heads'" in m
               for m in messages)
    assert any("nms keeps a number of boxes" in m for m in messages)
    # the box head runs on exactly the capped proposals
    (fc6,) = [layer for layer in report.layers if layer.module == "roi_heads.box_head.fc6"]
    assert fc6.inputs == ((n, 256 * 7 * 7),)
    by_node = [(node.module, node.data_dependent) for node in report.graph]
    assert not any(flag for module, flag in by_node if module.startswith(("backbone", "rpn.head")))
    assert all(flag for module, flag in by_node if module.startswith("roi_heads.box_head"))


def test_nms_and_roi_align_formulas():
    from costmodel.core.tensors import spec
    from costmodel.formulas import OpCall, cost_of

    boxes, scores = spec(4, 4), spec(4)
    cost, _ = cost_of(OpCall("nms", {"boxes": boxes, "scores": scores}, (spec(4, dtype="int64"),)))
    # worst case: sort 4 * log2(4) compares, 3 FLOPs per box area, 13 per IoU of 6 pairs
    assert cost.flops == 4 * 2 + 3 * 4 + 13 * 6 and cost.madds == 0
    assert cost.mac == 16 + 4 + 4

    pooled = spec(10, 256, 7, 7)
    call = OpCall("roi_align", {"input": spec(1, 256, 50, 50), "rois": spec(10, 5)}, (pooled,),
                  {"sampling_ratio": 2})
    # 2x2 bilinear samples per output: 8 FLOPs each (4-tap weighted sum + accumulate), 1 divide
    assert cost_of(call)[0].flops == 10 * 256 * 7 * 7 * (8 * 2 * 2 + 1)
    adaptive = OpCall("roi_align", call.tensors, (pooled,), {"sampling_ratio": 0})
    with pytest.raises(ValueError, match="box-size-dependent"):
        cost_of(adaptive)


def _postprocessed(name: str, detections: int):
    model = build_meta(get_model, name=name, weights=None, weights_backbone=None,
                       box_detections_per_img=detections, min_size=320, max_size=320)
    return model, costmodel.analyze(model, "1x3x320x320")


def test_mask_rcnn_pastes_each_kept_mask_at_the_upper_bound():
    """paste_masks_in_image resizes each of the kept detections' 28x28 masks (padded to 30x30)
    to its box: costed with every box the whole 320x320 image, for the model's own
    box_detections_per_img (7 here), then pasted into 7 image-sized zero masks."""
    from torchvision.models.detection import roi_heads, transform

    original = roi_heads.paste_masks_in_image
    model, report = _postprocessed("maskrcnn_resnet50_fpn", detections=7)
    assert roi_heads.paste_masks_in_image is original is transform.paste_masks_in_image
    assert report.totals.status == "complete", report.totals.unsupported
    (cost, outputs), = [(c.cost, layer.outputs) for layer in report.layers for c in layer.calls
                        if c.op == "interpolate" and layer.module == ""]   # postprocess()
    assert outputs == ((7, 1, 320, 320),)
    assert cost.flops == 7 * 7 * 1 * 320 * 320            # bilinear: 7 FLOPs per output
    assert cost.mac == 7 * 30 * 30 + 7 * 320 * 320
    assert any(d.code == "CM009" and d.severity == "warning" and "paste_masks_in_image" in
               d.message for d in report.diagnostics)


def test_keypoint_rcnn_heatmaps_at_the_upper_bound():
    """heatmaps_to_keypoints resizes each kept detection's 17 heatmaps (56x56) to its box, bicubic:
    costed with every box its whole (resized, 320x320) image, for the 5 detections kept."""
    from torchvision.models.detection import roi_heads

    forward = roi_heads.RoIHeads.forward
    model, report = _postprocessed("keypointrcnn_resnet50_fpn", detections=5)
    assert roi_heads.RoIHeads.forward is forward            # the wrapper is undone
    assert report.totals.status == "complete", report.totals.unsupported
    (cost, outputs), = [(c.cost, layer.outputs) for layer in report.layers for c in layer.calls
                        if c.op == "interpolate" and layer.module == "roi_heads"]
    assert outputs == ((5, 17, 320, 320),)
    assert cost.flops == 31 * 5 * 17 * 320 * 320           # bicubic: 31 FLOPs per output
    assert any(d.code == "CM009" and "heatmaps_to_keypoints" in d.message
               for d in report.diagnostics)
