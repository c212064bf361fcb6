"""torchvision segmentation and video models against their published `_ops` and `num_params`.

Same check as the classification zoo (tests/test_torchvision_zoo.py): torchvision counted conv and
matmul multiply-adds only, at batch 1, which is costmodel's MAdds.

- Segmentation: at 520x520 (the `resize_size` of the DEFAULT weights' transforms). The published
  weights have the auxiliary classifier (`aux_loss=True`, which the builder sets for them), and
  torchvision's forward runs it in eval too, so both `_ops` and `num_params` include it: without
  it fcn_resnet50 would be 142.73 G and 32,957,013 params instead of 152.717 G and 35,322,218.
  lraspp has no auxiliary classifier.
- Video: 16 frames at the DEFAULT weights' crop size (112 for the ResNet-3D family, 224 for s3d,
  mvit and swin3d). swin3d cannot be traced by torch.fx, so it exercises the eager fallback.
"""
from __future__ import annotations

import pytest

torchvision = pytest.importorskip("torchvision")

from torchvision.models import get_model, get_model_weights, list_models  # noqa: E402

import costmodel  # noqa: E402

from conftest import build_meta  # noqa: E402

SEGMENTATION = list_models(module=torchvision.models.segmentation)
VIDEO = list_models(module=torchvision.models.video)


def check(report, weights) -> None:
    published = weights.meta["_ops"] * 1e9
    assert report.totals.status == "complete", report.totals.unsupported
    assert abs(report.totals.madds - published) <= max(0.005 * published, 0.0006e9)
    assert report.totals.params == weights.meta["num_params"]


def test_the_lists_are_complete():
    assert len(SEGMENTATION) == 6 and len(VIDEO) == 9


@pytest.mark.parametrize("name", SEGMENTATION)
def test_segmentation_matches_published_ops_and_params(name):
    weights = get_model_weights(name).DEFAULT
    (size,) = weights.transforms().resize_size
    kwargs = {} if name.startswith("lraspp") else {"aux_loss": True}
    model = build_meta(get_model, name=name, weights=None, weights_backbone=None, **kwargs)
    check(costmodel.analyze(model, f"1x3x{size}x{size}"), weights)


def test_segmentation_ops_include_the_aux_classifier():
    weights = get_model_weights("fcn_resnet50").DEFAULT
    plain = build_meta(get_model, name="fcn_resnet50", weights=None, weights_backbone=None)
    report = costmodel.analyze(plain, "1x3x520x520")
    # without the aux head, MAdds fall short of `_ops` by far more than its precision
    assert weights.meta["_ops"] * 1e9 - report.totals.madds > 5e9
    assert report.totals.params < weights.meta["num_params"]


@pytest.mark.parametrize("name", VIDEO)
def test_video_matches_published_ops_and_params(name):
    weights = get_model_weights(name).DEFAULT
    crop = weights.transforms().crop_size[0]
    frames = 16
    assert weights.meta.get("min_temporal_size", 1) <= frames
    model = build_meta(get_model, name=name)
    report = costmodel.analyze(model, f"1x3x{frames}x{crop}x{crop}")
    check(report, weights)
    if name.startswith("swin3d"):
        assert report.capture == "eager (meta tensors)"
