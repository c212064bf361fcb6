"""Each analysis of a report's graph is computed once (analysis/context.py); repr is cheap."""
from __future__ import annotations

from torch import nn

import costmodel
from costmodel.analysis import latency, structure


def _report():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1))
    return costmodel.analyze(model, "1x3x16x16")


def test_repr_is_one_line_and_computes_no_analysis(monkeypatch):
    calls = []
    monkeypatch.setattr(latency, "compute_estimate", lambda *a: calls.append(a))
    monkeypatch.setattr(structure, "model_structure", lambda *a: calls.append(a))
    report = _report()
    text = repr(report)
    assert "\n" not in text and "Sequential" in text and "complete" in text
    assert f"{report.totals.madds:,}" in text
    assert not calls


def test_text_render_estimates_latency_once_per_profile(monkeypatch):
    counted: list[str] = []
    compute = latency.compute_estimate

    def spy(ctx, profile):
        counted.append(profile.name)
        return compute(ctx, profile)

    monkeypatch.setattr(latency, "compute_estimate", spy)
    report = _report()
    str(report)
    assert counted == [latency.DEFAULT_PROFILE]
    str(report)                      # a second render reuses every analysis
    _ = report.guidelines
    latency.estimate(report)         # the public function reads the same cache
    assert counted == [latency.DEFAULT_PROFILE]
    latency.estimate(report, "a100")
    assert counted == [latency.DEFAULT_PROFILE, "a100"]


def test_structure_is_computed_once_per_report(monkeypatch):
    counted = []
    blocks = structure.blocks
    monkeypatch.setattr(structure, "blocks", lambda *a: counted.append(1) or blocks(*a))
    report = _report()
    str(report)
    str(report)
    assert counted == [1]


def test_a_report_without_graph_says_so_once():
    from costmodel.analysis.context import NO_GRAPH
    back = costmodel.Report.from_json(_report().to_json())
    for call in (lambda: latency.estimate(back), lambda: costmodel.guidelines.check(back)):
        try:
            call()
        except ValueError as exc:
            assert str(exc) == NO_GRAPH
        else:
            raise AssertionError("no error")
    assert back.guidelines == ()
