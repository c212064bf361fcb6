"""Eager capture: costmodel's default capture (torch.fx's symbolic trace, in capture.py, is the
alternative and the fallback when this one stops).

It runs the model's own forward, with its real Python control flow (`if x.shape[-1] > 10`, loops
over `x.size(0)`, `x[i] = v`, non-tensor outputs, third-party code), on meta tensors: a meta clone
of the model (the Interpreter's throw-away clones: meta twins of every parameter and buffer, no
hooks), under the same `_Recorder` TorchFunctionMode as the fx path, so the same bindings and
formulas apply. The user's model is only read. It is faster than tracing with torch.fx (which
builds a node, with its metadata, per Python-level op before anything is recorded) and follows
control flow that fx cannot.

Module attribution: each module of the clone (costmodel's own object, so wrapping it touches
nothing of the user's) gets a forward that says which module is running. torch.nn layers are
leaves, as in the fx capture: every torch call under one is recorded into one `call_module` node;
every other torch call is a `call_function` / `call_method` node of the innermost running module.
Data edges follow tensor identity: each tensor remembers the node that made (or last wrote) it.
The networkx graph carries the same node attributes as `graph.build`.

Sizes that depend on tensor values (nonzero, a boolean mask, nms, unique) cannot be known from
shapes. The capture takes their static upper bound, every candidate kept, records that assumption
on the node, and marks the node and everything downstream `data_dependent`. Branching on a value
(`if x.sum() > 0`, `.item()`) cannot be followed statically: it stops the capture with an error
that names the user's line. Tensors built from Python numbers (`torch.tensor([h, w])`) are real,
tiny CPU tensors, so code may read them back (`.item()`, `.tolist()`).
"""
from __future__ import annotations

import contextlib
import re
import sys
from collections import Counter
from typing import Any

import networkx as nx
import torch
from torch import Tensor, nn

from .fx import _user_frame, is_leaf
from ..errors import EagerError
from ..ops import META, lookup
from ..core.report import Diagnostic
from .recorder import Interpreter, Recorded, _new_tensors, _Recorder, _tensors, callable_name
from ..core.tensors import format_shape
from ..core.vocab import Code, OpFlag, Severity

NAME = "eager (meta tensors)"

#: Factories that read Python data; without a device they make real CPU tensors here.
_PY_DATA = {torch.tensor, torch.as_tensor, torch.scalar_tensor}


#: Library functions whose loop runs over tensor values, each with an equivalent of static shape
#: from the same library, used during the capture: (module, function, equivalent, why).
EQUIVALENTS = (
    ("torchvision.ops.boxes", "_batched_nms_vanilla", "_batched_nms_coordinate_trick",
     "torchvision's batched_nms loops over torch.unique(labels) when boxes are many; it was "
     "counted as its coordinate-trick form (one nms over all boxes), which torchvision uses for "
     "fewer boxes and which gives the same result"),
)


_CLEAN: dict[str, str] = {}   # module or function name -> node-name base ("features.3" -> "features_3")


def _data_dependent(func: Any, args: tuple, kwargs: dict) -> str | None:
    """Why the output size of this call depends on tensor values, or None (`ops` says which
    callables may: nonzero, unique, a boolean mask, nms, torch.where(condition))."""
    binding = lookup(func)
    return None if binding.sizes is None else binding.sizes(binding, args, kwargs)


def _to_meta(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value if value.device == META else value.to(META)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_meta(v) for k, v in value.items()}
    return value


class _EagerRecorder(_Recorder):
    """The fx path's recorder, plus: one graph node per torch call made outside a leaf layer."""

    def __init__(self, capture: EagerCapture) -> None:
        super().__init__(capture.interp)
        self.capture = capture

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        cap = self.capture
        why = _data_dependent(func, args, kwargs)
        if cap.leaf is not None:
            out = self._call(func, types, args, kwargs)
            if why:
                cap.leaf_why.append(why)
            return out
        self.calls = []
        out = self._call(func, types, args, kwargs)
        if self.calls:
            cap.add_call(func, args, kwargs, out, self.calls, why)
        return out

    def _call(self, func, types, args, kwargs):
        first = args[0] if args else None
        if not (isinstance(first, Tensor) and first.is_meta):   # else the common case: an op
            tensors = _tensors((args, kwargs))                  # on a meta activation
            from_numbers = not tensors and func in _PY_DATA and "device" not in kwargs
            on_cpu_only = bool(tensors) and all(t.device != META for t in tensors) and \
                kwargs.get("device") in (None, "cpu")
            if from_numbers or on_cpu_only:
                return self._real(func, args, kwargs)
        try:
            return _Recorder.__torch_function__(self, func, types, args, kwargs)
        except RuntimeError as exc:   # a CPU constant met a meta activation: move it to meta
            if "device" not in str(exc) or all(t.device == META for t in _tensors((args, kwargs))):
                raise
            return _Recorder.__torch_function__(self, func, types, _to_meta(args), _to_meta(kwargs))

    def _real(self, func, args, kwargs):
        """A few Python numbers made into a tensor, and arithmetic on such tensors only: run it
        for real on the CPU (tiny), so that code can read the values back (.item(), .tolist())."""
        out = func(*args, **kwargs)
        binding = lookup(func)
        rule = binding.rule
        if rule is None:
            if _new_tensors(out, args, kwargs):
                self.calls.append(self.interp.record(binding, dict(enumerate(args), **kwargs), out))
            return out
        bound = rule.bind(args, kwargs)
        recorded = out if rule.result is None else rule.result(bound, out)
        if isinstance(recorded, Tensor) or _tensors(recorded):
            self.calls.append(self.interp.record(binding, bound, recorded))
        return out


class EagerCapture:
    """Runs a meta clone of `model` and builds the networkx graph of what it did."""

    def __init__(self, model: nn.Module, interp: Interpreter) -> None:
        self.model = model
        self.interp = interp
        self.g = nx.DiGraph()
        self.producer: dict[int, tuple[str, int]] = {}   # id(tensor) -> (node that made or last
                                                          # wrote it, index among its outputs)
        self.alive: list[Any] = []             # keeps tensors alive so that ids stay unique
        self.stack: list[str] = [""]           # qualified names of the running user modules
        self.leaf: str | None = None           # the torch.nn layer running now, if any
        self.leaf_why: list[str] = []
        self.failed: str | None = None         # the layer the capture stopped in, with its inputs
        self.sources: dict[str, str] = {}      # node -> why its sizes depend on data
        self.replaced: dict[str, str] = {}     # why a library function was swapped -> module
        self._names: Counter[str] = Counter()
        self._is_leaf = is_leaf
        self.recorder = _EagerRecorder(self)

    # ---- nodes ------------------------------------------------------------------------------
    def _name(self, base: str) -> str:
        clean = _CLEAN.get(base)
        if clean is None:
            clean = _CLEAN[base] = re.sub(r"\W+", "_", base).strip("_") or "node"
        base = clean
        n = self._names[base]
        self._names[base] += 1
        return base if n == 0 else f"{base}_{n}"

    def _add(self, name: str, kind: str, target: str, module: str, read: Any, outputs: tuple,
             calls: tuple, unrecorded: bool = False) -> None:
        inputs, sources, preds, seen = [], [], [], set()
        weights = self.interp.weights
        spec = self.interp.spec
        producer = self.producer
        for t in _tensors(read):
            key = id(t)
            if key in seen or key in weights:
                continue
            seen.add(key)
            inputs.append(spec(t))
            source = producer.get(key)
            sources.append(source)
            if source is not None and source[0] not in preds:
                preds.append(source[0])
        # `sources`: exactly which output of which node each input is (graph.build's nodes read
        # whole predecessors, so the training tracker matches their values by spec instead)
        self.g.add_node(name, order=len(self.g), kind=kind, target=target, module=module,
                        inputs=tuple(inputs), outputs=outputs, calls=calls, unrecorded=unrecorded,
                        sources=tuple(sources))
        for source in preds:
            self.g.add_edge(source, name)

    def _made(self, name: str, tensors: list[Tensor]) -> None:
        for index, t in enumerate(tensors):
            self.producer[id(t)] = (name, index)
        self.alive.append(tensors)

    def add_call(self, func: Any, args: tuple, kwargs: dict, out: Any, calls: list[Recorded],
                 why: str | None) -> None:
        target = callable_name(func)
        kind = "call_method" if target.startswith("Tensor.") else "call_function"
        name = self._name(getattr(func, "__name__", target.rsplit(".", 1)[-1]))
        outputs = tuple(s for rec in calls for s in rec.call.outputs)
        self._add(name, kind, target, self.stack[-1], (args, kwargs), outputs, tuple(calls))
        made = _tensors(out)
        if func is Tensor.__setitem__ and args and isinstance(args[0], Tensor):
            made.append(args[0])           # x[i] = v writes x: later readers depend on this node
        self._made(name, made)
        if why:
            self.sources[name] = why

    # ---- modules ----------------------------------------------------------------------------
    def _wrap(self, module: nn.Module, qualname: str) -> None:
        forward = module.forward
        if self._is_leaf(module, qualname):
            def run(*args: Any, **kwargs: Any) -> Any:
                if self.leaf is not None:
                    return forward(*args, **kwargs)
                return self._run_leaf(module, qualname, forward, args, kwargs)
        else:
            def run(*args: Any, **kwargs: Any) -> Any:
                if self.leaf is not None:
                    return forward(*args, **kwargs)
                self.stack.append(qualname)
                try:
                    return forward(*args, **kwargs)
                finally:
                    self.stack.pop()
        module.__dict__["forward"] = run
        for name, child in module._modules.items():
            if child is not None:
                self._wrap(child, f"{qualname}.{name}" if qualname else name)

    def _run_leaf(self, module: nn.Module, qualname: str, forward: Any, args: tuple,
                  kwargs: dict) -> Any:
        recorder = self.recorder
        self.leaf, self.leaf_why, recorder.calls = qualname, [], []
        try:
            out = forward(*args, **kwargs)
        except Exception:
            if self.failed is None:   # the innermost layer that failed, and what it was given
                shapes = ", ".join(format_shape(tuple(t.shape)) or "scalar"
                                   for t in _tensors((args, kwargs))) or "no tensors"
                self.failed = f"layer '{qualname}' ({type(module).__name__}) with input shapes [{shapes}]"
            raise
        finally:
            self.leaf = None
        calls, recorder.calls = tuple(recorder.calls), []
        name = self._name(qualname or type(module).__name__)
        outs = _tensors(out)
        unrecorded = not calls and bool(outs) and _new_tensors(out, args, kwargs)
        self._add(name, "call_module", type(module).__name__, qualname, (args, kwargs),
                  tuple(self.interp.spec(t) for t in outs), calls, unrecorded)
        self._made(name, outs)
        if self.leaf_why:
            self.sources[name] = self.leaf_why[0]
        return out

    # ---- the run ----------------------------------------------------------------------------
    def run(self, inputs: dict[str, Any]) -> nx.DiGraph:
        root = self.interp.clone("")
        self._wrap(root, "")
        for name, value in inputs.items():
            tensors = _tensors(value)
            if tensors:
                self._add(name, "placeholder", name, "", (),
                          tuple(self.interp.spec(t) for t in tensors), ())
                self._names[name] += 1
                self._made(name, tensors)
        patch = _nonzero_assumed()
        try:
            with patch, self._equivalents(), self.recorder:
                out = root(**inputs)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear message
            raise EagerError(_explain(exc, self.failed or (
                f"module '{self.stack[-1]}'" if self.stack[-1] else ""))) from exc
        self._add(self._name("output"), "output", "output", "", out, (), ())
        self._mark_data_dependent()
        return self.g

    @contextlib.contextmanager
    def _equivalents(self):
        """Swap in the static-shape equivalents of loaded libraries; put the originals back."""
        saved = []
        try:
            for module_name, name, equivalent, why in EQUIVALENTS:
                module = sys.modules.get(module_name)
                if module is not None and hasattr(module, equivalent):
                    original = getattr(module, name)
                    saved.append((module, name, original))

                    def swapped(*args, _fn=getattr(module, equivalent), _why=why, **kwargs):
                        self.replaced.setdefault(_why, self.stack[-1])
                        return _fn(*args, **kwargs)

                    setattr(module, name, swapped)
            yield
        finally:
            for module, name, original in saved:
                setattr(module, name, original)

    def _mark_data_dependent(self) -> None:
        affected = set(self.sources)
        for source in self.sources:
            affected |= nx.descendants(self.g, source)
        for name, data in self.g.nodes(data=True):
            data["data_dependent"] = name in affected
            data["assumption"] = self.sources.get(name, "")


@contextlib.contextmanager
def _nonzero_assumed():
    """torch.fx.experimental._config.patch(meta_nonzero_assume_all_nonzero=True), without the
    class that `patch` builds on every call: meta nonzero() keeps every element (the upper bound)."""
    config = torch.fx.experimental._config
    saved = config.meta_nonzero_assume_all_nonzero
    config.meta_nonzero_assume_all_nonzero = True
    try:
        yield
    finally:
        config.meta_nonzero_assume_all_nonzero = saved


def _explain(exc: BaseException, where: str) -> str:
    line = _user_frame(exc)
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if "meta tensor" in text and ("item()" in text or "no data" in text):
        first = ("the forward reads a tensor's value (an `if` on a tensor, .item(), .tolist()), "
                 "which no static analysis can follow")
    where = f" in {where}" if where else ""
    at = f" at {line}" if line else ""
    return f"the eager capture stopped{where}{at}: {type(exc).__name__}: {first}"


def capture(model: nn.Module, interp: Interpreter,
            inputs: dict[str, Any]) -> tuple[nx.DiGraph, dict[str, str]]:
    """The graph of `model`'s real forward on meta `inputs` (see the module docstring), and the
    library functions swapped for their static equivalents (why -> module that called one)."""
    run = EagerCapture(model, interp)
    return run.run(inputs), run.replaced


def _caps(data: dict) -> bool:
    """A slice, narrow or top-k called outside a layer: it may cap a data-dependent size."""
    return data["kind"] != "call_module" and any(
        OpFlag.CAPS_SIZES in rec.call.flags for rec in data["calls"])


def diagnostics(g: nx.DiGraph, replaced: dict[str, str]) -> list[Diagnostic]:
    """CM009s: each kind of data-dependent op per module (with its assumed upper bound), the
    model's own limits that cap the sizes downstream (a slice or top-k of a data-dependent size:
    RPN keeping its post-NMS top N), how many nodes depend on data, and library functions that
    were swapped for a static-shape equivalent."""
    sources: dict[tuple[str, str], list[tuple[str, tuple]]] = {}
    caps: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for name, data in g.nodes(data=True):
        if data.get("assumption"):
            sources.setdefault((data["module"], data["assumption"]), []).append(
                (name, data["outputs"][0].shape if data["outputs"] else ()))
        elif data.get("data_dependent") and _caps(data) and data["inputs"] and \
                data["outputs"] and data["inputs"][0].ndim and data["outputs"][0].ndim:
            before, after = data["inputs"][0].shape[0], data["outputs"][0].shape[0]
            if after < before:
                caps.setdefault((data["module"], after), []).append((name, before))
    found = []
    for (module, why), nodes in sources.items():
        first, shape = nodes[0]
        more = f" and {len(nodes) - 1} more like it" if len(nodes) > 1 else ""
        found.append(Diagnostic(
            Code.DATA_DEPENDENT, Severity.WARNING,
            f"{why} (node '{first}'{more}, module '{module or '(top level)'}'); assumed its "
            f"static upper bound, every element kept ({format_shape(shape) or 'a scalar'})",
            node=first, module=module, op=g.nodes[first]["target"]))
    for (module, after), nodes in caps.items():
        most = max(before for _, before in nodes)
        found.append(Diagnostic(
            Code.DATA_DEPENDENT, Severity.INFO,
            f"the model's own limit keeps {after} of the data-dependent candidates (up to "
            f"{most:,}) in module '{module or '(top level)'}' (node '{nodes[0][0]}'"
            f"{f' and {len(nodes) - 1} more' if len(nodes) > 1 else ''}): the sizes after it "
            f"assume that at least {after} survive", node=nodes[0][0], module=module))
    affected = [n for n, flag in g.nodes(data="data_dependent") if flag]
    if affected:
        found.append(Diagnostic(
            Code.DATA_DEPENDENT, Severity.WARNING,
            f"{len(affected)} graph nodes have sizes that depend on data (flag `data_dependent` "
            f"in report.graph); their cost is an upper bound, as if every candidate were kept "
            f"until the model's own limits cap it"))
    found += [Diagnostic(Code.DATA_DEPENDENT, Severity.INFO, why, module=module)
              for why, module in replaced.items()]
    return found
