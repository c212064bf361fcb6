"""costmodel's fast output-shape rules agree with torch's own meta kernels, and hand anything
unusual back to torch, so a shape torch would refuse is still refused with torch's message."""
from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from costmodel.ops.shape_rules import _conv, _linear, _matmul, _mean_sum, _pool

META = "meta"


@pytest.mark.parametrize("k", (1, 2, 3))
def test_conv_rule_matches_meta_kernel(k):
    checked = 0
    for (c, g), s, p, d, size, batched in itertools.product(
            ((4, 1), (4, 2), (4, 4), (3, 2)), (1, 2, (2, 1)), (0, 1, (2, 0)), (1, 2), (3, 8),
            (True, False)):
        stride, padding = (s if isinstance(s, int) else s[:1] * k), (
            p if isinstance(p, int) else p[:1] * k)
        x = torch.empty(((2,) if batched else ()) + (c,) + (size,) * k, device=META)
        w = torch.empty((8, max(c // g, 1)) + (3,) * k, device=META)
        conv = getattr(torch, f"conv{k}d")
        try:
            expected = conv(x, w, None, stride, padding, d, g).shape
        except RuntimeError:
            expected = None
        got = _conv({"input": x, "weight": w, "stride": stride, "padding": padding,
                     "dilation": d, "groups": g})
        if expected is None:
            assert got is None
        else:
            assert got is not None and got.shape == expected
            checked += 1
    assert checked > 50


def test_matmul_rule_matches_torch_or_declines():
    shapes = [(), (5,), (3, 5), (5, 4), (2, 3, 5), (1, 5, 4), (2, 5, 4), (7, 1, 3, 5), (6, 5, 4),
              (3, 4), (2, 2, 5, 4)]
    checked = declined = 0
    for a, b in itertools.product(shapes, repeat=2):
        x, y = torch.empty(a, device=META), torch.empty(b, device=META)
        try:
            expected = torch.matmul(x, y).shape
        except RuntimeError:
            expected = None
        got = _matmul({"input": x, "other": y})
        if got is None:
            declined += 1          # vectors, mismatches: torch's own kernel decides (or refuses)
        else:
            assert expected is not None and got.shape == expected and got.is_contiguous()
            checked += 1
    assert checked > 10 and declined > 20
    assert _matmul({"input": torch.empty(2, 3, device=META),
                    "other": torch.empty(3, 4, device=META, dtype=torch.float16)}) is None


@pytest.mark.parametrize("k", (1, 2, 3))
@pytest.mark.parametrize("kind", ("max", "avg"))
def test_pool_rule_matches_meta_kernel(k, kind):
    checked = declined = 0
    for kernel, stride, padding, dilation, ceil, size, batched in itertools.product(
            (1, 2, 3, (3, 1)), (None, 1, 2), (0, 1, 2), (1, 2), (False, True), (4, 7),
            (True, False)):
        if kind == "avg" and dilation != 1:
            continue
        kernel = kernel if isinstance(kernel, int) else kernel[:1] * k
        x = torch.empty(((2,) if batched else ()) + (3,) + (size,) * k, device=META)
        args = {"input": x, "kernel_size": kernel, "stride": stride, "padding": padding,
                "ceil_mode": ceil}
        fn = getattr(torch.nn.functional, f"{kind}_pool{k}d")
        if kind == "max":
            args["dilation"] = dilation
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = fn(**args).shape
        except RuntimeError:
            expected = None
        got = _pool(k, dilated=kind == "max")(args)
        if got is None:
            declined += 1          # ceil_mode, refused shapes: torch decides
        else:
            assert expected is not None and got.shape == expected, args
            checked += 1
    assert checked > 30 and declined > 30


def test_mean_sum_rule_matches_torch_or_declines():
    x = torch.empty(2, 3, 4, 5, device=META)
    checked = 0
    for dim, keepdim in itertools.product((0, -1, 3, (2, 3), [1, -1], (0, 1, 2, 3), 4, (1, 1)),
                                          (False, True)):
        for name in ("mean", "sum"):
            try:
                expected = getattr(torch, name)(x, dim, keepdim).shape
            except (RuntimeError, IndexError):
                expected = None
            got = _mean_sum({"input": x, "dim": dim, "keepdim": keepdim})
            if expected is None:
                assert got is None
            else:
                assert got is not None and got.shape == expected and got.dtype == x.dtype
                checked += 1
    assert checked == 24
    ints = torch.empty(2, 3, dtype=torch.int64, device=META)
    assert _mean_sum({"input": ints, "dim": 1}) is None      # sum promotes ints: torch decides
    assert _mean_sum({"input": x, "dim": None}) is None


def test_string_padding_goes_to_torch():
    x, w = torch.empty(1, 4, 9, 9, device=META), torch.empty(8, 4, 3, 3, device=META)
    assert _conv({"input": x, "weight": w, "padding": "same"}) is None


def test_linear_rule_refuses_a_mismatch():
    w = torch.empty(8, 8, device=META)
    assert _linear({"input": torch.empty(2, 9, device=META), "weight": w}) is None
    assert _linear({"input": torch.empty(2, 8, device=META), "weight": w}).shape == (2, 8)


def test_linear_mismatch_is_reported_with_the_layer():
    import costmodel
    from costmodel.errors import (
        AnalysisError,  # noqa: F401 - the documented error family
        CostmodelError,
    )

    model = torch.nn.Sequential(torch.nn.Linear(8, 8))
    with pytest.raises(CostmodelError, match=r"'0'.*2x9"):
        costmodel.analyze(model, "2x9")


@pytest.mark.parametrize("name", ["shufflenet_v2_x1_0", "swin_t", "maxvit_t", "inception_v3"])
def test_tracer_fast_path_builds_the_graph_fx_builds(name):
    """ModuleTracer.create_arg skips fx's checks for plain types; the graph must not change."""
    import re

    import torchvision
    from torch import fx

    from costmodel.capture.fx import ModuleTracer

    class Plain(ModuleTracer):
        create_arg = fx.Tracer.create_arg

    with torch.device(META), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # inception_v3's init-weights notice
        model = torchvision.models.get_model(name).eval()
    code = [re.sub(r"_tensor_constant\d+", "c", fx.GraphModule(model, t().trace(model)).code)
            for t in (ModuleTracer, Plain)]
    assert code[0] == code[1]
