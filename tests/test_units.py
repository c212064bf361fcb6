"""The shared formatting helpers (render/units.py, core/tensors.format_input), the one table of
metric labels, and the closed vocabularies a Report carries through JSON."""
from __future__ import annotations

import json

import pytest
from torch import nn

import costmodel
from costmodel.core.cost import METRIC_LABELS, METRICS
from costmodel.core.report import Report
from costmodel.core.tensors import format_input, spec
from costmodel.core.vocab import CaptureKind, Mode, Role
from costmodel.render.units import duration, escape, percent


def test_every_metric_has_one_label():
    assert tuple(METRIC_LABELS) == METRICS


@pytest.mark.parametrize(("seconds", "text"), [
    (1.5e-3, "1.5 ms"), (1e-4, "0.1 ms"), (9.99e-5, "99.9 us"), (0.0, "0 us")])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_escape_quotes_only_when_asked():
    assert escape("<b>'x'</b> & \"y\"") == "&lt;b&gt;&#x27;x&#x27;&lt;/b&gt; &amp; &quot;y&quot;"
    assert escape("<b>'x'</b>", quote=False) == "&lt;b&gt;'x'&lt;/b&gt;"
    assert escape(3) == "3"


def test_percent():
    assert percent(1, 3) == "33.3%"
    assert percent(1, 3, digits=0) == "33%"
    assert percent(1, 0) == "-"


def test_format_input():
    assert format_input("x", (1, 3, 224, 224), "float32") == "x=1x3x224x224:float32"
    assert format_input("ids", (1, 128)) == "ids=1x128"


def test_tensor_role_defaults_to_activation():
    assert spec(1, 3).role == Role.ACTIVATION == "activation"


def test_mode_and_capture_round_trip_as_enums_and_plain_strings():
    report = costmodel.analyze(nn.Linear(4, 2), "1x4")
    data = report.to_dict()
    again = Report.from_dict(json.loads(json.dumps(data)))
    assert again.mode is Mode.EVAL and again.capture == report.capture
    assert isinstance(again.capture, CaptureKind)
    assert json.dumps(again.to_dict()) == json.dumps(data)
