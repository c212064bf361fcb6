"""`costmodel generate SPEC --prompt N --new-tokens N`: the cost of generating with a causal LM
(prefill, every decode step, KV cache, memory, and the latency estimate with --device)."""
from __future__ import annotations

import argparse

from ..errors import UsageError

FORMATS = ("table", "json", "markdown", "html")


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
               spec_help: str) -> None:
    gen = sub.add_parser(
        "generate", parents=[common],
        help="cost of generation: prefill, every decode step, KV cache, memory, tokens/s",
        description="Static cost of generating --new-tokens tokens after a --prompt token prompt "
                    "with a Hugging Face causal LM (its own KV cache), on meta tensors.")
    gen.add_argument("spec", metavar="SPEC", help=spec_help)
    gen.add_argument("--prompt", type=int, required=True, help="prompt length in tokens")
    gen.add_argument("--new-tokens", type=int, required=True, help="tokens generated")
    gen.add_argument("--batch", type=int, default=1, help="sequences (default 1)")
    gen.add_argument("--dtype", help="count bytes as this floating dtype (e.g. bfloat16)")
    gen.add_argument("--device", metavar="PROFILE",
                     help="device profile for the latency estimate (name or JSON path)")
    gen.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                     help="keyword argument for the callable, parsed as a Python literal")
    gen.add_argument("--format", choices=FORMATS, default="table")
    gen.add_argument("-o", "--output", help="write to this file instead of stdout")


def run(args: argparse.Namespace, profile_of, args_of, write) -> int:
    from ..core.tensors import canonical_dtype
    from ..generation import analyze_generation
    from ..render.generation import render
    from .loader import load

    for name in ("prompt", "new_tokens", "batch"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, "
                             f"not {getattr(args, name)}")
    if args.dtype:
        canonical_dtype(args.dtype)
    profile = profile_of(args.device)
    model = load(args.spec, args_of(args.arg)).model
    g = analyze_generation(model, prompt_len=args.prompt, new_tokens=args.new_tokens,
                           batch=args.batch, dtype=args.dtype)
    write(render(g, args.format, profile), args.output)
    return 0
