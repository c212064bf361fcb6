"""Data movement, embedding and tensor creation: 0 FLOPs, MAC only where data really moves.

The rule (docs/conventions.md, "Data movement"): an op whose output is a view of its input (view,
reshape of a contiguous tensor, flatten, permute, transpose, expand, split, chunk, basic indexing)
moves nothing and costs nothing. An op that writes a new tensor (cat, stack, contiguous or reshape
after a permute, channel shuffle, pad, repeat, gather) reads what it copies, at most what it
writes, and writes its output. Index tensors are read in full. `x[i] = v` writes the region x[i]
and reads v (the destination is not read).
"""
from __future__ import annotations

from ...core.cost import Cost
from ...core.vocab import Category
from ..registry import OpCall, formula, params_of, simple_cost

INDEX_ARGS = ("index", "indices", "mask")


def copy_mac(call: OpCall) -> tuple[int, int]:
    """(elements, bytes) of a copy: min(data read, written) read + index tensors read + written;
    the bytes read are capped at the elements written times the widest input element."""
    data = [s for name, v in call.tensors.items() if name not in INDEX_ARGS + ("dest",)
            for s in (v if isinstance(v, tuple) else (v,)) if s is not None]
    index = [s for name in INDEX_ARGS if (s := call.t(name)) is not None]
    writes = sum(o.numel for o in call.outputs)
    write_bytes = sum(o.numel * o.itemsize for o in call.outputs)
    data_reads = sum(s.reads for s in data)
    reads = min(data_reads, writes)
    # at most what it writes, in elements, each read at its own width (x.to(uint8) reads 4 bytes
    # per element written, x.half() 4, x.float() of a uint8 tensor 1)
    read_bytes = min(sum(s.reads * s.itemsize for s in data),
                     writes * max((s.itemsize for s in data), default=0))
    reads += sum(s.reads for s in index)
    read_bytes += sum(s.reads * s.itemsize for s in index)
    return reads + writes, read_bytes + write_bytes


@formula("view", "copy", category=Category.DATA_MOVEMENT)
def data_movement(call: OpCall) -> Cost:
    """0 FLOPs. A view costs nothing; a copy reads at most what it writes and writes its output.
    A parameter read through a view (ViT's `class_token.expand(...)`) still counts as read here."""
    if call.attr("is_view", False):
        return Cost(params=params_of(*call.inputs()))
    mac, mac_bytes = copy_mac(call)
    return Cost(0, 0, params_of(*call.inputs()), mac, mac_bytes)


@formula("embedding", category=Category.EMBEDDING)
def embedding(call: OpCall) -> Cost:
    """0 FLOPs; MAC = indices read + one weight row read per index + output written."""
    idx, weight, out = call.t("input"), call.t("weight"), call.out
    mac = idx.reads + 2 * out.numel
    mac_bytes = idx.reads * idx.itemsize + 2 * out.numel * out.itemsize
    return Cost(0, 0, params_of(weight), mac, mac_bytes)


@formula("create", category=Category.CREATION)
def create(call: OpCall) -> Cost:
    """zeros/ones/arange/full...: 0 FLOPs; MAC = the output written."""
    writes = sum(o.numel for o in call.outputs)
    return Cost(0, 0, 0, writes, sum(o.numel * o.itemsize for o in call.outputs))


@formula("one_hot", category=Category.DATA_MOVEMENT)
def one_hot(call: OpCall) -> Cost:
    """0 FLOPs: the output (zeros and one 1 per index) is written; MAC = indices read + output
    written."""
    x, out = call.t("input"), call.out
    return Cost(0, 0, 0, x.reads + out.numel, x.reads * x.itemsize + out.numel * out.itemsize)


@formula("nonzero", category=Category.DATA_MOVEMENT)
def nonzero(call: OpCall) -> Cost:
    """The indices of the nonzero elements: FLOPs = 1 compare per input element; MAC = input read +
    indices written (the output is as large as the eager capture assumed: every element, the
    upper bound, unless the data was known)."""
    x = call.t("input")
    writes = sum(o.numel for o in call.outputs)
    write_bytes = sum(o.numel * o.itemsize for o in call.outputs)
    return Cost(0, x.numel, 0, x.reads + writes, x.reads * x.itemsize + write_bytes)


@formula("scatter_reduce", category=Category.REDUCTION)
def scatter_reduce(call: OpCall) -> Cost:
    """scatter_reduce / index_reduce: each source element is combined into the output element its
    index names (sum, prod, amax, amin, mean): FLOPs = 1 per source element, plus 1 per output
    element for "mean" (the division by each count); MAC = input, index and source read + output
    written."""
    src, out = call.t("src"), call.out
    flops = (src.numel if src is not None else 0) + (out.numel if call.attr("reduce") == "mean"
                                                     else 0)
    return simple_cost(call, flops=flops)


@formula("unique", "unique_consecutive", category=Category.DATA_MOVEMENT)
def unique(call: OpCall) -> Cost:
    """torch.unique: a sort (1 FLOP per element, as `sort` everywhere in costmodel) then one
    compare of each element with its neighbour: FLOPs = 2 per input element; unique_consecutive
    only compares: 1 per input element. MAC = input read + every output written (the values, and
    the inverse indices and counts when asked; as many values as the eager capture assumed:
    every element, unless the data was known)."""
    x = call.t("input")
    return simple_cost(call, flops=(2 if call.op == "unique" else 1) * x.numel)
