"""The torch.fx capture: trace an nn.Module into a torch.fx graph at module granularity, then run
that graph on meta tensors (`MetaInterpreter`, a torch.fx.Interpreter) under the shared recorder
and hand every node to the graph builder. The only code that reads torch.fx node.meta.

torch.nn modules are leaves, so graph nodes carry the user's module names (`features.3.conv.1`);
the user's own modules are traced through. Tracing never runs the user's hooks, and it happens in
eval mode with every module's `training` flag restored afterwards, exactly as it was.
"""
from __future__ import annotations

import contextlib
import dis
import inspect
import sys
import traceback
import weakref
from bisect import bisect_left
from typing import Any, Iterator

import torch
from torch import fx, nn

from ..core.graph import CostGraph
from ..core.tensors import format_shape
from ..core.vocab import COMPUTE, NodeKind
from ..errors import CaptureError, ShapeError, first_line
from .builder import GraphBuilder
from .recorder import Recording, _new_tensors, _Recorder, _tensors, callable_name

_UNPACK: dict[Any, tuple[list[int], list[tuple[str, Any]]]] = {}  # code -> offsets, (op, arg)


def _instructions(code: Any) -> tuple[list[int], list[tuple[str, Any]]]:
    cached = _UNPACK.get(code)
    if cached is None:
        instructions = list(dis.get_instructions(code))
        cached = _UNPACK[code] = ([i.offset for i in instructions],
                                  [(i.opname, i.argval) for i in instructions])
    return cached


class _Proxy(fx.Proxy):
    """fx.Proxy whose tuple unpacking (`a, b = x.chunk(2)`) disassembles each function once.

    fx's own __iter__ disassembles the calling function on every unpacking, which was a quarter
    of the time of tracing ShuffleNet V2; the answer depends only on (code, offset), so cache it.
    """

    def __iter__(self):
        frame = inspect.currentframe().f_back
        offsets, ops = _instructions(frame.f_code)
        if sys.version_info >= (3, 11):
            index = bisect_left(offsets, frame.f_lasti)
        else:  # pragma: no cover
            index = frame.f_lasti // 2
        opname, argval = ops[index]
        if opname == "UNPACK_SEQUENCE":
            return (self[i] for i in range(argval))
        return self.tracer.iter(self)


_AS_IS = frozenset({int, float, bool, complex, str, type(None), type(...), torch.dtype,
                    torch.device, torch.memory_format, torch.layout})


class ModuleTracer(fx.Tracer):
    """fx.Tracer that keeps torch.nn modules as leaves and calls `forward` without hooks."""

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _Proxy(node, self)

    def create_arg(self, a: Any) -> Any:
        """fx's create_arg, with the common exact types first: fx tests every argument against
        Parameter, Tensor, Module and its opaque-type registry before its own fast path, which
        was a fifth of the time of tracing ShuffleNet V2. Anything else goes to fx unchanged."""
        kind = type(a)
        if kind is _Proxy:
            return a.node
        if kind in _AS_IS:
            return a
        if kind is tuple:
            return tuple([self.create_arg(x) for x in a])
        if kind is list:
            return [self.create_arg(x) for x in a]
        return super().create_arg(a)

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        return super().call_module(m, m.forward, args, kwargs)


def is_leaf(module: nn.Module, qualname: str = "") -> bool:
    """Whether the captures keep `module` as one leaf node (a torch.nn layer) or go through it.
    fx decides from the module's class (its `__module__`, and not a Sequential): kept per class,
    unless the instance sets its own `__module__`."""
    kind = type(module)
    own = "__module__" in module.__dict__
    found = None if own else _LEAF_TYPES.get(kind)
    if found is None:
        global _LEAF_TRACER
        if _LEAF_TRACER is None:   # fx.Tracer() costs ~35 us (it scans modules to autowrap): once
            _LEAF_TRACER = ModuleTracer()
        found = _LEAF_TRACER.is_leaf_module(module, qualname)
        if not own:
            _LEAF_TYPES[kind] = found
    return found


_LEAF_TRACER: ModuleTracer | None = None
_LEAF_TYPES: dict[type, bool] = {}


class Root(nn.Module):
    """Holds a bare torch.nn layer (MultiheadAttention, LSTM, ...) analysed on its own, so that it
    is traced as one leaf like everywhere else instead of through its internal control flow.
    `wrap` gives it a forward with the layer's own signature, which fx needs to make inputs."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self.root = root

    @staticmethod
    def wrap(root: nn.Module) -> "Root":
        params = [p for p in forward_parameters(root)
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        defaults = {p.name: p.default for p in params if p.default is not p.empty}
        signature, call = [], []
        for p in params:
            signature.append(f"{p.name}=_defaults[{p.name!r}]" if p.name in defaults else p.name)
            call.append(p.name if p.kind is p.POSITIONAL_ONLY else f"{p.name}={p.name}")
        namespace: dict[str, Any] = {"_defaults": defaults}
        exec(f"def forward(self, {', '.join(signature)}):\n"  # noqa: S102 - names come from inspect
             f"    return self.root({', '.join(call)})\n", namespace)
        cls = type(f"Root_{type(root).__name__}", (Root,), {"forward": namespace["forward"]})
        return cls(root)


@contextlib.contextmanager
def training_flags(model: nn.Module, training: bool) -> Iterator[None]:
    """Set every module's `training` flag, then restore each one exactly (not via .train())."""
    saved = [(m, m.training) for m in model.modules() if m.training != training]
    if not saved:  # already in the wanted mode: nothing to set or restore
        yield
        return
    try:
        for m, _ in saved:
            m.training = training
        yield
    finally:
        for m, flag in saved:
            m.training = flag


# forward function -> its parameters; weak, since Root.wrap makes a function per bare layer
_SIGNATURES: weakref.WeakKeyDictionary[Any, list[inspect.Parameter]] = weakref.WeakKeyDictionary()


def forward_parameters(model: nn.Module) -> list[inspect.Parameter]:
    """The parameters of `model.forward` (without self); cached per function (~30 us each)."""
    forward = model.forward
    func = getattr(forward, "__func__", None)   # a bound method: its signature is its function's
    key = func if func is not None and getattr(forward, "__self__", None) is model else None
    if key is not None and key in _SIGNATURES:
        return _SIGNATURES[key]
    try:
        found = list(inspect.signature(forward).parameters.values())
    except (TypeError, ValueError):
        found = []
    if key is not None:
        _SIGNATURES[key] = found
    return found


def _user_frame(exc: BaseException) -> str:
    """'file.py:42 in forward: <code>' for the innermost frame outside torch and costmodel."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        path = frame.filename.replace("\\", "/")
        if "/torch/" in path or "/costmodel/" in path or path.startswith("<"):
            continue
        return f"{frame.filename}:{frame.lineno} in {frame.name}: {(frame.line or '').strip()}"
    return ""


def _take_new_attributes(model: nn.Module, before: set[str]) -> dict[str, Any]:
    return {name: vars(model).pop(name) for name in list(vars(model)) if name not in before}


def trace(model: nn.Module, provided: set[str], training: bool = False) -> fx.Graph:
    """Trace `model`. Forward arguments not in `provided` are fixed to their defaults."""
    concrete = {}
    for p in forward_parameters(model):
        if p.name in provided or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is not p.empty:
            concrete[p.name] = p.default
    tracer = ModuleTracer()
    before = set(vars(model))
    with training_flags(model, training):
        try:
            graph = tracer.trace(model, concrete_args=concrete or None)
            # fx stows tensor constants it meets (`x[idx]` with a tensor idx) as new attributes
            # of the root module; move them off the user's model and onto the graph
            graph.constants = _take_new_attributes(model, before)
            return graph
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear message
            where = next(reversed(tracer.module_stack.values()), ("", None))[0] if getattr(
                tracer, "module_stack", None) else ""
            module = f" in module '{where}'" if where else ""
            line = _user_frame(exc)
            at = f" at {line}" if line else ""
            first = first_line(exc)
            raise CaptureError(
                f"torch.fx could not trace {type(model).__name__}{module}{at}: "
                f"{type(exc).__name__}: {first}") from exc
        finally:
            _take_new_attributes(model, before)


# ---- running the traced graph on meta tensors -----------------------------------------------

def module_paths(graph: fx.Graph) -> dict[fx.Node, str]:
    """The qualified name of the module each node belongs to ('' at the top level)."""
    paths = {}
    for node in graph.nodes:
        if node.op == "call_module":
            paths[node] = str(node.target)
            continue
        stack = node.meta.get("nn_module_stack")
        paths[node] = next(reversed(stack.values()))[0] if stack else ""
    return paths


def describe_target(node: fx.Node, root: nn.Module) -> str:
    if node.op == "call_module":
        return type(root.get_submodule(node.target)).__name__
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if node.op == "call_function":
        return callable_name(node.target)
    return str(node.target)


def _describe(node: fx.Node) -> str:
    if node.op == "call_module":
        return f"call_module {node.target}"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    return callable_name(node.target)


class MetaInterpreter(fx.Interpreter):
    """Runs a traced graph of `model` on meta tensors: leaf modules as hook-free meta clones,
    attributes as meta twins, each compute node under the recorder; every node goes to the
    builder with the values it read, so its inputs' sources are exact (by tensor identity)."""

    def __init__(self, model: nn.Module, graph: fx.Graph, recording: Recording,
                 inputs: dict[str, Any]) -> None:
        super().__init__(model, garbage_collect_values=False, graph=graph)
        self.extra_traceback = False     # our ShapeError is the message
        self.model = model
        self.recording = recording
        self.meta = recording.meta
        self.meta.constants = getattr(graph, "constants", {})
        self.inputs = inputs
        self.paths = module_paths(graph)
        self.builder = GraphBuilder(recording)
        self.recorder = _Recorder(recording)

    def capture(self) -> CostGraph:
        self.run(enable_io_processing=False)
        return self.builder.graph()

    def run_node(self, n: fx.Node) -> Any:
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        kind = NodeKind(n.op)
        calls: list = []
        if kind in COMPUTE:
            if kind is NodeKind.CALL_MODULE:
                self.meta.clone(n.target)    # its meta twins are made outside the recorder
            recorder = self.recorder
            recorder.calls = calls
            try:
                with recorder:
                    value = getattr(self, n.op)(n.target, args, kwargs)
            except Exception as exc:  # noqa: BLE001 - becomes one clear message
                raise self._failed(n, args, kwargs, exc) from exc
            calls = recorder.calls
        else:
            value = getattr(self, n.op)(n.target, args, kwargs)
        outs = _tensors(value) if kind is not NodeKind.GET_ATTR and kind is not NodeKind.OUTPUT \
            else []
        unrecorded = (kind in COMPUTE and not calls and bool(outs)
                      and _new_tensors(value, args, kwargs))
        spec = self.recording.spec
        self.builder.add(n.name, kind, describe_target(n, self.model), self.paths.get(n, ""),
                         () if kind is NodeKind.PLACEHOLDER else (args, kwargs),
                         tuple(spec(t) for t in outs), calls, unrecorded,
                         preds=[a.name for a in n.all_input_nodes])
        self.builder.made(n.name, outs)
        return value

    # ---- one method per node kind -------------------------------------------------------------
    def placeholder(self, target: str, args: tuple, kwargs: dict) -> Any:
        name = target.lstrip("*")
        if name in self.inputs:
            return self.inputs[name]
        if args:
            return args[0]
        raise ShapeError(f"no input given for forward argument '{name}'")

    def get_attr(self, target: str, args: tuple, kwargs: dict) -> Any:
        return self.meta.attr(target)

    def call_module(self, target: str, args: tuple, kwargs: dict) -> Any:
        return self.meta.clone(target).forward(*args, **kwargs)

    def _failed(self, n: fx.Node, args: tuple, kwargs: dict, exc: Exception) -> ShapeError:
        shapes = ", ".join(format_shape(tuple(t.shape)) or "scalar"
                           for t in _tensors((args, kwargs))) or "no tensors"
        where = self.paths.get(n) or "(top level)"
        return ShapeError(
            f"shape propagation failed at node '{n.name}' ({_describe(n)}) in module "
            f"'{where}' with input shapes [{shapes}]: {type(exc).__name__}: {first_line(exc)}")


def capture(model: nn.Module, graph: fx.Graph, recording: Recording,
            inputs: dict[str, Any]) -> CostGraph:
    """The cost graph of the traced `graph` of `model`, run on meta `inputs`. Raises ShapeError."""
    return MetaInterpreter(model, graph, recording, inputs).capture()
