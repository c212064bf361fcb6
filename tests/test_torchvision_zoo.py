"""All torchvision classification models against their published `_ops` and `num_params`.

torchvision counted multiply-adds of conv and matmul ops only (no bias, norms, activations,
pooling or element-wise ops) at batch 1 and the crop size of each model's DEFAULT weights. That is
exactly costmodel's MAdds, so the numbers must agree to the precision torchvision publishes.
"""
from __future__ import annotations

import pytest

torchvision = pytest.importorskip("torchvision")

from torchvision.models import get_model, get_model_weights, list_models  # noqa: E402

import costmodel  # noqa: E402

from conftest import build_meta  # noqa: E402

MODELS = list_models(module=torchvision.models)


def builder_kwargs(name: str, weights) -> dict:
    """The constructor arguments that torchvision's weights builder sets for these weights."""
    kwargs = {}
    if name.startswith("vit_"):
        kwargs["image_size"] = weights.meta["min_size"][0]
    if name == "googlenet":          # its weights drop the auxiliary classifiers
        kwargs.update(aux_logits=False, init_weights=False, transform_input=True)
    if name == "inception_v3":       # its weights keep AuxLogits (they count in num_params)
        kwargs.update(aux_logits=True, init_weights=False, transform_input=True)
    return kwargs


def test_zoo_is_complete():
    assert len(MODELS) == 80


@pytest.mark.parametrize("name", MODELS)
def test_matches_published_ops_and_params(name):
    weights = get_model_weights(name).DEFAULT
    crop = weights.transforms().crop_size[0]
    model = build_meta(get_model, name=name, **builder_kwargs(name, weights))

    report = costmodel.analyze(model, f"1x3x{crop}x{crop}")

    published = weights.meta["_ops"] * 1e9
    assert report.totals.status == "complete", report.totals.unsupported
    assert abs(report.totals.madds - published) <= max(0.005 * published, 0.0006e9)
    assert report.totals.params == weights.meta["num_params"]
