"""analyze(): the notebook entry point. Validate -> capture -> annotate -> (train) -> Report."""
from __future__ import annotations

import gc
import sys
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .analysis.annotate import annotate
from .analysis.context import AnalysisContext
from .capture import eager
from .capture import fx as _fx  # analyze()'s `capture` argument shadows a module named capture
from .capture import inputs as _inputs
from .capture.meta import MetaModel
from .capture.recorder import Recording
from .core.cost import total
from .core.graph import CostGraph
from .core.report import Diagnostic, Report, Totals
from .core.tensors import canonical_dtype
from .core.vocab import CaptureChoice, CaptureKind, Code, Mode, Severity, Status
from .errors import AnalysisError, CaptureError, EagerError, ShapeError, first_line

InputLike = Any  # "1x3x224x224[:dtype]", (1, 3, 224, 224), torch.Size, or a tensor
RECURSION_LIMIT = 2000   # frames while analysing; see analyze()


def analyze(model: nn.Module, *inputs: InputLike, kwargs: Mapping[str, InputLike] | None = None,
            mode: str = "eval", dtype: str | None = None, capture: str = "auto") -> Report:
    """Static cost of `model` on the given input shapes; nothing real runs and the model is
    untouched.

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
    if mode not in tuple(Mode):
        raise ValueError(f"mode={mode!r} is not supported; use mode='eval' or mode='train'")
    if capture not in tuple(CaptureChoice):
        raise ValueError(f"capture={capture!r} is not one of {', '.join(CaptureChoice)}")
    float_dtype = canonical_dtype(dtype) if dtype is not None else None
    if isinstance(model, torch.jit.ScriptModule):
        raise AnalysisError(
            f"{type(model).__name__} is a TorchScript module (torch.jit.script / torch.jit.trace), "
            f"which has no Python forward to run; analyse the eager nn.Module it was made from")
    model = _unwrap(model)
    if _fx.is_leaf(model):
        model = _fx.Root.wrap(model)   # a bare torch.nn layer: trace it as one leaf, not through
    gc_was_enabled = gc.isenabled()
    gc.disable()   # a full collection in the middle of a trace costs more than the whole analysis
    limit = sys.getrecursionlimit()
    # the capture adds about one frame per nesting level to the forward's own: a model that torch
    # can run at the default limit (about 250 nested containers) must be analysed
    sys.setrecursionlimit(max(limit, RECURSION_LIMIT))
    try:
        with torch.no_grad():
            report = _analyze(model, _inputs.split_inputs(inputs), dict(kwargs or {}), float_dtype,
                              training=mode == Mode.TRAIN, how=CaptureChoice(capture))
            if mode == Mode.TRAIN:
                from .analysis.train import with_backward
                trained = [p for p in model.parameters() if p.requires_grad]
                report = with_backward(report, {id(p) for p in trained},
                                       sum(p.numel() for p in trained))
            return report
    except RecursionError:
        raise AnalysisError(
            f"{type(model).__name__} nests too deeply to analyse: Python's recursion limit "
            f"({sys.getrecursionlimit()} frames) was reached; costmodel analyses models that "
            f"torch can run at the default limit (about 250 nested modules)") from None
    finally:
        sys.setrecursionlimit(limit)
        if gc_was_enabled:
            gc.enable()


def _unwrap(model: nn.Module) -> nn.Module:
    """The model a wrapper runs: nn.DataParallel / DistributedDataParallel (`.module`, which
    their forward calls with the same inputs) and torch.compile's wrapper (`._orig_mod`)."""
    while True:
        parallel = (nn.DataParallel, nn.parallel.DistributedDataParallel)
        if isinstance(model, parallel) and isinstance(getattr(model, "module", None), nn.Module):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and isinstance(
                getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def _analyze(model: nn.Module, positional: list, named: dict, float_dtype: str | None,
             training: bool = False, how: CaptureChoice = CaptureChoice.AUTO) -> Report:
    given = _inputs.prepare(model, positional, named, training)
    g, used, found, meta = _capture(model, given, float_dtype, training, how)
    layers, costed = annotate(g)
    g.context = AnalysisContext(g)   # each analysis of the graph, computed once on first use
    diagnostics = [*given.diagnostics, *found, *costed]
    params, params_unused, found = _model_findings(model, meta, g, training)
    diagnostics += found
    sums = total(layer.cost for layer in layers)
    unsupported = tuple(sorted({d.op for d in diagnostics
                                if d.code in (Code.UNSUPPORTED_OP, Code.UNRECORDED_OP)}))
    totals = Totals(sums.madds, sums.flops, params, sums.mac,
                    sums.mac_bytes, Status.PARTIAL if unsupported else Status.COMPLETE,
                    params_unused, unsupported)
    name = type(model.root).__name__ if isinstance(model, _fx.Root) else type(model).__name__
    mode = Mode.TRAIN if training else Mode.EVAL
    return Report(name, tuple(given.infos), mode, tuple(layers), totals, tuple(diagnostics),
                  used, g, dtype=float_dtype)


def _capture(model: nn.Module, given: _inputs.Inputs, float_dtype: str | None, training: bool,
             how: CaptureChoice
             ) -> tuple[CostGraph, CaptureKind, list[Diagnostic], MetaModel]:
    """The cost graph from the eager capture, or torch.fx's when asked or when eager stops, and
    the capture's meta twins of the model (whose clone noted its hooks and parameters)."""
    diagnostics: list[Diagnostic] = []
    eager_error: Exception | None = None
    if how is not CaptureChoice.FX:   # the default: the model's own forward, once, on meta
        # as a trace first (the library code skips its value checks); if that stops, once more
        # as plain eager code, for code whose compile path needs more than its eager path
        for as_trace in (True, False):
            try:
                recording = Recording(model, training=training, float_dtype=float_dtype)
                g, run = eager.capture(model, recording, given.values, given.by_position,
                                       as_trace)
                return (g, CaptureKind.EAGER, eager.diagnostics(g, run) + _hooks(recording),
                        recording.meta)
            except EagerError as exc:
                eager_error = eager_error or exc
        if how is CaptureChoice.EAGER:
            raise AnalysisError(first_line(eager_error)) from eager_error
    recording = Recording(model, training=training, float_dtype=float_dtype)
    try:
        g = _fx_graph(model, given, recording, training)
    except (CaptureError, ShapeError):
        if eager_error is None:
            raise
        # both failed: the eager capture's message names the layer, its input shapes and
        # the user's line; torch.fx's reason would only add noise
        raise AnalysisError(first_line(eager_error)) from eager_error
    if eager_error is not None:
        diagnostics.append(Diagnostic(
            Code.CAPTURE_FALLBACK, Severity.INFO,
            f"{first_line(eager_error)}; analysed with torch.fx instead, which traces the "
            f"forward symbolically"))
    return g, CaptureKind.FX, diagnostics + _hooks(recording), recording.meta


def _hooks(recording: Recording) -> list[Diagnostic]:
    """CM011: the model's forward hooks that ran (on meta tensors, as part of its forward) and
    those skipped because they failed there; CM005: hooks that did not run (backward hooks, and
    forward hooks of modules torch.fx inlined or the forward never called)."""
    meta = recording.meta
    found = []
    hooked, backward, _ = meta.inventory()   # noted while cloning the modules
    ran = [n for n in hooked if n in meta.hooks_ran]
    if ran:
        found.append(Diagnostic(
            Code.HOOKS_RUN, Severity.INFO,
            f"the forward hooks of {_some(ran)} ran on meta tensors, as part of the model's "
            f"forward (on its clones: the model itself is untouched)"))
    for where, why in meta.hooks_failed.items():
        found.append(Diagnostic(
            Code.HOOKS_RUN, Severity.WARNING,
            f"a forward hook of {where} failed on meta tensors ({why}) and was skipped; what it "
            f"would add to the forward is not counted", module=where))
    skipped = [n for n in hooked if n not in meta.hooks_ran and n not in meta.hooks_failed]
    if skipped:
        found.append(Diagnostic(
            Code.HOOKS_SKIPPED, Severity.INFO,
            f"forward hooks on {_some(skipped)} were not run (the capture did not call these "
            f"modules as modules)"))
    if backward:
        found.append(Diagnostic(
            Code.HOOKS_SKIPPED, Severity.INFO,
            f"backward hooks on {_some(backward)} were not run (nothing runs backward)"))
    return found


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _fx_graph(model: nn.Module, given: _inputs.Inputs, recording: Recording,
              training: bool) -> CostGraph:
    """The torch.fx capture: trace symbolically (unless analyze already did, to infer an input),
    then run the graph on meta tensors. Raises CaptureError or ShapeError."""
    graph = given.traced if given.traced is not None else _fx.trace(model, given.provided, training)
    defaults = {p.name: p.default for p in _fx.forward_parameters(model)
                if p.default is not p.empty}
    return _fx.capture(model, graph, recording, {**defaults, **given.values})


def _model_findings(model: nn.Module, meta: MetaModel, g: CostGraph,
                    training: bool) -> tuple[int, int, list[Diagnostic]]:
    """The model's parameters (tied ones once; `meta.inventory()`), those the forward never
    reads, CM004 and CM007."""
    diagnostics: list[Diagnostic] = []
    # as model.named_parameters(), tied ones once, a quantized Linear's packed weights too:
    # id -> (module path, name, numel)
    all_params = meta.inventory()[2]
    read = {key for node in g for call in node.calls for key, _ in call.params}
    unused = {key: v for key, v in all_params.items() if key not in read}
    params_unused = sum(n for _, _, n in unused.values())
    if unused:
        names = [f"{prefix}.{key}" if prefix else key for prefix, key, _ in unused.values()]
        owners = sorted({name.rsplit(".", 1)[0] if "." in name else name for name in names})
        shown = ", ".join(owners[:5]) + (f" and {len(owners) - 5} more" if len(owners) > 5 else "")
        diagnostics.append(Diagnostic(
            Code.UNUSED_PARAMS, Severity.INFO,
            f"{params_unused:,} parameters are never read by this forward pass ({shown}); "
            f"they are in params but cost nothing here"))
    if model.training and not training:
        diagnostics.append(Diagnostic(
            Code.TRAINING_MODE, Severity.INFO,
            "the model is in training mode; it was analysed as in eval mode (inference), and its "
            "own flags were left as they were"))
    return sum(n for _, _, n in all_params.values()), params_unused, diagnostics

