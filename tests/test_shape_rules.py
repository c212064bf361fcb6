"""costmodel's fast output-shape rules agree with torch's own meta kernels, and hand anything
unusual back to torch, so a shape torch would refuse is still refused with torch's message."""
from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from costmodel.ops.movement import _unique as _unique_rule
from costmodel.ops.shape_rules import INT_OF, _conv, _linear, _matmul, _mean_sum, _pool

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


# ---- every binding with a shape rule, with keywords and their aliases ------------------------

_INVERSE = {"dim": ("axis",), "keepdim": ("keepdims",), "input": ("x", "a", "x1"),
            "other": ("x2",)}
_M = torch.device(META)


def _t(*shape, dtype=torch.float32):
    return torch.empty(shape, dtype=dtype, device=_M)


def _samples(name: str, op: str, shape_fn) -> list[tuple[tuple, dict]]:
    """Calls of the callable `name` (bound to `op`): positional and keyword forms."""
    from costmodel.ops import shape_rules as R

    x = _t(2, 4, 6) if name == "F.dropout1d" else _t(2, 4, 6, 6)
    if shape_fn in (R._binary, R._compare) or shape_fn is R._first and op in _BINARY_OPS:
        dt = torch.int64 if op.startswith("bitwise") else torch.float32
        a, b = _t(2, 3, 4, dtype=dt), _t(3, 4, dtype=dt)
        c = _t(2, 1, 4, dtype=dt)
        if shape_fn is R._first:
            return [((a, b), {}), ((a,), {"other": b}), ((a, 2), {})]
        return [((a, b), {}), ((b, a), {}), ((a, c), {}), ((a,), {"other": b}),
                ((), {"input": a, "other": c}), ((a, 2), {}), ((a, 2.5), {})]
    if shape_fn is R._first:
        extra = {"clamp": ((-1.0, 1.0), {}), "masked_fill": ((_t(4, 6, 6, dtype=torch.bool), 0.0),
                                                            {})}.get(op, ((), {}))
        dt = torch.int64 if op.startswith("bitwise") else torch.float32
        if op == "clamp":           # clamp_, clamp_min_, clamp_max_
            return [((_t(2, 4, 6, 6), -1.0, 1.0), {}), ((_t(2, 4, 6, 6), -1.0), {})]
        return [((_t(2, 4, 6, 6, dtype=dt), *extra[0]), extra[1])]
    if shape_fn is R._same:
        extra = {
            "batch_norm": [((_t(4), _t(4)), {}),
                           ((), {"running_mean": _t(4), "running_var": _t(4)})],
            "layer_norm": [(([6],), {}), ((), {"normalized_shape": (6,)})],
            "rms_norm": [(([6],), {}), ((), {"normalized_shape": (6,)})],
            "group_norm": [((2,), {}), ((), {"num_groups": 2})],
            "local_response_norm": [((2,), {}), ((), {"size": 2})],
            "prelu": [((_t(4),), {})],
            "softmax": [((1,), {}), ((), {"dim": -1})],
            "log_softmax": [((1,), {}), ((), {"dim": -1})],
            "clamp": [((-1.0, 1.0), {}), ((), {"min": -1.0}), ((), {"max": 1.0})],
            "threshold": [((0.1, 0.0), {})],
            "normalize": [((), {}), ((), {"dim": 2})],
        }.get(op, [((), {})])
        return [((x, *args), kwargs) for args, kwargs in extra] + [((), {"input": x, **kwargs})
                                                                   for args, kwargs in extra
                                                                   if not args]
    if shape_fn is R._mean_sum:
        y = _t(2, 3, 4, 5)
        return [((y, 1), {}), ((y, 1, True), {}), ((y, (1, -1)), {}), ((y,), {"dim": 1}),
                ((y, 1), {"keepdim": True}), ((y,), {"dim": [0, 2], "keepdim": True}),
                ((), {"input": y, "dim": 2, "keepdim": True})]
    if shape_fn is R._cat:
        a, b = _t(1, 32, 4), _t(1, 16, 4)
        return [(([a, b], 1), {}), (([a, b],), {"dim": 1}), (([a, b],), {"dim": -2}),
                (([a, a],), {}), ((), {"tensors": (a, b), "dim": 1})]
    if shape_fn is R._matmul:
        a, b = _t(2, 3, 5), _t(5, 4)
        return [((a, b), {}), ((a,), {"other": b}), ((), {"input": a, "other": b})]
    if shape_fn is R._linear:
        return [((_t(2, 3, 8), _t(5, 8)), {}), ((_t(2, 8),), {"weight": _t(5, 8)})]
    if shape_fn is R._conv:
        k = int(name[-2])
        xs, w = _t(2, 4, *(9,) * k), _t(8, 2, *(3,) * k)
        return [((xs, w, None, 2, 1, 1, 2), {}), ((xs, w), {"stride": 2, "groups": 2}),
                ((), {"input": xs, "weight": w, "padding": 1, "groups": 2})]
    if shape_fn is R._embedding:
        return [((_t(2, 7, dtype=torch.int64), _t(10, 6)), {})]
    if shape_fn is R._sdpa:
        q, k = _t(2, 3, 5, 8), _t(2, 3, 7, 8)
        return [((q, k, k), {}), ((q,), {"key": k, "value": _t(2, 3, 7, 4)})]
    if shape_fn is R._interpolate:
        return [((x,), {"size": (3, 5)}), ((x,), {"scale_factor": 2.0}), ((x, 12), {})]
    if name == "F.multi_head_attention_forward":
        q = _t(5, 2, 8)
        weights = (_t(24, 8), _t(24), None, None, False, 0.0, _t(8, 8), _t(8))
        return [((q, q, q, 8, 2, *weights), {}),
                ((q, q, q, 8, 2, *weights), {"need_weights": True, "average_attn_weights": False}),
                ((q, q, q, 8, 2, *weights), {"need_weights": False})]
    if op.endswith("_cell"):
        g = {"lstm_cell": 4, "gru_cell": 3}.get(op, 1)
        w_ih, w_hh, b = _t(g * 6, 5), _t(g * 6, 6), _t(g * 6)
        h = _t(3, 6)
        hx = (h, h) if op == "lstm_cell" else h
        return [((_t(3, 5), hx, w_ih, w_hh, b, b), {}), ((_t(3, 5), hx, w_ih, w_hh), {})]
    if op in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
        mode = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU"}[op]
        found = []
        for proj, bidirectional in ((0, False), (3, True)) if op == "lstm" else ((0, True),):
            with torch.device(META):
                layer = torch.nn.modules.rnn.RNNBase(mode, 5, 6, num_layers=2, proj_size=proj,
                                                     bidirectional=bidirectional)
            d = 2 if bidirectional else 1
            h = _t(2 * d, 3, proj or 6)
            hx = (h, _t(2 * d, 3, 6)) if op == "lstm" else h
            found.append(((_t(7, 3, 5), hx, layer._flat_weights, True, 2, 0.0, False,
                           bidirectional, False), {}))
        return found
    if shape_fn is R._grouped_mm:   # the meta kernel takes bf16 (a CUDA rule): cross-check there
        bf = torch.bfloat16
        a, a3, w3, w2 = _t(12, 8, dtype=bf), _t(3, 5, 8, dtype=bf), _t(3, 8, 16, dtype=bf), _t(
            8, 16, dtype=bf)
        offs = torch.empty(3, dtype=torch.int32, device=_M)
        return [((a, w3), {"offs": offs}), ((a3, w3), {}), ((a, w2), {"offs": offs}),
                ((a3, w2), {"offs": offs}), ((a, w3.transpose(-2, -1).contiguous().transpose(
                    -2, -1)), {"offs": offs})] + ([((), {"mat_a": a, "mat_b": w3, "offs": offs})]
                                                  if name.startswith("F.") else [])
    if shape_fn is R._clamp:
        return [((x, -1.0, 1.0), {}), ((x, -1.0), {}), ((x,), {"min": -1.0}), ((x,), {"max": 1.0}),
                ((), {"input": x, "min": 0.5}), ((), {"input": x, "max": 0.5}), ((x, _t(6)), {})]
    if shape_fn is R._quantize:   # the meta kernel answers float32: a real quantize, on the CPU
        x, q = torch.randn(2, 3), torch.quantize_per_tensor(torch.randn(2, 3), 0.1, 0, torch.quint8)
        return [((x, 0.1, 0, torch.quint8), {}), ((x,), {"scale": 0.1, "zero_point": 0,
                                                        "dtype": torch.qint8}),
                ((x, torch.ones(3), torch.zeros(3, dtype=torch.long), 1, torch.quint8), {}),
                ((x, torch.quint8, False), {}), ((q,), {})]
    if shape_fn is _unique_rule:   # no meta kernel: a real run on distinct values, where the
        x = torch.randperm(12).reshape(3, 4).float()   # upper bound (every element) is reached
        return [((x,), {}), ((x,), {"return_inverse": True, "return_counts": True}),
                ((), {"input": x, "return_counts": True})]
    if shape_fn is R._histc:
        return [((_t(50),), {}), ((_t(4, 5), 8), {}), ((_t(7),), {"bins": 3, "min": 0, "max": 2})]
    if shape_fn is R._outer:
        return [((_t(3), _t(5)), {}), ((_t(3),), {"vec2": _t(4)})]
    if shape_fn is R._one_hot:
        idx = _t(2, 5, dtype=torch.int64)
        return [((idx, 7), {}), ((idx,), {"num_classes": 4})]
    if shape_fn is R._grid_sample:
        g2, g3 = _t(2, 5, 7, 2), _t(2, 3, 5, 7, 3)
        return [((x, g2), {}), ((x, g2, "nearest"), {}), ((x, g2), {"mode": "bicubic",
                                                                    "align_corners": False}),
                ((_t(2, 4, 6, 6, 6), g3), {"padding_mode": "border"})]
    if shape_fn is R._weight_norm:
        return [((_t(8, 4, 3), _t(8, 1, 1), 0), {}), ((_t(8, 4), _t(1, 4), 1), {})]
    if op in ("fft", "rfft", "irfft"):
        length = "n" if name[-1] not in "2n" else "s"
        sizes = 10 if length == "n" else (4, 6)
        dim = -1 if length == "n" else (0, -1)
        return [((x,), {}), ((x,), {length: sizes, "dim": dim}), ((x, sizes), {}),
                ((), {"input": _t(3, 8, dtype=torch.complex64), "norm": "ortho"})]
    k = int(name.removesuffix("_with_indices").rstrip("d")[-1])
    xs = _t(2, 3, *(9,) * k)
    if op == "max_unpool":
        values, indices = torch.nn.functional.max_pool3d(
            _t(2, 3, 8, 8, 8), 2, return_indices=True) if k == 3 else getattr(
            torch.nn.functional, f"max_pool{k}d")(_t(2, 3, *(8,) * k), 2, return_indices=True)
        return [((values, indices, 2), {}), ((values, indices, 3, 2, 1), {}),
                ((values, indices, 2), {"output_size": (9,) * k})]
    if op in ("max_pool", "avg_pool"):
        return [((xs, 3), {}), ((xs, 3, 2, 1), {}), ((xs,), {"kernel_size": 2, "stride": 1})]
    if op.startswith("adaptive"):
        return [((xs, 4), {}), ((xs,), {"output_size": (2,) * k})]
    return []


_BINARY_OPS = {"add", "sub", "rsub", "mul", "div", "floor_divide", "remainder", "pow", "eq", "ne",
               "lt", "le", "gt", "ge", "bitwise_and", "bitwise_or", "bitwise_xor"}


def _variants(args: tuple, kwargs: dict):
    """The call as written, then with each keyword that has a numpy alias spelled that way."""
    yield args, kwargs
    for key in kwargs:
        for alias in _INVERSE.get(key, ()):
            yield args, {alias if k == key else k: v for k, v in kwargs.items()}


def _shapes(value):
    if isinstance(value, torch.Tensor):   # a quantized tensor as costmodel carries it: its ints
        return [(tuple(value.shape), INT_OF.get(value.dtype, value.dtype))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _shapes(v)]
    return []


def _shape_bindings():
    from costmodel.ops.registry import BINDINGS

    return sorted(((b.name, fn, b.rule) for fn, b in BINDINGS.items()
                   if b.rule is not None and b.rule.shape is not None), key=lambda r: r[0])


def test_every_shape_rule_is_cross_checked_with_keywords_and_aliases():
    """Each binding with a fast shape rule, called positionally, by keyword and with every
    numpy alias torch accepts (`axis=`, `keepdims=`, `x=`, `x2=`), gives torch's own meta shape,
    or declines. A binding none of whose calls the rule answered fails: a new rule needs a case."""
    unchecked, aliased, wrong = [], 0, []
    for name, fn, rule in _shape_bindings():
        checked = 0
        for args, kwargs in _samples(name, rule.op, rule.shape):
            for a, kw in _variants(args, kwargs):
                a = tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in a)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        expected = fn(*a, **kw)
                except (TypeError, RuntimeError, ValueError, IndexError):
                    continue       # torch refuses this spelling or these shapes
                if expected is NotImplemented:
                    continue       # a Python dunder (`__floordiv__`) refused the keywords
                got = rule.shape(rule.bind(a, kw))
                if got is None:
                    continue       # declined: torch's own kernel decides
                if _shapes(got) != _shapes(expected):
                    wrong.append((name, kw, _shapes(got), _shapes(expected)))
                checked += 1
                aliased += any(k in ("axis", "keepdims", "x", "a", "x1", "x2") for k in kw)
        if not checked:
            unchecked.append(name)
    assert not wrong, wrong[:5]
    assert not unchecked, f"shape rules with no cross-check case: {unchecked}"
    assert aliased > 50


@pytest.mark.parametrize("call, shape", [
    (lambda a, b: torch.cat([a, b], axis=1), (1, 64, 4)),
    (lambda a, b: torch.concat([a, b], axis=1), (1, 64, 4)),
    (lambda a, b: torch.concatenate([a, b], axis=1), (1, 64, 4)),
    (lambda a, b: a.sum(1, keepdims=True), (1, 1, 4)),
    (lambda a, b: a.mean(1, keepdims=True), (1, 1, 4)),
    (lambda a, b: torch.sum(input=a, axis=1, keepdims=True), (1, 1, 4)),
])
def test_numpy_aliases_reach_the_model(call, shape):
    """What the model receives after `torch.cat([a, b], axis=1)` has torch's shape (it used to
    be 2x32x4 there): the next op sees it, so a Linear over the last dim gets the right rows."""
    import costmodel

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, a, b):
            return self.fc(call(a, b))

    report = costmodel.analyze(M(), "1x32x4", "1x32x4")
    rows = shape[0] * shape[1]
    assert report.totals.madds == rows * 4 * 3
    assert report.graph.nodes["fc"].outputs[0].shape == shape[:-1] + (3,)


FFTS = ("fft", "ifft", "rfft", "irfft", "hfft", "ihfft", "fft2", "ifft2", "rfft2", "irfft2",
        "hfft2", "ihfft2", "fftn", "ifftn", "rfftn", "irfftn", "hfftn", "ihfftn")


@pytest.mark.parametrize("name", FFTS)
def test_fft_rule_matches_meta_kernel(name):
    """The FFT family's one rule (ops/spectral.py): every length / dim form torch accepts, on
    real and complex input, gives the meta kernel's shape and dtype, or is left to torch."""
    from costmodel.ops.registry import lookup
    fn = getattr(torch.fft, name)
    rule = lookup(fn).rule
    multi = name[-1] in "2n"
    lengths = (None, (4, 6), (-1, 5), (3,)) if multi else (None, 4, 10)
    dims = (None, (0, 1), (-1,), (0, -1)) if multi else (None, -1, 0)
    checked = 0
    for dtype, shape, length, dim in itertools.product(
            (torch.float32, torch.complex64, torch.float64, torch.complex128),
            ((6,), (3, 8), (2, 5, 7)), lengths, dims):
        kwargs = {k: v for k, v in (("s" if multi else "n", length), ("dim", dim)) if v is not None}
        x = torch.empty(shape, dtype=dtype, device=META)
        try:
            expected = fn(x, **kwargs)
        except (RuntimeError, IndexError, ValueError, TypeError):
            expected = None
        got = rule.shape(rule.bind((x,), kwargs))
        if got is not None:
            assert expected is not None, (shape, dtype, kwargs)
            assert (got.shape, got.dtype) == (expected.shape, expected.dtype), (shape, kwargs)
            checked += 1
        else:
            assert expected is None, (shape, dtype, kwargs)   # declined only what torch refuses
    assert checked > 20


def test_empty_makes_the_contiguous_strides():
    """shape_rules.empty() leaves a dense output's strides to torch.empty: they are
    contiguous_strides(shape), size-0 and size-1 dimensions included."""
    from costmodel.ops.shape_rules import contiguous_strides, empty

    for n in range(6):
        for shape in itertools.product((0, 1, 3), repeat=n):
            made = empty(shape, torch.float16)
            assert made.stride() == contiguous_strides(shape) and made.is_meta
            assert tuple(made.shape) == shape and made.dtype == torch.float16
