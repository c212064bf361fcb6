"""The command line: `costmodel report SPEC --input 1x3x224x224`.

Every failure the user can cause ends in one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import ast
import sys
from typing import Sequence

from . import __version__
from .errors import CostmodelError

EXAMPLES = """examples:
  costmodel report examples/shufflenet_v2.py --input 1x3x224x224
  costmodel report examples/mobilenet_v1.py:build --arg width_mult=0.5 --depth 2
  costmodel report torchvision.models:resnet50 --input 1x3x224x224 --format json -o r.json
  costmodel report model.py:build --input input_ids=1x128:int64 --input attention_mask=1x128:int64
"""

FORMATS = ("table", "json", "csv", "markdown")
SORT_KEYS = ("madds", "flops", "params", "mac", "mac_bytes")


class UsageError(CostmodelError, ValueError):
    """A bad combination of options."""


def _parse_arg(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise UsageError(f"bad --arg {text!r}; expected key=value, e.g. --arg width_mult=0.5")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare word is a string: --arg mode=fast
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="costmodel", description="Static MAdds, FLOPs, params and memory access cost (MAC) "
        "of PyTorch models.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"costmodel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    report = sub.add_parser("report", help="per-layer cost table, module roll-up and totals",
                            epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("spec", metavar="SPEC",
                        help="path/to/file.py[:callable] (default callable: build) or "
                             "package.module:callable")
    report.add_argument("--input", action="append", default=[], metavar="[NAME=]SHAPE[:DTYPE]",
                        help="input shape, e.g. 1x3x224x224 or attention_mask=1x128:int64; repeat "
                             "for several inputs (default: the file's INPUT, else inferred)")
    report.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument for the callable, parsed as a Python literal")
    report.add_argument("--dtype", help="count MAC bytes at this dtype (float16, bfloat16, "
                                        "float32, int8)")
    report.add_argument("--format", choices=FORMATS, default="table")
    report.add_argument("-o", "--output", help="write to this file instead of stdout")
    report.add_argument("--sort", choices=SORT_KEYS, help="sort layers by this column")
    report.add_argument("--top", type=int, help="show only the first K layers")
    report.add_argument("--depth", type=int, default=1, help="module roll-up depth (default 1)")
    return parser


def _inputs(texts: list[str]) -> tuple[list[str], dict[str, str]]:
    from .specs import parse_input

    positional, named = [], {}
    for text in texts:
        name, _, _ = parse_input(text)     # validates; raises InputSpecError
        if name:
            named[name] = text.split("=", 1)[1]
        else:
            positional.append(text)
    return positional, named


def run_report(args: argparse.Namespace) -> int:
    from .loader import load
    from .render import formats
    from .specs import canonical_dtype

    if args.dtype:
        canonical_dtype(args.dtype)
    if args.top is not None and args.top < 1:
        raise UsageError("--top must be at least 1")
    positional, named = _inputs(args.input)
    kwargs = dict(_parse_arg(a) for a in args.arg)
    loaded = load(args.spec, kwargs)
    if not positional and not named and loaded.default_input:
        positional = [loaded.default_input]

    import costmodel
    report = costmodel.analyze(loaded.model, *positional, kwargs=named, dtype=args.dtype)
    text = formats.render(report, args.format, depth=args.depth, top=args.top, sort=args.sort)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + ("\n" if not text.endswith("\n") else ""))
    else:
        sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {"report": run_report}[args.command](args)
    except KeyboardInterrupt:
        print("costmodel: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure is one line and exit 2, no traceback
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if not isinstance(exc, CostmodelError):  # unexpected: say what kind of error it was
            message = f"{type(exc).__name__}: {message}".rstrip(": ")
        print(f"costmodel: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
