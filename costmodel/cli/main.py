"""The command line: `costmodel report`, `costmodel check` (the budget gate) and `costmodel diff`.

Every failure the user can cause ends in one line on stderr and exit status 2, never a traceback
(`--verbose` adds it). `check` exits 1, not 2, when a model is over its budget.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import NoReturn, Sequence

from .. import __version__
from ..core.vocab import Mode
from ..errors import UsageError, one_line

EXAMPLES = """examples:
  costmodel report examples/shufflenet_v2.py --input 1x3x224x224
  costmodel report examples/mobilenet_v1.py:build --arg width_mult=0.5 --depth 2
  costmodel report torchvision.models:resnet50 --input 1x3x224x224 --format json -o r.json
  costmodel report model.py:build --input input_ids=1x128:int64 --input attention_mask=1x128:int64
  costmodel check examples/shufflenet_v2.py --max-mac 160M --max-params 2.5M
  costmodel check                      # every model in [tool.costmodel] / setup.cfg [costmodel]
  costmodel check model.py --baseline base.json --max-increase mac=2%
  costmodel diff examples/mobilenet_v1.py examples/mobilenet_v2.py
  costmodel report examples/mobilenet_v2.py --mode train      # forward + backward
  costmodel calibrate && costmodel report examples/mobilenet_v2.py --device "$(hostname)"
  costmodel generate my_llm.py:build --prompt 2048 --new-tokens 128 --device laptop-cpu
"""

FORMATS = ("table", "json", "csv", "markdown", "html", "dot", "svg")
SORT_KEYS = ("madds", "flops", "params", "mac", "mac_bytes")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"costmodel: error: {message} (see `{self.prog} --help`)\n")


def _mode_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.EVAL,
                        help="eval: inference (default); train: forward + backward with real "
                             "per-op backward formulas and the activation memory they keep")


def _model_options(parser: argparse.ArgumentParser, suffix: str = "", what: str = "") -> None:
    parser.add_argument(f"--input{suffix}", action="append", default=[],
                        metavar="[NAME=]SHAPE[:DTYPE]",
                        help=f"input shape{what}, e.g. 1x3x224x224 or attention_mask=1x128:int64; "
                             "repeat for several inputs (default: the file's INPUT, else inferred)")
    parser.add_argument(f"--arg{suffix}", action="append", default=[], metavar="KEY=VALUE",
                        help=f"keyword argument for the callable{what}, parsed as a Python literal")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true",
                        help="on error, show the full traceback")
    parser = _Parser(
        prog="costmodel", description="Static MAdds, FLOPs, params and memory access cost (MAC) "
        "of PyTorch models.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"costmodel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    spec_help = ("path/to/file.py[:callable] (default callable: build) or package.module:callable")

    report = sub.add_parser("report", help="per-layer cost table, module roll-up and totals",
                            epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                            parents=[common])
    report.add_argument("spec", metavar="SPEC", help=spec_help)
    _model_options(report)
    report.add_argument("--dtype", help="count MAC bytes at this dtype (float16, bfloat16, "
                                        "float32, int8)")
    report.add_argument("--format", choices=FORMATS, default="table")
    report.add_argument("-o", "--output", help="write to this file instead of stdout")
    report.add_argument("--layers", choices=("top", "all"), default="top",
                        help="table/markdown: 'top' (default) the --top K layers by --sort, "
                             "'all' the full per-layer table (graph order unless --sort)")
    report.add_argument("--sort", choices=SORT_KEYS,
                        help="rank layers by this column (default for the top layers: mac); "
                             "table, markdown, csv; json is always the whole report")
    report.add_argument("--top", type=int,
                        help="how many layers to show (default 10 in table/markdown, every "
                             "layer in csv); json is always the whole report")
    report.add_argument("--depth", type=int, default=1, help="module roll-up depth (default 1)")
    _mode_option(report)
    report.add_argument("--device", metavar="PROFILE",
                        help="device profile of the latency estimate: a shipped name, one saved "
                             "by `costmodel calibrate`, or a profile JSON path")
    _execution_option(report)

    check = sub.add_parser(
        "check", help="budget gate: exit 1 when a model exceeds its budget (for CI / pre-commit)",
        description="Exit 0 when every budget holds, 1 when any is exceeded (one line each), 2 "
                    "when a model cannot be checked. With no SPEC, check every model configured "
                    "in pyproject.toml [tool.costmodel] or setup.cfg [costmodel].",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
    check.add_argument("spec", metavar="SPEC", nargs="?", help=spec_help)
    _model_options(check)
    check.add_argument("--dtype", help="count MAC bytes at this dtype")
    for metric in SORT_KEYS:
        flag = metric.replace("_", "-")
        example = "200MiB" if metric == "mac_bytes" else "1.2G, 600M, 5e6"
        check.add_argument(f"--max-{flag}", metavar="N", dest=f"max_{metric}",
                           help=f"budget for {metric.replace('_', ' ')} (e.g. {example})")
    check.add_argument("--max-latency", metavar="TIME",
                       help="budget for the latency estimate on --device, e.g. 15ms (with "
                            "--strict, the upper end of the estimate's interval)")
    check.add_argument("--device", metavar="PROFILE",
                       help="device profile of --max-latency: a shipped name, one saved by "
                            "`costmodel calibrate`, or a profile JSON path (default laptop-cpu)")
    _execution_option(check, default=None)
    check.add_argument("--baseline", metavar="REPORT.json",
                       help="compare with a saved `costmodel report --format json`")
    check.add_argument("--max-increase", action="append", default=[], metavar="METRIC=PCT",
                       help="allowed growth over the baseline, e.g. mac=2%% (default with "
                            "--baseline: 0%% for every metric); a bare 2%% means every metric")
    check.add_argument("--allow-baseline-mismatch", action="store_true",
                       help="compare with a baseline measured in another mode, dtype or on "
                            "other inputs (refused by default)")
    check.add_argument("--strict", action="store_true",
                       help="fail when the analysis is partial (an op has no formula) or its "
                            "input was assumed (CM003), and judge --max-latency on the upper "
                            "end of the estimate's interval")
    check.add_argument("--config", metavar="FILE",
                       help="pyproject.toml or setup.cfg to read budgets from (default: the "
                            "nearest one with a costmodel section, from the current folder up)")
    check.add_argument("-q", "--quiet", action="store_true", help="print only violations")
    _mode_option(check)

    diff = sub.add_parser("diff", help="per-layer, per-module and total cost deltas of two models "
                                       "or two saved JSON reports",
                          epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                          parents=[common])
    diff.add_argument("a", metavar="A", help="SPEC or saved report.json")
    diff.add_argument("b", metavar="B", help="SPEC or saved report.json")
    _model_options(diff, "", " (both sides)")
    _model_options(diff, "-a", " (side A only)")
    _model_options(diff, "-b", " (side B only)")
    diff.add_argument("--dtype", help="count MAC bytes at this dtype")
    diff.add_argument("--device", metavar="PROFILE",
                      help="device profile of the latency row (analysed SPECs only, not saved "
                           "reports; default laptop-cpu)")
    diff.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    diff.add_argument("-o", "--output", help="write to this file instead of stdout")
    diff.add_argument("--top", type=int, default=20,
                      help="show the K layers with the largest MAC change (default 20)")
    diff.add_argument("--depth", type=int, default=1, help="module roll-up depth (default 1)")
    _mode_option(diff)

    calibrate = sub.add_parser(
        "calibrate", help="measure this machine's device profile for the latency estimate",
        description="Short micro-benchmarks on synthetic tensors (GEMM peak, streaming bandwidth, "
                    "fixed cost per op and per module call, per-kind throughput), then synthetic "
                    "blocks costmodel builds itself (in-model scales fitted on half, the "
                    "estimate's interval from the held-out half); the only command that runs "
                    "real kernels. Saves NAME.json where --device finds it.", parents=[common])
    calibrate.add_argument("--name", help="profile name (default: the host name)")
    calibrate.add_argument("-o", "--output", help="JSON path (default: $COSTMODEL_PROFILE_DIR or "
                                                  "~/.cache/costmodel/profiles, NAME.json)")
    calibrate.add_argument("--seconds", type=float, default=20.0,
                           help="time budget in seconds (default 20; at most 90 is sensible)")
    calibrate.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    calibrate.add_argument("--execution", choices=("eager", "fused"), default="eager",
                           help="fused: also measure the deployment runtime (ONNX Runtime, "
                                "needs onnxruntime and onnx) for `--execution fused` estimates; "
                                "about 30 s more")
    from .generate import add_parser as add_generate

    add_generate(sub, common, spec_help)
    return parser


def _execution_option(parser: argparse.ArgumentParser, default: str | None = "eager") -> None:
    parser.add_argument("--execution", choices=("eager", "fused"), default=default,
                        help="execution model of the latency estimate: eager (PyTorch, op by "
                             "op; the default) or fused (the deployed graph: batch norm folded, "
                             "activations and element-wise chains fused into their producer, "
                             "as ONNX Runtime runs it)")


def _args(texts: list[str]) -> dict[str, object]:
    from .config import parse_arg

    return dict(parse_arg(t) for t in texts)


def _write(text: str, output: str | None) -> None:
    text = text if text.endswith("\n") else text + "\n"
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


def run_report(args: argparse.Namespace) -> int:
    from ..render import formats
    from .gate import analyze_spec

    if args.top is not None and args.top < 1:
        raise UsageError("--top must be at least 1")
    _check_depth(args.depth)
    profile = _profile(args.device)
    ignored = [flag for flag, value in (("--top", args.top), ("--sort", args.sort),
                                        ("--layers", args.layers != "top"),
                                        ("--depth", args.depth != 1)) if value]
    if args.format in ("json", "html", "dot", "svg") and ignored:
        # said, not silently dropped: these formats always hold the whole report
        print(f"costmodel: note: {' and '.join(ignored)} "
              f"{'does' if len(ignored) == 1 else 'do'} not apply to --format {args.format}, "
              f"which holds the whole report", file=sys.stderr)
    report = analyze_spec(args.spec, args.input, _args(args.arg), args.dtype, mode=args.mode)
    _write(formats.render(report, args.format, depth=args.depth, top=args.top, sort=args.sort,
                          profile=profile, layers=args.layers, execution=args.execution),
           args.output)
    return 0


def _check_depth(depth: int) -> None:
    if depth < 1:
        raise UsageError(f"--depth must be at least 1 (the top-level modules), not {depth}")


def _profile(name: str | None):
    if name is None:
        return None
    from ..analysis import latency

    try:
        return latency.load_profile(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_calibrate(args: argparse.Namespace) -> int:
    from ..analysis.calibrate import calibrate_and_save, describe

    if args.seconds <= 0:
        raise UsageError("--seconds must be positive")
    from ..api import analyze
    warnings: list[str] = []
    if args.execution == "fused":
        from ..analysis.calibrate import calibrate
        from ..analysis.calibrate_fused import calibrate_fused, describe_fused
        from ..analysis.latency import save_profile
        try:
            profile = calibrate_fused(calibrate(args.seconds, args.name, args.threads, analyze,
                                                warnings), threads=args.threads, analyze=analyze)
        except (ImportError, RuntimeError) as exc:
            raise UsageError(f"--execution fused: {str(exc).splitlines()[0]} (pip install "
                             f"onnxruntime onnx)") from None
        path = save_profile(profile, args.output)
        print(describe_fused(profile))
    else:
        profile, path = calibrate_and_save(args.name, args.output, args.seconds, args.threads,
                                           analyze, warnings)
    for warning in warnings:   # measurements that did not settle: said, and kept in the source
        print(f"costmodel: warning: {warning}", file=sys.stderr)
    print(describe(profile))
    device = profile.name if args.output is None else path
    print(f"saved     {path}   (use it with --device {device})")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from ..core.tensors import canonical_dtype
    from . import config
    from . import gate as check
    from .budget import parse_duration, parse_increase, parse_quantity
    from .gate import split_inputs

    limits = {m: parse_quantity(getattr(args, f"max_{m}"), m) for m in SORT_KEYS
              if getattr(args, f"max_{m}") is not None}
    max_latency = parse_duration(args.max_latency) if args.max_latency is not None else None
    increases: dict[str, float] = {}
    for text in args.max_increase:
        increases.update(parse_increase(text))
    if increases and not args.baseline:
        raise UsageError("--max-increase needs --baseline REPORT.json")
    split_inputs(args.input)      # validate before anything is built
    kwargs = _args(args.arg)
    if args.dtype:
        canonical_dtype(args.dtype)
    if args.spec:
        if not limits and not args.baseline and max_latency is None:
            raise UsageError("nothing to check: give a budget (--max-mac 1.2G, --max-params 5M, "
                             "--max-latency 15ms, ...) or --baseline REPORT.json")
        targets = [config.Target(args.spec, list(args.input), kwargs, args.dtype, limits,
                                 increases, args.baseline, args.strict, mode=args.mode,
                                 max_latency_s=max_latency, device=args.device,
                                 name=args.spec, execution=args.execution or "eager")]
    else:
        if args.input or args.arg:
            raise UsageError("--input and --arg need a SPEC; configured models take theirs from "
                             "the config file")
        path = args.config or config.find()
        if path is None:
            raise UsageError("no SPEC given and no [tool.costmodel] in pyproject.toml or "
                             "[costmodel] in setup.cfg here or in a parent folder")
        targets = config.load(path)
        for target in targets:   # options on the command line tighten every configured model
            target.limits.update(limits)
            target.increases.update(increases)
            target.strict = target.strict or args.strict
            if max_latency is not None:
                target.max_latency_s = max_latency
            if args.device:
                target.device = args.device
            if args.execution:
                target.execution = args.execution
            if args.baseline:
                target.baseline = os.path.abspath(args.baseline)
            if args.dtype:
                target.dtype = args.dtype
            if args.mode != Mode.EVAL:
                target.mode = args.mode
    return check.run(targets, verbose=args.verbose, quiet=args.quiet,
                     allow_mismatch=args.allow_baseline_mismatch)


def run_diff(args: argparse.Namespace) -> int:
    from .diff import compare, render
    from .gate import analyze_spec, read_report

    if args.top < 1:
        raise UsageError("--top must be at least 1")
    _check_depth(args.depth)

    def side(spec: str, inputs: list[str], arg: list[str]):
        if spec.endswith(".json"):
            if inputs or arg:
                raise UsageError(f"--input/--arg cannot apply to the saved report {spec}")
            return read_report(spec)
        return analyze_spec(spec, inputs, _args(arg), args.dtype, mode=args.mode)

    given = {"a": (args.a, args.input + args.input_a, args.arg + args.arg_a),
             "b": (args.b, args.input + args.input_b, args.arg + args.arg_b)}
    a, b = (side(*given[k]) for k in "ab")
    profile = _profile(args.device)
    # each side's header says what was analysed: the SPEC with its --arg and --input
    sources = tuple(" ".join([spec, *(f"--arg {x}" for x in arg), *(f"--input {x}" for x in inp)])
                    for spec, inp, arg in given.values())
    _write(render(compare(a, b, args.depth, profile), args.format, args.top, sources),
           args.output)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from .generate import run

    return run(args, _profile, _args, _write)


COMMANDS = {"report": run_report, "check": run_check, "diff": run_diff,
            "calibrate": run_calibrate, "generate": run_generate}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:   # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("costmodel: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure is one line and exit 2, no traceback
        if args.verbose:
            traceback.print_exc()
        print(f"costmodel: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
