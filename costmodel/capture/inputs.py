"""Input normalisation and inference: what analyze() was given, as meta tensors by forward
argument name, and the input a model's first layer implies when none was given."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, fx, nn

from ..core.report import Diagnostic, InputInfo
from ..core.tensors import check_size, format_shape, parse_input
from ..core.vocab import Code, Severity
from ..errors import AnalysisError, CaptureError, InputSpecError
from ..ops import META
from . import fx as capture

InputLike = Any  # "1x3x224x224[:dtype]", (1, 3, 224, 224), torch.Size, or a tensor
# ... or a dict, list, tuple or dataclass of these, for a forward that takes that structure


def is_shape(value: Any) -> bool:
    """A tuple/list of ints (or torch.Size) is one shape, not a structure of inputs."""
    return isinstance(value, Sequence) and not isinstance(value, str) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in value)


def structured(value: Any, what: str) -> tuple[Any, list[InputInfo]]:
    """Meta tensors in the structure the user gave (dict, list, tuple, dataclass, nested), and one
    InputInfo per tensor named by its path ('batch.image', 'pair.0'). None and plain Python
    scalars inside a structure pass through unchanged (a flag, an optional mask)."""
    if isinstance(value, (Tensor, str)) or is_shape(value):
        tensor, dtype, shape = meta_input(value, f"input '{what}'")
        return tensor, [InputInfo(what, shape, dtype)]
    infos: list[InputInfo] = []

    def inner(item: Any, key: Any) -> Any:
        path = f"{what}.{key}"
        if item is None or isinstance(item, (bool, int, float)):
            return item
        made, found = structured(item, path)
        infos.extend(found)
        return made

    if isinstance(value, Mapping):
        if not value:
            raise InputSpecError(f"input '{what}' is an empty dict; give each key a shape")
        for key in value:
            if not isinstance(key, str):
                raise InputSpecError(f"input '{what}' has a non-string key {key!r}")
        made = {k: inner(v, k) for k, v in value.items()}
        return (made if type(value) is dict else type(value)(made)), infos
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: inner(getattr(value, f.name), f.name)
                  for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **fields), infos
    if isinstance(value, (list, tuple)):
        if not value:
            raise InputSpecError(f"input '{what}' is an empty {type(value).__name__}")
        items = [inner(v, i) for i, v in enumerate(value)]
        if isinstance(value, tuple) and hasattr(value, "_fields"):   # a namedtuple
            return type(value)(*items), infos
        return type(value)(items), infos
    raise InputSpecError(
        f"input '{what}' must be a shape string like '1x3x224x224', a tuple of ints, a tensor, "
        f"or a dict, list, tuple or dataclass of these, not {type(value).__name__}")


def meta_input(value: InputLike, what: str) -> tuple[Tensor, str, tuple[int, ...]]:
    if isinstance(value, Tensor):
        meta = torch.empty_strided(tuple(value.shape), value.stride(), dtype=value.dtype,
                                   device=META)
        return meta, str(value.dtype).removeprefix("torch."), tuple(value.shape)
    if isinstance(value, str):
        name, shape, dtype = parse_input(value)
    elif is_shape(value):   # () is 0-d
        shape, dtype = tuple(value), "float32"
        if any(d <= 0 for d in shape):
            raise InputSpecError(f"{what} shape {shape} must have positive dimensions")
        check_size(shape, shape)
    else:
        raise InputSpecError(
            f"{what} must be a shape string like '1x3x224x224', a tuple of ints or a tensor, "
            f"not {type(value).__name__}")
    return torch.empty(shape, dtype=getattr(torch, dtype), device=META), dtype, shape


def split_inputs(inputs: tuple) -> list[InputLike]:
    """analyze(m, a, b) and analyze(m, [a, b]) both give two inputs; analyze(m, (1, 3)) gives
    one."""
    if len(inputs) == 1 and isinstance(inputs[0], list) and inputs[0] and not all(
            isinstance(d, int) for d in inputs[0]):
        return list(inputs[0])
    return list(inputs)


def forward_names(model: nn.Module) -> list[str]:
    return [p.name for p in capture.forward_parameters(model)
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def first_layer(model: nn.Module, graph: fx.Graph | None) -> tuple[str, nn.Module | None]:
    """The first torch.nn layer the forward calls (fx graph order), or else the first declared."""
    if graph is not None:
        first = next((n for n in graph.nodes if n.op == "call_module"), None)
        if first is None:
            return "", None
        return first.target, model.get_submodule(first.target)
    is_leaf = capture.is_leaf
    return next(((n, m) for n, m in model.named_modules() if n and is_leaf(m, n)), ("", None))


def infer_input(model: nn.Module, graph: fx.Graph | None) -> tuple[tuple[int, ...], str]:
    """The input of a model whose first layer says it: Conv2d(C) -> 1xCx224x224, and so on."""
    target, layer = first_layer(model, graph)
    how = ('pass one, e.g. costmodel.analyze(model, "1x3x224x224") or '
           '`costmodel report SPEC --input 1x3x224x224`')
    if isinstance(layer, nn.Conv2d):
        return ((1, layer.in_channels, 224, 224),
                f"its first layer is {target} = Conv2d({layer.in_channels}, ...)")
    if isinstance(layer, nn.Conv3d):
        return ((1, layer.in_channels, 16, 112, 112),
                f"its first layer is {target} = Conv3d({layer.in_channels}, ...)")
    if isinstance(layer, nn.Linear):
        return ((1, layer.in_features),
                f"its first layer is {target} = Linear({layer.in_features}, ...)")
    found = f"its first layer is {target} ({type(layer).__name__})" if layer is not None else (
        "it has no layer that fixes its input shape")
    raise AnalysisError(f"cannot infer the input of {type(model).__name__}: {found}; {how}")


@dataclass
class Inputs:
    """What analyze() was given, ready for a capture."""

    values: dict[str, Any]                   # forward argument name -> meta tensor(s)
    infos: list[InputInfo]
    diagnostics: list[Diagnostic]            # CM003 when an input was assumed
    provided: set[str]                       # the forward arguments fx must not fix to defaults
    traced: fx.Graph | None = None           # the fx trace made to infer an input (reusable)
    by_position: tuple[str, ...] = ()        # passed positionally, in order (a *args forward)


def _check_arguments(owner: str, params: list, positional: list, named: dict,
                     free: list[str]) -> None:
    """An input keyword the forward does not take, or one positional input too many, is an
    error: nothing the user gave is dropped."""
    kinds = {p.kind for p in params}
    takes = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        for key in named:
            if key not in takes or any(p.name == key and p.kind == p.POSITIONAL_ONLY
                                       for p in params):
                raise AnalysisError(f"{owner}.forward takes no input named {key!r} "
                                    f"(it takes: {', '.join(takes) or 'nothing'})")
    if len(positional) > len(free) and not any(k.name == "VAR_POSITIONAL" for k in kinds):
        by_name = f" besides {', '.join(sorted(named))} by name" if named else ""
        raise AnalysisError(f"{owner}.forward takes {len(free)} positional input"
                            f"{'s' if len(free) != 1 else ''}{by_name}, but {len(positional)} "
                            f"were given")


def prepare(model: nn.Module, positional: list, named: dict, training: bool) -> Inputs:
    """Meta tensors for the forward's arguments, by name; when none is given, the one its first
    layer implies (CM003). Raises AnalysisError or InputSpecError."""
    names = forward_names(model)
    params = capture.forward_parameters(model)
    star = next((p.name for p in params if p.kind == p.VAR_POSITIONAL), None)
    free = [n for n in names if n not in named]
    _check_arguments(type(model).__name__, params, positional, named, free)
    extra = len(positional) - len(free)
    if star is not None and extra > 0:   # forward(self, x, *args): args_0, args_1, ...
        free += [f"{star}_{i}" for i in range(extra)]
    values: dict[str, Any] = {}
    infos: list[InputInfo] = []
    for name, value in [*zip(free, positional), *named.items()]:
        values[name], found = structured(value, name)
        infos += found
    given = Inputs(values, infos, [], set(values),
                   by_position=tuple(free) if star is not None and extra > 0 else ())
    if values:
        return given
    # the first layer the forward calls fixes the input: fx finds it without one
    if not free:
        raise AnalysisError(f"{type(model).__name__}.forward takes no positional input to infer")
    given.provided.add(free[0])
    try:
        given.traced = capture.trace(model, given.provided, training)
    except CaptureError:
        pass
    shape, why = infer_input(model, given.traced)
    values[free[0]] = torch.empty(shape, device=META)
    infos.append(InputInfo(free[0], shape, "float32", assumed=True))
    given.diagnostics.append(Diagnostic(
        Code.INPUT_ASSUMED, Severity.WARNING,
        f"no input given; assumed {free[0]} = {format_shape(shape)} float32 because {why}. "
        f"Pass the real one to be sure."))
    return given
