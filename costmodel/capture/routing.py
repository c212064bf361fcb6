"""Mixture-of-Experts routing under a stated assumption (the eager capture, eager.py).

Loops over experts (transformers' `experts_implementation="eager"`, Switch Transformers,
NLLB-MoE, DBRX, ...) read the router's choices: `expert_hit = mask.sum(...).nonzero()`,
`for expert_idx in expert_hit: if expert_idx == E: ...`, `torch.where(expert_mask[i])`,
`self[f"expert_{idx}"]`. The choices come from the router's logits, so no static analysis can
know them, and without this module the capture stops at the first read.

The assumption: inside a module that has a child named `experts` or `router` (a Mixture-of-Experts
block), the index output of a routing call (`topk`, `argmax`, `max(dim)`, or a lookup in a fixed
token -> experts table, `assumed_lookup`) is not read from data but
assumed to spread the tokens evenly over the n choices, round robin: the j-th choice of token t
(tokens numbered over every other dimension, in order) is expert (t*k + j + c) mod n, where c
counts the routing calls of the capture (so a second `argmax` after masking the first choice,
as NLLB-MoE's top-2 router does, picks a different expert). Each expert then gets
floor(T*k/n) or ceil(T*k/n) of the T*k rows, and the k choices of one token are distinct (k <= n).
Everything computed from these indices (one-hot masks, capacity masks by cumsum, nonzero,
`torch.where`, `.tolist()`) is a known value (known.py), so the loop runs as it would for that
routing, and a capacity the model applies caps each expert's rows as it would.

With top-k routing and no capacity drop, the total work (every token visits k experts: T*k
expert rows) does not depend on the routing, so the totals are exact; how the rows split over
experts is the assumption. The capture reports it (CM009) for every block whose loop read an
assumed value. The indices are assumed for at most `ROUTING_CAP` elements; beyond that (or
outside such a block) a read still stops the capture.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..core.report import Diagnostic
from ..core.vocab import Code, Severity

#: Calls whose index output is an expert choice inside an MoE block.
ROUTERS = {torch.topk, Tensor.topk, torch.argmax, Tensor.argmax, torch.max, Tensor.max}
#: ... and those whose output may be one: the routers, and indexing (a lookup in a fixed table)
ROUTING_CALLS = frozenset(ROUTERS | {Tensor.__getitem__})
#: The most elements an assumed routing (and what is computed from it) keeps as known values.
ROUTING_CAP = 1 << 22


_MOE_CHILDREN = ("experts", "router")


def is_moe_block(children: dict[str, Any]) -> bool:
    """Whether a module with these children (`module._modules`) is an MoE block: it has a child
    named `experts` or `router` (JetMoE's MoE MLP keeps its experts as `input_linear` /
    `output_linear` beside a `router`)."""
    for child in _MOE_CHILDREN:   # a loop, not any(<generator>): asked of every module cloned
        if child in children and isinstance(children[child], nn.Module):
            return True
    return False


def moe_blocks(root: nn.Module) -> frozenset[str]:
    """Qualified names of the MoE blocks under `root` (`is_moe_block`)."""
    return frozenset(name for name, module in root.named_modules()
                     if is_moe_block(module._modules))


def expert_count(children: dict[str, Any]) -> int | None:
    """How many experts an MoE block's `experts` child holds: its `num_experts`, its length (a
    ModuleList or ModuleDict), or the first dimension its 3-D parameters share (experts stored
    as one tensor each); None when none of these says."""
    experts = children.get("experts")
    if not isinstance(experts, nn.Module):
        return None
    n = getattr(experts, "num_experts", None)
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        return n
    if isinstance(experts, (nn.ModuleList, nn.ModuleDict)):
        return len(experts) or None
    firsts = {p.shape[0] for p in experts._parameters.values() if p is not None and p.ndim == 3}
    return firsts.pop() if len(firsts) == 1 else None


def assumed_lookup(args: tuple, out: Any, offset: int, n: int | None
                   ) -> tuple[Tensor, Tensor, int, int, int] | None:
    """The routing of a lookup table (DeepSeek-V4's hash routing: `tid2eid[input_ids]`, a fixed
    token-id -> k expert ids table) read by `table[index]`: an integer (V, k) table indexed by
    integer token ids, inside an MoE block of n experts. The table is the checkpoint's, so its
    choices are as unknown as a router's; the same round robin is assumed (see the module
    docstring). None when the call is not such a lookup."""
    if n is None or len(args) < 2:
        return None
    table, index = args[0], args[1]
    if not (isinstance(table, Tensor) and isinstance(index, Tensor) and isinstance(out, Tensor)):
        return None
    ints = (torch.int64, torch.int32)
    if table.ndim != 2 or table.dtype not in ints or index.dtype not in ints:
        return None
    k, tokens = table.shape[1], index.numel()
    if not 1 <= k <= n or tuple(out.shape) != (*index.shape, k) or out.numel() > ROUTING_CAP:
        return None
    value = ((torch.arange(tokens * k) + offset) % n).reshape(out.shape).to(out.dtype)
    return out, value, tokens, n, k


def assumed_routing(func: Any, args: tuple, kwargs: dict, out: Any, offset: int,
                    n: int | None) -> tuple[Tensor, Tensor, int, int, int] | None:
    """assumed_lookup for indexing (with the block's expert count `n`), else assumed_choices."""
    if func is Tensor.__getitem__:
        return assumed_lookup(args, out, offset, n)
    return assumed_choices(func, args, kwargs, out, offset)


def _dim(func: Any, args: tuple, kwargs: dict) -> int | None:
    """The dimension a routing call chooses along, or None (a global argmax/max: no routing)."""
    if func in (torch.topk, Tensor.topk):
        return kwargs.get("dim", args[2] if len(args) > 2 else -1)
    dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
    return dim if isinstance(dim, int) and not isinstance(dim, bool) else None


def _indices(func: Any, out: Any) -> Tensor | None:
    if func in (torch.argmax, Tensor.argmax):
        return out if isinstance(out, Tensor) else None
    found = getattr(out, "indices", None)
    if found is None and isinstance(out, tuple) and len(out) == 2:
        found = out[1]
    return found if isinstance(found, Tensor) else None


def assumed_choices(func: Any, args: tuple, kwargs: dict, out: Any, offset: int
                    ) -> tuple[Tensor, Tensor, int, int, int] | None:
    """(the meta index output, its assumed value, tokens T, choices n, k) for a routing call,
    or None when the call is not a routing (no dim, no index output, too large)."""
    source = args[0] if args else kwargs.get("input")
    dim = _dim(func, args, kwargs)
    idx = _indices(func, out)
    if dim is None or idx is None or not isinstance(source, Tensor) or source.ndim == 0 or \
            idx.dtype != torch.int64 or idx.numel() > ROUTING_CAP:
        return None
    dim %= source.ndim
    n = source.shape[dim]
    other = [s for i, s in enumerate(source.shape) if i != dim]
    tokens = math.prod(other)
    k = idx.numel() // tokens if tokens else 0
    if n < 1 or k < 1 or k > n or tokens * k != idx.numel():
        return None
    value = (torch.arange(tokens * k).reshape(tokens, k) + offset) % n
    value = value.reshape(*other, k).movedim(-1, dim)
    if value.shape != idx.shape:
        value = value.reshape(idx.shape)   # argmax / max without keepdim: the k=1 dim is gone
    return idx, value, tokens, n, k


def diagnostics(routes: dict[str, tuple[int, int, int]], read: set[str]) -> list[Diagnostic]:
    """One CM009 per kind of MoE block (tokens, experts, k) whose experts loop read the assumed
    routing."""
    groups: dict[tuple[int, int, int], list[str]] = {}
    for block in sorted(read):
        if block in routes:
            groups.setdefault(routes[block], []).append(block)
    found = []
    for (tokens, n, k), blocks in groups.items():
        rows = tokens * k
        low, high = rows // n, -(-rows // n)
        share = f"{low:,}" if low == high else f"{low:,} or {high:,}"
        more = f" and {len(blocks) - 1} more like it" if len(blocks) > 1 else ""
        found.append(Diagnostic(
            Code.DATA_DEPENDENT, Severity.WARNING,
            f"the experts loop of MoE block '{blocks[0] or '(top level)'}'{more} reads the "
            f"router's choices, which depend on data: analysed assuming the router spreads the "
            f"{tokens:,} tokens evenly over its {n} experts (top-{k}: token t's j-th choice is "
            f"expert (t*{k} + j + c) mod {n}; each expert gets {share} of the {rows:,} rows, "
            f"less any the model's capacity drops). The "
            f"total expert work (every token visits {k} expert{'s' if k > 1 else ''}) does not "
            f"depend on the routing; the split over experts is the assumption",
            module=blocks[0]))
    return found
