"""analyze(): the notebook entry point. Trace, propagate shapes, cost, roll up, report."""
from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, fx, nn

from .capture import fx as capture
from .capture import eager
from .capture import builder as graph_stage
from .analysis.annotate import annotate
from .core.cost import total
from .errors import AnalysisError, CaptureError, EagerError, InputSpecError, ShapeError, first_line
from .ops import META
from .core.report import Diagnostic, InputInfo, Report, Totals
from .capture.recorder import Interpreter
from .core.tensors import canonical_dtype, format_shape, parse_input
from .core.vocab import Code, Severity, Status

_fx = capture   # analyze()'s `capture` argument shadows the module's name there

InputLike = Any  # "1x3x224x224[:dtype]", (1, 3, 224, 224), torch.Size, or a tensor


def _meta_input(value: InputLike, what: str) -> tuple[Tensor, str, tuple[int, ...]]:
    if isinstance(value, Tensor):
        meta = torch.empty_strided(tuple(value.shape), value.stride(), dtype=value.dtype,
                                   device=META)
        return meta, str(value.dtype).removeprefix("torch."), tuple(value.shape)
    if isinstance(value, str):
        name, shape, dtype = parse_input(value)
    elif isinstance(value, Sequence) and value and all(isinstance(d, int) for d in value):
        shape, dtype = tuple(value), "float32"
        if any(d <= 0 for d in shape):
            raise InputSpecError(f"{what} shape {shape} must have positive dimensions")
    else:
        raise InputSpecError(
            f"{what} must be a shape string like '1x3x224x224', a tuple of ints or a tensor, "
            f"not {type(value).__name__}")
    return torch.empty(shape, dtype=getattr(torch, dtype), device=META), dtype, shape


def _split_inputs(inputs: tuple) -> list[InputLike]:
    """analyze(m, a, b) and analyze(m, [a, b]) both give two inputs; analyze(m, (1, 3)) gives one."""
    if len(inputs) == 1 and isinstance(inputs[0], list) and inputs[0] and not all(
            isinstance(d, int) for d in inputs[0]):
        return list(inputs[0])
    return list(inputs)


def _forward_names(model: nn.Module) -> list[str]:
    return [p.name for p in capture.forward_parameters(model)
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def first_layer(model: nn.Module, graph: fx.Graph | None) -> tuple[str, nn.Module | None]:
    """The first torch.nn layer the forward calls (fx graph order), or else the first declared."""
    if graph is not None:
        first = next((n for n in graph.nodes if n.op == "call_module"), None)
        return (first.target, model.get_submodule(first.target)) if first is not None else ("", None)
    is_leaf = capture.is_leaf
    return next(((n, m) for n, m in model.named_modules() if n and is_leaf(m, n)), ("", None))


def infer_input(model: nn.Module, graph: fx.Graph | None) -> tuple[tuple[int, ...], str]:
    """The input of a model whose first layer says it: Conv2d(C) -> 1xCx224x224, and so on."""
    target, layer = first_layer(model, graph)
    how = ('pass one, e.g. costmodel.analyze(model, "1x3x224x224") or '
           '`costmodel report SPEC --input 1x3x224x224`')
    if isinstance(layer, nn.Conv2d):
        return (1, layer.in_channels, 224, 224), f"its first layer is {target} = Conv2d({layer.in_channels}, ...)"
    if isinstance(layer, nn.Conv3d):
        return (1, layer.in_channels, 16, 112, 112), f"its first layer is {target} = Conv3d({layer.in_channels}, ...)"
    if isinstance(layer, nn.Linear):
        return (1, layer.in_features), f"its first layer is {target} = Linear({layer.in_features}, ...)"
    found = f"its first layer is {target} ({type(layer).__name__})" if layer is not None else (
        "it has no layer that fixes its input shape")
    raise AnalysisError(f"cannot infer the input of {type(model).__name__}: {found}; {how}")


def analyze(model: nn.Module, *inputs: InputLike, kwargs: Mapping[str, InputLike] | None = None,
            mode: str = "eval", dtype: str | None = None, capture: str = "auto") -> Report:
    """Static cost of `model` on the given input shapes; nothing real runs and the model is untouched.

    inputs: one per positional forward argument: '1x3x224x224[:dtype]', (1, 3, 224, 224), a
        tensor (only its shape and dtype are used), or a list of these. With no input, costmodel
        infers one from the first layer when it safely can and says so in the report.
    kwargs: inputs passed by keyword, e.g. {"attention_mask": "1x128:int64"}.
    mode: "eval" (inference: dropout is the identity, batch norm uses running statistics), or
        "train": forward with training semantics (dropout active, batch statistics) plus the
        backward pass, op by op, and the activation memory kept for it (`report.train`).
    dtype: count `mac_bytes` as if every floating tensor had this dtype ("float16", ...).
    capture: "auto" (the eager capture: the model's own forward, run once on meta tensors, and
        torch.fx when that fails), "eager" (eager only) or "fx" (torch.fx's symbolic trace only).
        Both give the same costs; `report.capture` says which ran.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"analyze() expects an nn.Module, not {type(model).__name__}")
    if mode not in ("eval", "train"):
        raise ValueError(f"mode={mode!r} is not supported; use mode='eval' or mode='train'")
    if capture not in CAPTURES:
        raise ValueError(f"capture={capture!r} is not one of {', '.join(CAPTURES)}")
    float_dtype = canonical_dtype(dtype) if dtype is not None else None
    if _fx.is_leaf(model):
        model = _fx.Root.wrap(model)   # a bare torch.nn layer: trace it as one leaf, not through
    gc_was_enabled = gc.isenabled()
    gc.disable()   # a full collection in the middle of a trace costs more than the whole analysis
    try:
        with torch.no_grad():
            report = _analyze(model, _split_inputs(inputs), dict(kwargs or {}), float_dtype,
                              training=mode == "train", how=capture)
            if mode == "train":
                from .analysis.train import with_backward
                report = with_backward(report, {id(p) for p in model.parameters() if p.requires_grad},
                                       sum(p.numel() for p in model.parameters() if p.requires_grad))
            return report
    finally:
        if gc_was_enabled:
            gc.enable()


def _analyze(model: nn.Module, positional: list, named: dict, float_dtype: str | None,
             training: bool = False, how: str = "auto") -> Report:
    names = _forward_names(model)
    if len(positional) > len(names) and not any(
            p.kind == p.VAR_POSITIONAL for p in capture.forward_parameters(model)):
        raise AnalysisError(f"{type(model).__name__}.forward takes {len(names)} positional "
                            f"inputs, but {len(positional)} were given")
    free = [n for n in names if n not in named]
    values: dict[str, Tensor] = {}
    infos: list[InputInfo] = []
    for name, value in zip(free, positional):
        values[name], dt, shape = _meta_input(value, f"input '{name}'")
        infos.append(InputInfo(name, shape, dt))
    for name, value in named.items():
        values[name], dt, shape = _meta_input(value, f"input '{name}'")
        infos.append(InputInfo(name, shape, dt))
    diagnostics: list[Diagnostic] = []

    assume = not values
    provided = set(values) | ({free[0]} if assume and free else set())
    fx_graph = None
    if assume:   # the first layer the forward calls fixes the input: fx finds it without one
        if not free:
            raise AnalysisError(f"{type(model).__name__}.forward takes no positional input to infer")
        try:
            fx_graph = capture.trace(model, provided, training)
        except CaptureError:
            pass
        shape, why = infer_input(model, fx_graph)
        values[free[0]] = torch.empty(shape, device=META)
        infos.append(InputInfo(free[0], shape, "float32", assumed=True))
        diagnostics.append(Diagnostic(
            Code.INPUT_ASSUMED, Severity.WARNING,
            f"no input given; assumed {free[0]} = {format_shape(shape)} float32 because {why}. "
            f"Pass the real one to be sure."))

    g = None
    eager_error: Exception | None = None
    if how != "fx":   # the default: run the model's own forward once, on meta tensors
        try:
            g, replaced = eager.capture(
                model, Interpreter(model, training=training, float_dtype=float_dtype), values)
            used = eager.NAME
            diagnostics += eager.diagnostics(g, replaced)
        except EagerError as exc:
            if how == "eager":
                raise AnalysisError(first_line(exc)) from exc
            eager_error = exc
    if g is None:
        try:
            g = _fx_graph(model, fx_graph, provided, values, float_dtype, training)
        except (CaptureError, ShapeError):
            if eager_error is None:
                raise
            # both failed: the eager capture's message names the layer, its input shapes and
            # the user's line; torch.fx's reason would only add noise
            raise AnalysisError(first_line(eager_error)) from eager_error
        used = "torch.fx"
        if eager_error is not None:
            diagnostics.append(Diagnostic(
                Code.CAPTURE_FALLBACK, Severity.INFO,
                f"{first_line(eager_error)}; analysed with torch.fx instead, which traces the "
                f"forward symbolically"))
    layers, found = annotate(g)
    diagnostics += found

    read = {key for _, calls in g.nodes(data="calls") for call in calls for key, _ in call.params}
    modules = list(model.named_modules())
    all_params: dict[int, tuple[str, int]] = {}   # as model.named_parameters(): tied ones once
    for prefix, module in modules:
        for key, p in module._parameters.items():
            if p is not None and id(p) not in all_params:
                all_params[id(p)] = (f"{prefix}.{key}" if prefix else key, p.numel())
    unused = {key: v for key, v in all_params.items() if key not in read}
    params_unused = sum(n for _, n in unused.values())
    if unused:
        owners = sorted({name.rsplit(".", 1)[0] if "." in name else name
                         for name, _ in unused.values()})
        shown = ", ".join(owners[:5]) + (f" and {len(owners) - 5} more" if len(owners) > 5 else "")
        diagnostics.append(Diagnostic(
            Code.UNUSED_PARAMS, Severity.INFO,
            f"{params_unused:,} parameters are never read by this forward pass ({shown}); "
            f"they are in params but cost nothing here"))
    hooked = [n for n, m in modules if m._forward_hooks or m._forward_pre_hooks]
    if hooked:
        diagnostics.append(Diagnostic(
            Code.HOOKS_SKIPPED, Severity.INFO,
            f"forward hooks on {', '.join(hooked[:3]) or '(root)'} were not run by the analysis"))
    if model.training and not training:
        diagnostics.append(Diagnostic(
            Code.TRAINING_MODE, Severity.INFO,
            "the model is in training mode; it was analysed as in eval mode (inference), and its "
            "own flags were left as they were"))

    sums = total(layer.cost for layer in layers)
    unsupported = tuple(sorted({d.op for d in diagnostics
                                if d.code in (Code.UNSUPPORTED_OP, Code.UNRECORDED_OP)}))
    totals = Totals(sums.madds, sums.flops, sum(n for _, n in all_params.values()), sums.mac,
                    sums.mac_bytes, Status.PARTIAL if unsupported else Status.COMPLETE,
                    params_unused, unsupported)
    name = type(model.root).__name__ if isinstance(model, capture.Root) else type(model).__name__
    return Report(name, tuple(infos), "train" if training else "eval", tuple(layers), totals,
                  tuple(diagnostics), used, g)


CAPTURES = ("auto", "fx", "eager")



def _fx_graph(model: nn.Module, traced: fx.Graph | None, provided: set[str],
              values: dict[str, Tensor], float_dtype: str | None, training: bool):
    """The torch.fx capture: trace symbolically (unless `traced` is given), then run the graph
    on meta tensors. Raises CaptureError or ShapeError."""
    graph = traced if traced is not None else capture.trace(model, provided, training)
    paths = graph_stage.module_paths(graph)
    interp = Interpreter(model, training=training, float_dtype=float_dtype)
    defaults = {p.name: p.default for p in capture.forward_parameters(model)
                if p.default is not p.empty}
    records = interp.run(graph, {**defaults, **values}, paths)
    return graph_stage.build(graph, model, records, paths)
