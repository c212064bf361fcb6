"""One home per op: bindings (ops/), forward formulas and backward rules share the op name, each
registry refuses a second registration, and every op is complete in all three."""
from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import costmodel
import costmodel.formulas
from costmodel.core.cost import Cost
from costmodel.core.vocab import Category, OpFlag
from costmodel.formulas import BACKWARD, FORMULAS, NO_BACKWARD, coverage, coverage_problems, formula
from costmodel.formulas import registry as formulas
from costmodel.formulas.registry import backward, no_backward
from costmodel.ops import bound_ops, lookup
from costmodel.ops import registry as ops


def test_every_op_is_bound_costed_and_has_a_backward_or_says_why_not():
    assert coverage_problems(bound_ops()) == []


def test_the_check_catches_a_formula_that_no_callable_is_bound_to():
    """rrelu had a forward formula and no binding, so it was reported unsupported."""
    with ops.scratch():
        for fn in (F.rrelu, torch.rrelu, torch.rrelu_):
            del ops.BINDINGS[fn]
        assert coverage_problems(bound_ops()) == [
            "rrelu: a forward formula that no torch callable is bound to"]


def test_the_check_catches_every_other_gap():
    bound = set(bound_ops())
    assert coverage_problems(bound | {"made_up"}) == ["made_up: bound, but has no forward formula"]
    backward = set(BACKWARD) - {"relu"}
    assert coverage_problems(bound, FORMULAS, backward) == [
        "relu: neither a backward rule nor a NO_BACKWARD entry with its reason"]
    assert coverage_problems(bound, FORMULAS, backward, {**NO_BACKWARD, "relu": "a reason"}) == []
    assert coverage_problems(bound, FORMULAS, BACKWARD, {**NO_BACKWARD, "relu": "a reason"}) == [
        "relu: a backward rule and a NO_BACKWARD entry"]


def test_duplicate_bindings_are_refused():
    with ops.scratch():
        with pytest.raises(KeyError, match="F.relu registered twice"):
            ops.bind("relu", "F.relu", ("input", "inplace"))
        with pytest.raises(KeyError, match="torchvision::nms registered twice"):
            ops.bind_op("nms", "torchvision::nms", ("boxes", "scores", "iou_threshold"))
        with pytest.raises(TypeError):
            ops.bind(None, "torch.sinc", ("input",))
    assert lookup(F.relu).rule.op == "relu"


def test_duplicate_formulas_and_backward_rules_are_refused():
    def impostor(call):
        """Never registered."""
        return Cost()

    with formulas.scratch():
        with pytest.raises(KeyError, match="relu"):
            formula("relu", category=Category.ACTIVATION)(impostor)
        with pytest.raises(KeyError, match="registered twice"):
            backward("relu")(impostor)
        with pytest.raises(KeyError, match="registered twice"):
            no_backward("relu", "it has a rule")
        with pytest.raises(KeyError, match="registered twice"):
            no_backward("lp_pool", "said twice")
        with pytest.raises(TypeError):
            formula(len, category=Category.ACTIVATION)(impostor)
        with pytest.raises(TypeError):
            backward(3)(impostor)
        with pytest.raises(ValueError):
            no_backward("made_up", " ")
    assert FORMULAS["relu"].formula is not impostor and BACKWARD["relu"] is not impostor


def test_one_binding_per_callable_bound_or_not():
    relu = lookup(F.relu)
    assert relu is lookup(F.relu) and relu.name == "F.relu" and relu.rule.op == "relu"
    unique = lookup(torch.bincount)             # no formula, still one memoised binding
    assert unique is lookup(torch.bincount) and unique.rule is None
    assert OpFlag.DATA_DEPENDENT in unique.flags
    assert unique.sizes(unique, (), {}) == ("torch.bincount keeps a number of elements that "
                                              "depends on the data")
    with pytest.raises(AttributeError):
        relu.name = "x"                          # frozen


@pytest.mark.parametrize("func, flags", [
    (Tensor.expand, {OpFlag.SUM_BACK}),
    (Tensor.repeat, {OpFlag.SUM_BACK}),
    (Tensor.gather, {OpFlag.SCATTER_ADD}),
    (Tensor.__getitem__, {OpFlag.SCATTER_ADD, OpFlag.CAPS_SIZES, OpFlag.DATA_DEPENDENT}),
    (torch.cat, {OpFlag.PASS_ON}),
    (Tensor.reshape, {OpFlag.PASS_ON}),
    (Tensor.permute, set()),
    (Tensor.detach, {OpFlag.DETACH}),
    (Tensor.detach_, {OpFlag.DETACH, OpFlag.INPLACE, OpFlag.MUTATES}),
    (torch.topk, {OpFlag.CAPS_SIZES}),
    (torch.narrow, {OpFlag.CAPS_SIZES}),
    (Tensor.relu_, {OpFlag.INPLACE, OpFlag.MUTATES}),
    (Tensor.__iadd__, {OpFlag.INPLACE}),
    (Tensor.unsqueeze_, {OpFlag.INPLACE, OpFlag.MUTATES}),   # unbound: found by its name
    (torch.where, {OpFlag.DATA_DEPENDENT}),
    (Tensor.where, set()),
    (F.conv2d, set()),
])
def test_flags(func, flags):
    assert lookup(func).flags == flags


def test_argument_dependent_sizes():
    where, index = lookup(torch.where), lookup(Tensor.__getitem__)
    x = torch.zeros(3, device="meta")
    assert where.sizes(where, (x > 0,), {}) and where.sizes(where, (x > 0, x, x), {}) is None
    assert index.sizes(index, (x, x > 0), {}) and index.sizes(index, (x, 1), {}) is None


def test_flags_travel_with_the_recorded_call():
    model = nn.Sequential(nn.Flatten(0))
    report = costmodel.analyze(model, "2x3")
    calls = [c for node in report.graph for c in node.calls]
    assert any(OpFlag.PASS_ON in c.call.flags for c in calls)


def test_rrelu_is_bound():
    report = costmodel.analyze(nn.Sequential(nn.RReLU()).eval(), "2x3x4x4")
    assert str(report.totals.status) == "complete" and not report.totals.unsupported
    assert report.totals.flops == 2 * 3 * 4 * 4            # 1 FLOP per element
    inplace = costmodel.analyze(nn.Sequential(nn.Conv2d(3, 3, 1), nn.RReLU(inplace=True)).eval(),
                                "2x3x4x4")
    assert str(inplace.totals.status) == "complete"
    assert lookup(torch.rrelu_).rule.inplace and lookup(F.rrelu_).rule.op == "rrelu"


def test_the_add_an_op_recipe_runs():
    """The recipe in costmodel.formulas' docstring is a doctest that registers an op in scratch
    registries, analyses a model with it and checks the count."""
    result = doctest.testmod(costmodel.formulas)
    assert result.attempted >= 8 and result.failed == 0
    assert "sinc" not in FORMULAS and lookup(torch.sinc).rule is None


def test_coverage_table():
    rows = {r.op: r for r in coverage(bound_ops())}
    assert set(rows) == set(FORMULAS)
    assert (rows["relu"].family, rows["relu"].category, rows["relu"].backward) == (
        "pointwise", "activation", True)
    assert rows["conv"].category == "varies" and rows["conv"].callables == 3
    assert rows["lp_pool"].backward is False and rows["lp_pool"].no_backward
    assert all(r.callables > 0 for r in rows.values())
