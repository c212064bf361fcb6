"""Eager capture: costmodel's default capture (torch.fx's symbolic trace, in capture.py, is the
alternative and the fallback when this one stops).

It runs the model's own forward, with its real Python control flow (`if x.shape[-1] > 10`, loops
over `x.size(0)`, `x[i] = v`, non-tensor outputs, third-party code), on meta tensors: a meta clone
of the model (meta.py's throw-away clones: meta twins of every parameter and buffer, running
the model's forward hooks), under the same `_Recorder` TorchFunctionMode as the fx path, so the
same bindings and formulas apply. The user's model is only read. It is faster than tracing with
torch.fx (which builds a node, with its metadata, per Python-level op before anything is
recorded) and follows control flow that fx cannot.

Module attribution: each module of the clone (costmodel's own object, so wrapping it touches
nothing of the user's) gets a forward that says which module is running. torch.nn layers are
leaves, as in the fx capture: every torch call under one is recorded into one `call_module` node;
every other torch call is a `call_function` / `call_method` node of the innermost running module.
Data edges follow tensor identity: each tensor remembers the node that made (or last wrote) it.
capture/builder.py makes the nodes, edges and input sources, as for the fx capture.

Sizes that depend on tensor values (nonzero, a boolean mask, nms, unique) cannot be known from
shapes. The capture takes their static upper bound, every candidate kept, records that assumption
on the node, and marks the node and everything downstream `data_dependent`. Branching on a value
(`if x.sum() > 0`, `.item()`) cannot be followed statically: it stops the capture with an error
that names the user's line. Tensors built from Python numbers (`torch.tensor([h, w])`) are real,
tiny CPU tensors, so code may read them back (`.item()`, `.tolist()`).

Known values (constants and what is computed from them) and the trace flags: known.py.
"""
from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor, nn

from ..core.graph import CostGraph, Node
from ..core.report import Diagnostic
from ..core.tensors import format_shape
from ..core.vocab import Code, NodeKind, OpFlag, Severity
from ..errors import AnalysisError, EagerError, first_line
from ..ops import META, lookup
from ..ops.shape_rules import InputDtypeError
from . import leaves, routing
from .builder import GraphBuilder, call_node
from .equivalents import swapped
from .fx import _user_frame, is_leaf
from .known import (
    ASSUMED_READS,
    CONST_FACTORIES,
    CONST_LIKE,
    MOVES,
    READS,
    Holds,
    KnownValues,
    as_a_trace,
    as_numbers,
    in_assert,
    nonzero_assumed,
    stay_on_meta,
    to_meta,
)
from .recorder import Recorded, Recording, _new_tensors, _Recorder, _tensors
from .routing import ROUTING_CALLS, assumed_routing

#: Factories that read Python data; without a device they make real CPU tensors here.
_PY_DATA = {torch.tensor, torch.as_tensor, torch.scalar_tensor}
#: Calls that only read a tensor's metadata (x.dim(), x.shape, torch._assert(cond)): about one
#: torch call in five in a model's forward. The recorder would run them as they are and record
#: nothing (no binding, no flag), so they are answered at once; one that raises takes the full path
#: (a 0-d tensor of known value given as a number is read there).
_METADATA = {f for f in (
    Tensor.dim, Tensor.ndimension, Tensor.size, Tensor.stride, Tensor.numel, Tensor.nelement,
    Tensor.is_contiguous, Tensor.is_floating_point, Tensor.is_complex, Tensor.element_size,
    Tensor.__len__, Tensor.get_device, torch._assert, Tensor.shape.__get__, Tensor.ndim.__get__,
    Tensor.dtype.__get__, Tensor.device.__get__, Tensor.is_meta.__get__,
    Tensor.requires_grad.__get__) if not (lookup(f).rule or lookup(f).flags)}


class _EagerRecorder(KnownValues, _Recorder):
    """The fx path's recorder, plus: one graph node per torch call made outside a leaf layer."""

    def __init__(self, capture: EagerCapture) -> None:
        super().__init__(capture.recording)
        self.capture = capture
        self.values = capture.recording.values   # id(meta) -> (meta, its real value)
        self.assumed: set[int] = set()   # ids in `values` whose value is an assumed routing
        self.exact = False    # the last call was data-dependent, on known data: its size is exact

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _METADATA:
            try:
                return func(*args, **(kwargs or {}))
            except Exception:  # noqa: BLE001, S110 - the full path below decides
                pass
        kwargs = kwargs or {}
        cap = self.capture
        binding = lookup(func)   # why its output size depends on tensor values, or None (`ops`
        # says which callables may: nonzero, unique, a boolean mask, nms, torch.where(condition))
        why = None if binding.sizes is None else binding.sizes(binding, args, kwargs)
        self.exact = False
        if cap.leaf is not None:
            out = self._call(func, types, args, kwargs)
            if cap.moe and func in ROUTING_CALLS:
                self._route(func, args, kwargs, out)
            if why and not self.exact:
                cap.leaf_why.append(why)
            return out
        self.calls = []
        out = self._call(func, types, args, kwargs)
        if cap.moe and func in ROUTING_CALLS:
            self._route(func, args, kwargs, out)
        if self.exact:
            why = None   # its data was known: the size is exact
        if self.calls:
            cap.add_call(func, args, kwargs, out, self.calls, why)
        return out

    def _route(self, func, args, kwargs, out) -> None:
        """A routing call inside an MoE block: its index output gets the assumed routing
        (routing.py) as its known value."""
        cap = self.capture
        block = cap.moe_block()
        found = None if block is None else assumed_routing(
            func, args, kwargs, out, cap.route_calls, cap.moe_experts.get(block))
        if found is not None and id(found[0]) not in self.values:
            idx, value, tokens, n, k = found
            self.values[id(idx)] = (idx, value)
            self.assumed.add(id(idx))
            self.capture.routes.setdefault(block, (tokens, n, k))
            self.capture.route_calls += 1

    def _assumed_read(self) -> None:
        block = self.capture.moe_block()
        self.capture.routed.add(block if block is not None else self.capture.stack[-1])

    def _call(self, func, types, args, kwargs):
        first = args[0] if args else None
        if isinstance(first, Tensor) and first.is_meta:
            if func in MOVES:   # x.to("cpu"), x.cuda(): a device move stays on meta
                func, args, kwargs = stay_on_meta(func, args, kwargs)
            if id(first) not in self.values and func not in CONST_LIKE:
                if func in READS:
                    return self._read(func, types, args, kwargs)
                return self._meta(func, types, args, kwargs)   # the common case: an activation
        else:
            tensors = _tensors((args, kwargs))
            from_numbers = not tensors and func in _PY_DATA and "device" not in kwargs
            on_cpu_only = bool(tensors) and all(t.device != META for t in tensors) and \
                kwargs.get("device") in (None, "cpu")
            if from_numbers or on_cpu_only:
                return self._real(func, args, kwargs)
            if not tensors and func not in CONST_FACTORIES:
                return self._meta(func, types, args, kwargs)
        return self._known(func, types, args, kwargs)

    def _read(self, func, types, args, kwargs):
        """A read of an activation's value: inside an `assert` statement it is assumed to hold
        (known.Holds; reported), anywhere else it stops the capture (torch's meta error)."""
        where = in_assert() if func in ASSUMED_READS else None
        if where is None:
            return self._meta(func, types, args, kwargs)
        self.capture.asserted.setdefault(where, self.capture.stack[-1])
        return True if func is Tensor.__bool__ else Holds()

    def _meta(self, func, types, args, kwargs):
        try:
            return _Recorder.__torch_function__(self, func, types, args, kwargs)
        except RuntimeError as exc:   # a CPU constant met a meta activation: move it to meta
            if "device" in str(exc) and any(t.device != META for t in _tensors((args, kwargs))):
                return _Recorder.__torch_function__(self, func, types, to_meta(args),
                                                    to_meta(kwargs))
            if not self._numbers(args, kwargs):
                raise
        except Exception:  # noqa: BLE001 - a size given as a one-number tensor, read by torch
            if not self._numbers(args, kwargs):
                raise
        # a 0-d tensor of known value used as a number (F.pad(x, (t, 0)), x.repeat(b, t)):
        # the call gets that number
        values = self.values
        return _Recorder.__torch_function__(self, func, types, as_numbers(values, args),
                                            as_numbers(values, kwargs))

    def _real(self, func, args, kwargs):
        """A few Python numbers made into a tensor, and arithmetic on such tensors only: run it
        for real on the CPU (tiny), so that code can read the values back (.item(), .tolist())."""
        out = func(*args, **kwargs)
        self.exact = True   # it ran on real data: a data-dependent size (unique, nonzero) is exact
        binding = lookup(func)
        rule = binding.rule
        if rule is None:
            if _new_tensors(out, args, kwargs):
                self.calls.append(
                    self.recording.record(binding, dict(enumerate(args), **kwargs), out))
            return out
        bound = rule.bind(args, kwargs)
        recorded = out if rule.result is None else rule.result(bound, out)
        if isinstance(recorded, Tensor) or _tensors(recorded):
            self.calls.append(self.recording.record(binding, bound, recorded))
        return out


class EagerCapture:
    """Runs a meta clone of `model` and hands what it did to the graph builder."""

    def __init__(self, model: nn.Module, recording: Recording) -> None:
        self.model = model
        self.recording = recording
        self.builder = GraphBuilder(recording)
        self.stack: list[str] = [""]           # qualified names of the running user modules
        self.leaf: str | None = None           # the torch.nn layer running now, if any
        self.leaf_why: list[str] = []
        self.failed: str | None = None         # the layer the capture stopped in, with its inputs
        self.sources: dict[str, str] = {}      # node -> why its sizes depend on data
        #: why a library function was swapped (equivalents.py) -> (module, severity)
        self.replaced: dict[str, tuple[str, Severity]] = {}
        self.moe: frozenset[str] = frozenset()  # MoE blocks (modules with `experts`): routing.py
        self.moe_experts: dict[str, int] = {}   # MoE block -> its expert count, where known
        self.routes: dict[str, tuple[int, int, int]] = {}   # block -> (tokens, experts, k)
        self.route_calls = 0
        self.routed: set[str] = set()          # blocks whose loop read an assumed routing
        self.asserted: dict[str, str] = {}     # 'file:line' of an assertion assumed -> module
        self._is_leaf = is_leaf
        self._direct = leaves.active()   # the torch.nn layers run without their forward
        self.recorder = _EagerRecorder(self)

    # ---- nodes ------------------------------------------------------------------------------
    def add_call(self, func: Any, args: tuple, kwargs: dict, out: Any, calls: list[Recorded],
                 why: str | None) -> None:
        target, kind, base = call_node(func)
        builder = self.builder
        name = builder.name(base)
        outputs = tuple(s for rec in calls for s in rec.call.outputs)
        builder.add(name, kind, target, self.stack[-1], (args, kwargs) if kwargs else args,
                    outputs, tuple(calls))
        made = _tensors(out)
        if func is Tensor.__setitem__ and args and isinstance(args[0], Tensor):
            made.append(args[0])           # x[i] = v writes x: later readers depend on this node
        builder.made(name, made)
        if why:
            self.sources[name] = why

    # ---- modules ----------------------------------------------------------------------------
    def _wrap(self, module: nn.Module, qualname: str) -> None:
        """Give the clone `module` a forward that says which module runs (meta.py calls this
        for each clone it makes)."""
        forward = module.forward
        direct = self._direct.get(type(module))   # leaves.py: no forward of its own, no kwargs
        if direct is not None and "forward" not in module.__dict__ and \
                self._is_leaf(module, qualname):
            func, call = direct

            def run(*args: Any, **kwargs: Any) -> Any:
                if self.leaf is not None:
                    return forward(*args, **kwargs)
                if not kwargs and len(args) == 1 and type(args[0]) is Tensor:
                    out = leaves.run(self, module, qualname, func, call, args[0])
                    if out is not leaves.FULL:
                        return out
                return self._run_leaf(module, qualname, forward, args, kwargs)
        elif self._is_leaf(module, qualname):
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
                self.failed = (f"layer '{qualname}' ({type(module).__name__}) "
                               f"with input shapes [{shapes}]")
            raise
        finally:
            self.leaf = None
        calls, recorder.calls = tuple(recorder.calls), []
        return self._leaf_node(module, qualname, args, kwargs, out, calls, self.leaf_why)

    def _leaf_node(self, module: nn.Module, qualname: str, args: tuple, kwargs: dict, out: Any,
                   calls: tuple[Recorded, ...], why: list[str]) -> Any:
        """The node of layer `module`, which read `args`, `kwargs`, returned `out` and made
        `calls`; returns `out`."""
        builder = self.builder
        name = builder.name(qualname or type(module).__name__)
        outs = _tensors(out)
        unrecorded = not calls and bool(outs) and _new_tensors(out, args, kwargs)
        builder.add(name, NodeKind.CALL_MODULE, type(module).__name__, qualname,
                    (args, kwargs) if kwargs else args,   # the same tensors, one level less
                    tuple([self.recording.spec(t) for t in outs]), calls, unrecorded)
        builder.made(name, outs)
        if why:
            self.sources[name] = why[0]
        return out

    def moe_block(self) -> str | None:
        """The innermost running MoE block, or None."""
        for qualname in reversed(self.stack):
            if qualname in self.moe:
                return qualname
        return None

    # ---- the run ----------------------------------------------------------------------------
    def run(self, inputs: dict[str, Any], by_position: tuple[str, ...] = (),
            as_trace: bool = True) -> CostGraph:
        with swapped(self.replaced, self.stack):   # before the wrap: it may swap a forward
            meta = self.recording.meta
            meta.visit = self._wrap   # each clone's forward is wrapped as it is made
            try:
                root = meta.clone("")
            finally:
                meta.visit = None
            self.moe = frozenset(meta.moe)   # routing.moe_blocks(root)
            self.moe_experts = dict(meta.moe_experts)
            builder = self.builder
            for name, value in inputs.items():
                tensors = _tensors(value)
                if tensors:
                    builder.add(name, NodeKind.PLACEHOLDER, name, "", (),
                                tuple(self.recording.spec(t) for t in tensors))
                    builder.reserve(name)
                    builder.made(name, tensors)
            return self._forward(root, inputs, by_position, as_trace)

    def _forward(self, root: nn.Module, inputs: dict[str, Any], by_position: tuple[str, ...],
                 as_trace: bool) -> CostGraph:
        builder = self.builder
        patch = nonzero_assumed()
        try:
            with patch, as_a_trace(self.recording.values, as_trace), self.recorder:
                out = root(*(inputs[n] for n in by_position),
                           **{k: v for k, v in inputs.items() if k not in by_position})
        except RecursionError:   # too deep for any capture: analyze() says so in one line
            raise
        except InputDtypeError as exc:   # the input is wrong: torch.fx would only hide it
            raise AnalysisError(_explain(exc, self.failed or "")) from exc
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear message
            raise EagerError(_explain(exc, self.failed or (
                f"module '{self.stack[-1]}'" if self.stack[-1] else ""))) from exc
        builder.add(builder.name("output"), NodeKind.OUTPUT, "output", "", out, ())
        builder.mark_data_dependent(self.sources)
        return builder.graph()


def _explain(exc: BaseException, where: str) -> str:
    line = _user_frame(exc)
    text = str(exc).strip()
    first = first_line(exc)
    if "meta tensor" in text and ("item()" in text or "no data" in text):
        first = ("the forward reads a tensor's value (an `if` on a tensor, .item(), .tolist()), "
                 "which no static analysis can follow")
    elif "quantized::" in text and ("fake impl" in text or "Meta" in text):
        op = re.search(r"quantized::\w+", text)
        first = (f"{op.group(0) if op else 'a quantized op'} has no meta kernel, and this "
                 f"quantized module or call has no meta equivalent in costmodel (quantized conv, "
                 f"linear, add, cat, mul, activations, Quantize and DeQuantize do); analyse the "
                 f"float model (the same MAdds)")
    elif isinstance(exc, KeyError) and "device='meta'" in text:
        first = (f"a key made from a tensor's value ({first}): the forward formats a tensor into "
                 f"a string (f'expert_{{idx}}'), which needs its value; no static analysis can "
                 f"follow it")
    where = f" in {where}" if where else ""
    at = f" at {line}" if line else ""
    return f"the eager capture stopped{where}{at}: {type(exc).__name__}: {first}"


def capture(model: nn.Module, recording: Recording, inputs: dict[str, Any],
            by_position: tuple[str, ...] = (), as_trace: bool = True
            ) -> tuple[CostGraph, EagerCapture]:
    """The graph of `model`'s real forward on meta `inputs` (see the module docstring), and the
    capture that made it (for `diagnostics`: the library functions swapped for their static
    equivalents, the MoE blocks analysed under an assumed routing).
    as_trace: run it as a trace (`torch.compiler.is_compiling()` true; see `as_a_trace`)."""
    run = EagerCapture(model, recording)
    return run.run(inputs, by_position, as_trace), run


def _caps(node: Node) -> bool:
    """A slice, narrow or top-k called outside a layer: it may cap a data-dependent size."""
    return node.kind is not NodeKind.CALL_MODULE and any(
        OpFlag.CAPS_SIZES in rec.call.flags for rec in node.calls)


def diagnostics(g: CostGraph, run: EagerCapture) -> list[Diagnostic]:
    """CM009s: each kind of data-dependent op per module (with its assumed upper bound), the
    model's own limits that cap the sizes downstream (a slice or top-k of a data-dependent size:
    RPN keeping its post-NMS top N), how many nodes depend on data, and library functions that
    were swapped for a static-shape equivalent, and the MoE blocks whose experts loop read an
    assumed routing (routing.py)."""
    sources: dict[tuple[str, str], list[tuple[str, tuple]]] = {}
    caps: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for node in g:
        if node.assumption:
            sources.setdefault((node.module, node.assumption), []).append(
                (node.name, node.outputs[0].shape if node.outputs else ()))
        elif node.data_dependent and _caps(node) and node.inputs and \
                node.outputs and node.inputs[0].ndim and node.outputs[0].ndim:
            before, after = node.inputs[0].shape[0], node.outputs[0].shape[0]
            if after < before:
                caps.setdefault((node.module, after), []).append((node.name, before))
    found = []
    for (module, why), nodes in sources.items():
        first, shape = nodes[0]
        more = f" and {len(nodes) - 1} more like it" if len(nodes) > 1 else ""
        found.append(Diagnostic(
            Code.DATA_DEPENDENT, Severity.WARNING,
            f"{why} (node '{first}'{more}, module '{module or '(top level)'}'); assumed its "
            f"static upper bound, every element kept ({format_shape(shape) or 'a scalar'})",
            node=first, module=module, op=g.nodes[first].target))
    for (module, after), nodes in caps.items():
        most = max(before for _, before in nodes)
        found.append(Diagnostic(
            Code.DATA_DEPENDENT, Severity.INFO,
            f"the model's own limit keeps {after} of the data-dependent candidates (up to "
            f"{most:,}) in module '{module or '(top level)'}' (node '{nodes[0][0]}'"
            f"{f' and {len(nodes) - 1} more' if len(nodes) > 1 else ''}): the sizes after it "
            f"assume that at least {after} survive", node=nodes[0][0], module=module))
    affected = [node.name for node in g if node.data_dependent]
    if affected:
        found.append(Diagnostic(
            Code.DATA_DEPENDENT, Severity.WARNING,
            f"{len(affected)} graph nodes have sizes that depend on data (flag `data_dependent` "
            f"in report.graph); their cost is an upper bound, as if every candidate were kept "
            f"until the model's own limits cap it"))
    found += [Diagnostic(Code.DATA_DEPENDENT, severity, why, module=module)
              for why, (module, severity) in run.replaced.items()]
    found += routing.diagnostics(run.routes, run.routed)
    found += [Diagnostic(Code.DATA_DEPENDENT, Severity.INFO, f"the assertion at {where} reads a "
                         f"tensor's value; an assertion is a check, not control flow: assumed to "
                         f"hold (it changes no cost)", module=module)
              for where, module in run.asserted.items()]
    return found
