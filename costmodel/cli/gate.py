"""The budget gate behind `costmodel check`: build, analyse and judge each target.

Exit status: 0 when every budget holds, 1 when any is exceeded, 2 when a model could not be
checked (a usage or analysis error): a gate that could not look must not say "pass".
"""
from __future__ import annotations

import json
import math
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from ..core.cost import METRIC_LABELS
from ..core.tensors import format_input
from ..core.vocab import Mode
from ..errors import BudgetError, InputSpecError, one_line
from .budget import Gate, latency_verdict
from .config import Target

OK, OVER, ERROR = 0, 1, 2


@dataclass
class Outcome:
    target: Target
    status: int
    lines: list[str] = field(default_factory=list)


def split_inputs(texts: list[str]) -> tuple[list[str], dict[str, Any]]:
    """'--input' values into positional shapes and name=shape keyword inputs (validated).
    A dotted name builds a structured input: `batch.image=1x3x224x224 batch.mask=1x224x224:bool`
    gives batch = {"image": ..., "mask": ...}; keys 0, 1, ... give a list (`pair.0=`, `pair.1=`).
    """
    from ..core.tensors import parse_input

    positional: list[str] = []
    named: dict[str, Any] = {}
    for text in texts:
        name, _, _ = parse_input(text)     # raises InputSpecError with a one-line message
        if not name:
            positional.append(text)
            continue
        *path, last = name.split(".")
        level = named
        for i, key in enumerate(path):
            level = level.setdefault(key, {})
            if not isinstance(level, dict):
                raise InputSpecError(f"--input {'.'.join(path[:i + 1])} is given both as one "
                                     f"shape and as a structure of shapes")
        if last in level:
            raise InputSpecError(f"--input {name} is given twice")
        level[last] = text.split("=", 1)[1].strip()
    return positional, {k: _lists(v, k) for k, v in named.items()}


def _lists(value: Any, name: str) -> Any:
    """The levels of a dotted --input whose keys are 0, 1, ..., n-1 as lists."""
    if not isinstance(value, dict):
        return value
    if any(k.isdigit() for k in value):
        if sorted(value) != sorted(str(i) for i in range(len(value))):
            raise InputSpecError(f"--input {name}.N: the items of a list input must be numbered "
                                 f"0 to {len(value) - 1} (given: {', '.join(sorted(value))})")
        return [_lists(value[str(i)], f"{name}.{i}") for i in range(len(value))]
    return {k: _lists(v, f"{name}.{k}") for k, v in value.items()}


def analyze_spec(spec: str, inputs: list[str], args: dict[str, Any], dtype: str | None = None,
                 root: str | None = None, mode: str = Mode.EVAL):
    """Build the model a SPEC names (on meta when it can) and analyse it."""
    from ..core.tensors import canonical_dtype
    from .loader import load, split, user_code

    if dtype:
        canonical_dtype(dtype)
    positional, named = split_inputs(inputs)
    loaded = load(spec, args, root=root)
    if not positional and not named and loaded.default_input:
        positional = [loaded.default_input]
    import costmodel
    with user_code(split(spec)[0], "running the forward"):
        return costmodel.analyze(loaded.model, *positional, kwargs=named, dtype=dtype, mode=mode)


def read_report(path: str):
    """A saved `costmodel report --format json`, as a Report. Totals that are negative or not
    finite are refused: a gate must not compare with a number no analysis can give."""
    from ..core.report import Report

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        _check_totals(data, path)
        return Report.from_dict(data)
    except FileNotFoundError:
        raise BudgetError(f"no such baseline report: {path}") from None
    except IsADirectoryError:
        raise BudgetError(f"baseline report {path} is a directory") from None
    except BudgetError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise BudgetError(f"cannot read baseline report {path}: "
                          f"{type(exc).__name__}: {exc}") from exc


def _check_totals(data: Any, path: str) -> None:
    totals = data.get("totals") if isinstance(data, dict) else None
    if not isinstance(totals, dict):
        raise BudgetError(f"cannot read baseline report {path}: no 'totals' (is it a "
                          f"`costmodel report --format json`?)")
    for metric in METRIC_LABELS:
        value = totals.get(metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BudgetError(f"baseline report {path}: totals.{metric} is {value!r}, "
                              f"not a number")
        if not math.isfinite(value) or value < 0:
            raise BudgetError(f"baseline report {path}: totals.{metric} is {value!r}; a cost is "
                              f"a finite number >= 0")


ALLOW_MISMATCH = "--allow-baseline-mismatch"


def baseline_mismatch(base, report) -> list[str]:
    """How a baseline was measured differently from this report: mode, MAC-bytes dtype, inputs
    (name, shape, dtype). Empty when they compare like with like."""
    sides = []
    if str(base.mode) != str(report.mode):
        sides.append(f"mode {base.mode} vs {report.mode}")
    if (base.dtype or None) != (report.dtype or None):
        sides.append(f"--dtype {base.dtype or '(none)'} vs {report.dtype or '(none)'}")
    if _inputs(base, True) != _inputs(report, True):
        sides.append(f"inputs {_inputs(base, True) or '(none)'} vs "
                     f"{_inputs(report, True) or '(none)'}")
    return sides


def judge(target: Target, allow_mismatch: bool = False) -> Outcome:
    """Analyse one target and compare it with its budgets. Raises on errors the user caused,
    and on a baseline measured differently unless `allow_mismatch`."""
    report = analyze_spec(target.spec, target.inputs, target.args, target.dtype, target.root,
                          target.mode)
    gate = Gate(dict(target.limits), dict(target.increases), strict=target.strict)
    notes: list[str] = []
    if target.baseline:
        path = target.baseline if os.path.isabs(target.baseline) else os.path.join(
            target.root, target.baseline)
        base = read_report(path)
        gate.baseline = base.totals.to_dict()
        if not gate.increases:
            gate.increases = {m: 0.0 for m in METRIC_LABELS}   # a baseline alone: no growth at all
        mismatch = baseline_mismatch(base, report)
        if mismatch and not allow_mismatch:
            raise BudgetError(f"baseline {target.baseline} does not compare like with like: "
                              f"{'; '.join(mismatch)} (baseline vs this check); re-save it or "
                              f"pass {ALLOW_MISMATCH} to compare anyway")
        if mismatch:
            notes.append(f"note: the baseline was measured differently ({'; '.join(mismatch)}; "
                         f"baseline vs this check)")
    findings = gate.judge(report.totals.to_dict())
    over = [f for f in findings if f.over]
    label = target.label
    lines = [f"{label}  {f.describe()}" for f in over]
    ok_latency = ""
    if target.max_latency_s is not None:
        late, text = _latency(report, target)
        if late:
            lines.append(f"{label}  {text}")
        else:
            ok_latency = text
    partial = str(report.totals.status) == "partial"
    if partial:
        missing = ", ".join(report.totals.unsupported) or "some ops"
        if target.strict:
            lines.append(f"{label}  analysis is partial (no formula for: {missing}); "
                         f"--strict fails the gate")
        else:
            notes.append(f"note: totals are partial, lower bounds (no formula for: {missing}); "
                         f"--strict would fail")
    lines, notes = _assumed_input(report, target, lines, notes)
    status = OVER if lines else OK
    if status == OK:
        lines.append(f"{label}  ok  " + ", ".join([f.describe() for f in findings]
                                                  + ([ok_latency] if ok_latency else [])))
    return Outcome(target, status, lines + [f"{label}  {n}" for n in notes])


def _latency(report, target: Target) -> tuple[bool, str]:
    """The latency budget's verdict on the target's device profile (BudgetError if unknown)."""
    from ..analysis import latency
    device = target.device
    if device and device.endswith(".json") and not os.path.isabs(device):
        device = os.path.join(target.root, device)     # relative to the config, like a spec
    try:
        profile = latency.load_profile(device)
    except ValueError as exc:
        raise BudgetError(str(exc)) from None
    est = latency.estimate(report, profile, target.execution)
    return latency_verdict(est.total_s, est.interval(), est.profile.interval_level,
                           target.max_latency_s, profile.name
                           + (", fused" if target.execution == "fused" else ""), target.strict)


def _assumed_input(report, target: Target, lines: list[str], notes: list[str]
                   ) -> tuple[list[str], list[str]]:
    """CM003: an input costmodel assumed is said, and --strict fails on it."""
    from ..core.vocab import Code

    for d in report.diagnostics:
        if str(d.code) == Code.INPUT_ASSUMED:
            if target.strict:
                lines = [*lines, f"{target.label}  {d.code}: {d.message} --strict fails the gate"]
            else:
                notes = [*notes, f"note: {d.code}: {d.message}"]
    return lines, notes


def _inputs(report, dtypes: bool = False) -> str:
    return ", ".join(format_input(i.name, i.shape, i.dtype if dtypes else None)
                     for i in report.inputs)


def run(targets: list[Target], *, verbose: bool = False, quiet: bool = False,
        out: TextIO | None = None, err: TextIO | None = None,
        allow_mismatch: bool = False) -> int:
    """Check every target; print one line per finding; return the gate's exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    progress = _progress(len(targets), err)
    write: Callable[[str, TextIO], None] = (
        (lambda line, stream: progress.write(line, file=stream)) if progress else _print)
    worst = OK
    counts = {OK: 0, OVER: 0, ERROR: 0}
    for target in targets:
        if progress:
            progress.set_description(target.label)
        try:
            outcome = judge(target, allow_mismatch)
        except Exception as exc:  # noqa: BLE001 - one model's failure must not hide the others
            outcome = Outcome(target, ERROR, [])
            if verbose:
                write(traceback.format_exc().rstrip(), err)
            write(f"costmodel: error: {target.label}: {one_line(exc)}", err)
        for line in outcome.lines:
            if outcome.status != OK or not quiet:
                write(line, out)
        counts[outcome.status] += 1
        worst = max(worst, outcome.status)
        if progress:
            progress.update(1)
    if progress:
        progress.close()
    if len(targets) > 1 and not quiet:
        _print(f"costmodel check: {len(targets)} models: {counts[OK]} within budget, "
               f"{counts[OVER]} over, {counts[ERROR]} could not be checked", out)
    return worst


def _print(line: str, stream: TextIO) -> None:
    print(line, file=stream, flush=True)


def _progress(n: int, stream: TextIO):
    """A progress bar on an interactive terminal only: CI logs and pre-commit output stay clean."""
    if n < 2 or not getattr(stream, "isatty", lambda: False)():
        return None
    from tqdm import tqdm

    return tqdm(total=n, file=stream, unit="model", leave=False, dynamic_ncols=True)
