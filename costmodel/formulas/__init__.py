'''Formulas: pure cost functions of an `OpCall` (no torch), forward and backward.

One op has one name, and that name is the key of three registries: the binding of its torch
callables (`costmodel/ops/`), its forward formula (`FORMULAS`) and its backward rule (`BACKWARD`,
or a `NO_BACKWARD` entry that says why there is none). Each registry refuses a second registration
of a name, and `tests/test_registry.py` fails when a bound op has no formula, a formula is never
bound, or a formula has neither a backward rule nor a `NO_BACKWARD` entry.

Adding an op (here `sinc`, an element-wise op) touches one file of the op's family in each of
`ops/`, `formulas/forward/` and `formulas/backward/` (the same file name in all three), plus one
test row:

1. The binding, in `costmodel/ops/<family>.py`: the op name, the torch callables, the names of
   their arguments (formulas read arguments by these names, never by position), and optionally a
   fast shape rule (`ops/shape_rules.py`, cross-checked in `tests/test_shape_rules.py`) and flags:
   `inplace=True`, `flags=(OpFlag.SUM_BACK,)` for how a copy's gradient flows, `sizes=` for an
   output size that depends on data. In-place (`sinc_`) and reflected variants are found by name.
2. The forward formula, in `costmodel/formulas/forward/<family>.py`: a pure function of the
   `OpCall` that returns a `Cost` (MAdds, FLOPs, params, MAC), with its math in the docstring.
3. The backward rule, in `costmodel/formulas/backward/<family>.py`: a function of a `GradCall`
   returning a `Backward` (the cost of the gradients in `grad.needs`, and what autograd keeps), or
   `no_backward("sinc", "why not")`.
4. A row in `tests/test_formulas.py`'s table, with the expected numbers written as arithmetic.

The same steps, run in scratch registries that are dropped at the end of the block:

>>> import torch
>>> import costmodel
>>> from costmodel.core.vocab import Category
>>> from costmodel.formulas import registry as formulas
>>> from costmodel.ops import registry as ops
>>> from costmodel.ops.shape_rules import _same
>>> class Sinc(torch.nn.Module):
...     def forward(self, x):
...         return torch.sinc(x)
>>> str(costmodel.analyze(Sinc(), "2x8").totals.status)     # no binding yet: unsupported
'partial'
>>> with ops.scratch(), formulas.scratch():
...     # 1. costmodel/ops/pointwise.py
...     ops.bind("sinc", "torch.sinc Tensor.sinc", ("input",), shape=_same)
...
...     # 2. costmodel/formulas/forward/pointwise.py
...     @formulas.formula("sinc", category=Category.ELEMENTWISE)
...     def sinc(call):
...         """sin(pi x) / (pi x): FLOPs = 3 per output element; MAC = input + output."""
...         return formulas.simple_cost(call, flops=3 * call.out.numel)
...
...     # 3. costmodel/formulas/backward/pointwise.py
...     @formulas.backward("sinc")
...     def sinc_backward(grad):
...         """(cos(pi x) - sinc(x)) / x times gy: 4 FLOPs per element; reads gy and x."""
...         gy, x = formulas.grad_out(grad.call), grad.call.t("input")
...         kernels = formulas.Kernels().add(flops=4 * gy.numel, reads=(gy, x), writes=(x,))
...         return kernels.done("input")
...
...     report = costmodel.analyze(Sinc(), "2x8")
>>> str(report.totals.status), report.totals.flops, report.totals.mac
('complete', 48, 32)
>>> "sinc" in FORMULAS                                       # the scratch registries are gone
False
'''
from . import backward, forward  # noqa: F401  (fill the registries)
from .registry import (
    BACKWARD,
    FORMULAS,
    NO_BACKWARD,
    Backward,
    CoverageRow,
    GradCall,
    OpCall,
    backward_of,
    cost_of,
    coverage,
    coverage_problems,
    formula,
    no_backward,
)

__all__ = ["BACKWARD", "FORMULAS", "NO_BACKWARD", "Backward", "CoverageRow", "GradCall", "OpCall",
           "backward_of", "cost_of", "coverage", "coverage_problems", "formula", "no_backward"]
