"""Budgets kept in the project: `[tool.costmodel]` in pyproject.toml or `[costmodel]` in setup.cfg.

pyproject.toml::

    [tool.costmodel]
    strict = true                              # defaults for every model below

    [tool.costmodel.models.shufflenet]
    spec = "examples/shufflenet_v2.py:build"
    input = ["1x3x224x224"]
    args = { width_mult = 1.0 }
    max-mac = "160M"
    max-params = "2.5M"
    baseline = "budgets/shufflenet.json"       # a saved `costmodel report --format json`
    max-increase = { mac = "2%" }

setup.cfg::

    [costmodel]
    strict = true

    [costmodel:shufflenet]
    spec = examples/shufflenet_v2.py:build
    input = 1x3x224x224
    args =
        width_mult = 1.0
    max-mac = 160M
    max-increase = mac=2%

Every key is checked: a misspelt key is an error that names the file, the section and the key,
not a budget that silently does nothing. Paths (file SPECs, baselines) are relative to the file.
Pure Python: no torch here.
"""
from __future__ import annotations

import ast
import configparser
import difflib
import os
from dataclasses import dataclass, field
from typing import Any

from ..core.cost import METRIC_LABELS
from ..core.vocab import Mode
from ..errors import BudgetError, ConfigError, first_line
from .budget import parse_duration, parse_increase, parse_percent, parse_quantity

LIMIT_KEYS = {f"max-{m.replace('_', '-')}": m for m in METRIC_LABELS}
MODEL_KEYS = frozenset({"spec", "input", "args", "dtype", "mode", "baseline", "max-increase",
                        "strict", "max-latency", "device", "execution", *LIMIT_KEYS})
GLOBAL_KEYS = frozenset({"strict", "dtype", "mode", "models", "device", "execution"})
MODES = tuple(Mode)


@dataclass
class Target:
    """One model the gate checks, with everything needed to build, analyse and judge it."""

    spec: str
    inputs: list[str] = field(default_factory=list)
    args: dict[str, Any] = field(default_factory=dict)
    dtype: str | None = None
    limits: dict[str, int] = field(default_factory=dict)
    increases: dict[str, float] = field(default_factory=dict)
    baseline: str | None = None
    strict: bool = False
    mode: str = Mode.EVAL   # Mode.TRAIN: forward + backward, the cost of a training step
    max_latency_s: float | None = None   # latency budget, judged on `device`'s estimate
    device: str | None = None            # device profile of the latency estimate
    execution: str = "eager"             # execution model of the latency estimate (fusion.py)
    name: str = ""          # what the output lines call it: the SPEC as the user wrote it
    root: str = "."         # folder that relative paths and module SPECs are resolved from

    @property
    def label(self) -> str:
        return self.name or self.spec


def parse_arg(text: str) -> tuple[str, Any]:
    """'width_mult=0.5' -> ('width_mult', 0.5). Values are Python literals; a bare word is a str."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise ConfigError(f"bad --arg {text!r}; expected key=value, e.g. --arg width_mult=0.5")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = raw.strip()  # a bare word is a string: --arg mode=fast
    return key.strip(), value


def find(start: str = ".") -> str | None:
    """The nearest pyproject.toml with [tool.costmodel] or setup.cfg with [costmodel], looking in
    `start` and then its parents (pyproject.toml first in each folder)."""
    folder = os.path.abspath(start)
    while True:
        for name in ("pyproject.toml", "setup.cfg"):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and _has_section(path):
                return path
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _has_section(path: str) -> bool:
    try:
        if path.endswith(".toml"):
            return "costmodel" in _read_toml(path).get("tool", {})
        parser = _read_ini(path)
        return any(s == "costmodel" or s.startswith("costmodel:") for s in parser.sections())
    except ConfigError:
        return True   # broken but ours or not: load() will say what is wrong


def load(path: str) -> list[Target]:
    """Every model configured in `path`, in file order."""
    if not os.path.isfile(path):
        raise ConfigError(f"no such config file: {path}")
    root = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if path.endswith(".toml"):
        section = _read_toml(path).get("tool", {}).get("costmodel")
        if section is None:
            raise ConfigError(f"{base} has no [tool.costmodel] section")
        return _from_toml(section, base, root)
    parser = _read_ini(path)
    if not any(s == "costmodel" or s.startswith("costmodel:") for s in parser.sections()):
        raise ConfigError(f"{base} has no [costmodel] section")
    return _from_ini(parser, base, root)


# ---- TOML --------------------------------------------------------------------------------------

def _read_toml(path: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{os.path.basename(path)} is not valid TOML: {exc}") from exc


def _from_toml(section: dict, base: str, root: str) -> list[Target]:
    where = f"{base} [tool.costmodel]"
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a table")
    models = section.get("models", {})
    top = {k: v for k, v in section.items() if k != "models"}
    defaults = {k: v for k, v in top.items() if _norm(k) in GLOBAL_KEYS}
    if "spec" in top or any(_norm(k) in MODEL_KEYS - GLOBAL_KEYS for k in top):
        # a single model written straight into [tool.costmodel]
        _check_keys(top, MODEL_KEYS, where)
        targets = [_target(top, {}, where, root)]
    else:
        _check_keys(top, GLOBAL_KEYS, where)
        targets = []
    if not isinstance(models, dict):
        raise ConfigError(f"{where}: 'models' must be a table of tables "
                          f"([tool.costmodel.models.NAME])")
    for name, table in models.items():
        sub = f"{base} [tool.costmodel.models.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{sub} must be a table")
        _check_keys(table, MODEL_KEYS, sub)
        targets.append(named(_target(table, defaults, sub, root), name))
    if not targets:
        raise ConfigError(f"{where} lists no models; add [tool.costmodel.models.NAME] with a spec")
    return targets


# ---- INI (setup.cfg) ---------------------------------------------------------------------------

def _read_ini(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except configparser.Error as exc:
        raise ConfigError(f"{os.path.basename(path)} cannot be parsed: {first_line(exc)}") from exc
    return parser


def _lines(value: str) -> list[str]:
    return [part.strip() for line in value.splitlines() for part in line.split(",") if part.strip()]


def _from_ini(parser: configparser.ConfigParser, base: str, root: str) -> list[Target]:
    top = dict(parser["costmodel"]) if parser.has_section("costmodel") else {}
    where = f"{base} [costmodel]"
    targets = []
    if "spec" in top:
        _check_keys(top, MODEL_KEYS, where)
        targets.append(_target(_ini_values(top, where), {}, where, root))
        defaults = {}
    else:
        _check_keys(top, GLOBAL_KEYS - {"models"}, where)
        defaults = _ini_values(top, where)
    for section in parser.sections():
        if not section.startswith("costmodel:"):
            continue
        sub = f"{base} [{section}]"
        values = dict(parser[section])
        _check_keys(values, MODEL_KEYS, sub)
        targets.append(named(_target(_ini_values(values, sub), defaults, sub, root),
                             section.partition(":")[2]))
    if not targets:
        raise ConfigError(f"{where} lists no models; add a [costmodel:NAME] section with a spec")
    return targets


def _ini_values(values: dict[str, str], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        k = _norm(key)
        if k == "input":
            out[key] = _lines(value)
        elif k == "args":
            out[key] = dict(parse_arg(line) for line in _lines(value))
        elif k == "max-increase":
            out[key] = _lines(value)
        elif k == "strict":
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                raise ConfigError(f"{where}: strict must be true or false, not {value!r}")
            out[key] = lowered in ("true", "yes", "1", "on")
        else:
            out[key] = value.strip()
    return out


# ---- shared ------------------------------------------------------------------------------------

def _norm(key: str) -> str:
    return key.strip().lower().replace("_", "-")


def _check_keys(values: dict, allowed: frozenset[str], where: str) -> None:
    for key in values:
        if _norm(key) not in allowed:
            close = difflib.get_close_matches(_norm(key), sorted(allowed), n=1)
            hint = (f"; did you mean {close[0]!r}?" if close
                    else f"; known keys: {', '.join(sorted(allowed))}")
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def _target(values: dict, defaults: dict, where: str, root: str) -> Target:
    merged = {_norm(k): v for k, v in defaults.items()}
    merged.update({_norm(k): v for k, v in values.items()})
    spec = merged.get("spec")
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{where}: missing 'spec' (e.g. spec = \"models/net.py:build\")")
    target = Target(spec=spec.strip(), name=spec.strip(), root=root)
    try:
        inputs = merged.get("input", [])
        target.inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        if not all(isinstance(i, str) for i in target.inputs):
            raise ConfigError(f"{where}: input must be a shape string or a list of them")
        args = merged.get("args", {})
        if not isinstance(args, dict):
            raise ConfigError(f"{where}: args must be a table of keyword arguments")
        target.args = dict(args)
        dtype = merged.get("dtype")
        target.dtype = str(dtype) if dtype is not None else None
        mode = merged.get("mode", Mode.EVAL)
        if mode not in MODES:
            raise ConfigError(f"{where}: mode must be one of {', '.join(MODES)}, not {mode!r}")
        target.mode = Mode(mode)
        strict = merged.get("strict", False)
        if not isinstance(strict, bool):
            raise ConfigError(f"{where}: strict must be true or false, not {strict!r}")
        target.strict = strict
        for key, metric in LIMIT_KEYS.items():
            if key in merged:
                target.limits[metric] = parse_quantity(merged[key], metric)
        target.increases = _increases(merged.get("max-increase"), where)
        if "max-latency" in merged:
            target.max_latency_s = parse_duration(merged["max-latency"])
        if merged.get("device") is not None:
            target.device = str(merged["device"])
        execution = merged.get("execution", "eager")
        if execution not in ("eager", "fused"):
            raise ConfigError(f"{where}: execution must be eager or fused, not {execution!r}")
        target.execution = execution
        baseline = merged.get("baseline")
        if baseline is not None:
            target.baseline = str(baseline)
    except BudgetError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if target.increases and not target.baseline:
        raise ConfigError(f"{where}: max-increase needs a baseline (a saved JSON report)")
    if not target.limits and not target.baseline and target.max_latency_s is None:
        raise ConfigError(f"{where}: no budget: set max-mac, max-madds, max-flops, max-params, "
                          f"max-mac-bytes, max-latency or a baseline")
    return target


def named(target: Target, name: str) -> Target:
    """A configured model is called by its table / section name and its SPEC, so that two
    configurations of one file are told apart: 'small (net.py:build)'."""
    target.name = f"{name.strip()} ({target.spec})"
    return target


def _increases(value: Any, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, dict):   # TOML: { mac = "2%" }
        from .budget import metric_key
        return {metric_key(k): parse_percent(v, f"increase of {k}") for k, v in value.items()}
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ConfigError(f"{where}: max-increase must be like mac=2% or {{ mac = \"2%\" }}")
    out: dict[str, float] = {}
    for item in items:
        out.update(parse_increase(item))
    return out
