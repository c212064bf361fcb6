"""Bindings of data movement, embedding and tensor creation."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..core.vocab import OpFlag
from .registry import Binding, bind, bind_op, note
from .shape_rules import _cat, _embedding, _one_hot, empty


def _base(t: Tensor) -> Tensor:
    return t._base if t._base is not None else t


def _view_extra(b: dict, out: Any) -> dict:
    """A data-movement op is a view when every output aliases an input (or is the input)."""
    ids, bases = set(), set()
    for v in b.values():
        kind = type(v)
        if kind is Tensor or kind is not int and isinstance(v, Tensor):
            ids.add(id(v))
            bases.add(id(_base(v)))
        elif kind is list or kind is tuple or isinstance(v, (list, tuple)):
            for t in v:
                if isinstance(t, Tensor):
                    ids.add(id(t))
                    bases.add(id(_base(t)))
    if type(out) is Tensor:   # the common case: one output
        return {"is_view": id(out) in ids or out._is_view() and id(_base(out)) in bases}
    outs = out if isinstance(out, (list, tuple)) else (out,)
    is_view = all(isinstance(o, Tensor) and (id(o) in ids or o._is_view() and id(_base(o)) in bases)
                  for o in outs if o is not None)
    return {"is_view": is_view}


def _always_view(b: dict, out: Any) -> dict:
    return {"is_view": True}


bind("embedding", "F.embedding", ("input", "weight", "padding_idx", "max_norm", "norm_type",
                                  "scale_grad_by_freq", "sparse"), shape=_embedding)

MOVE = ("input", "*args")
DETACH, SUM_BACK, SCATTER_ADD, PASS_ON, CAPS = (OpFlag.DETACH, OpFlag.SUM_BACK, OpFlag.SCATTER_ADD,
                                                OpFlag.PASS_ON, OpFlag.CAPS_SIZES)


def _keeps_data(b: Binding, args: tuple, kwargs: dict) -> str:
    return f"{b.name} keeps a number of elements that depends on the data"


def _mask_index(b: Binding, args: tuple, kwargs: dict) -> str | None:
    """x[mask], x[mask] = v: a boolean (or uint8) index keeps a data-dependent number of
    elements."""
    if len(args) > 1:
        index = args[1] if isinstance(args[1], tuple) else (args[1],)
        if any(isinstance(i, Tensor) and i.dtype in (torch.bool, torch.uint8) for i in index):
            return ("indexing with a boolean mask keeps a number of elements that depends on "
                    "the data")
    return None


bind("view", "Tensor.detach Tensor.detach_ torch.detach", MOVE, extra=_always_view, flags=(DETACH,))
bind("view", "Tensor.requires_grad_ Tensor.__get__", MOVE, extra=_always_view)
# complex views (RoPE): (..., 2) float <-> (...) complex, and the .real / .imag properties
bind("view", "torch.view_as_complex torch.view_as_real Tensor.real Tensor.imag", MOVE,
     extra=_always_view)
# copies whose backward hands gy on as it is, or as views of it
bind("copy", "Tensor.view Tensor.view_as Tensor.reshape Tensor.reshape_as torch.reshape "
     "Tensor.flatten torch.flatten Tensor.unflatten torch.unflatten Tensor.contiguous "
     "Tensor.clone torch.clone", MOVE, extra=_view_extra, flags=(PASS_ON,))
# copies whose backward sums gy over the repeated or broadcast copies
bind("copy", "Tensor.expand Tensor.expand_as torch.broadcast_to Tensor.broadcast_to "
     "torch.broadcast_tensors Tensor.repeat Tensor.tile torch.tile Tensor.repeat_interleave "
     "torch.repeat_interleave", MOVE, extra=_view_extra, flags=(SUM_BACK,))
# copies whose backward scatter-adds gy into the input's gradient
bind("copy", "torch.take Tensor.take F.unfold", MOVE, extra=_view_extra, flags=(SCATTER_ADD,))
bind("copy", "torch.masked_select Tensor.masked_select", MOVE, extra=_view_extra,
     flags=(SCATTER_ADD,), sizes=_keeps_data)
bind("copy", "Tensor.__getitem__", MOVE, extra=_view_extra, flags=(SCATTER_ADD, CAPS),
     sizes=_mask_index)
bind("copy", "Tensor.narrow torch.narrow", MOVE, extra=_view_extra, flags=(CAPS,))
# the aten overload itself, as torch's own Python calls it (associative_scan's generic combine,
# which transformers' Mamba models take under a trace); a view
bind_op("copy", "aten::slice", MOVE, extra=_view_extra, flags=(CAPS,))
bind("copy", "Tensor.index_put_ Tensor.index_put", MOVE, extra=_view_extra, sizes=_mask_index)
# any other copy: its backward is the inverse copy
bind("copy", "Tensor.permute torch.permute "
     "Tensor.transpose torch.transpose Tensor.t torch.t Tensor.T Tensor.mT Tensor.squeeze "
     "torch.squeeze Tensor.unsqueeze torch.unsqueeze Tensor.select torch.select "
     "Tensor.unbind torch.unbind Tensor.split torch.split Tensor.split_with_sizes Tensor.chunk "
     "torch.chunk Tensor.tensor_split torch.tensor_split Tensor.movedim "
     "torch.movedim Tensor.moveaxis torch.moveaxis Tensor.swapaxes torch.swapaxes Tensor.swapdims "
     "Tensor.diagonal torch.diagonal Tensor.as_strided Tensor.unfold "
     "Tensor.roll torch.roll Tensor.flip torch.flip torch.fliplr "
     "torch.flipud torch.rot90 Tensor.to Tensor.type Tensor.type_as Tensor.float Tensor.half "
     "Tensor.double Tensor.bfloat16 Tensor.int Tensor.long Tensor.bool Tensor.cpu "
     "torch.meshgrid torch.atleast_1d torch.atleast_2d torch.atleast_3d "
     "torch.channel_shuffle torch.native_channel_shuffle F.channel_shuffle F.pixel_shuffle "
     "F.pixel_unshuffle torch.pixel_shuffle torch.pixel_unshuffle F.pad torch.constant_pad_nd "
     "F.fold Tensor.copy_ Tensor.fill_ Tensor.zero_",
     MOVE, extra=_view_extra)
bind("copy", "torch.cat torch.concat torch.concatenate", ("tensors", "dim"), shape=_cat,
     extra=_view_extra, flags=(PASS_ON,))
bind("copy", "torch.stack torch.hstack torch.vstack torch.dstack", ("tensors", "dim"),
     extra=_view_extra, flags=(PASS_ON,))
bind("copy", "torch.gather Tensor.gather torch.take_along_dim Tensor.take_along_dim",
     ("input", "dim", "index"), extra=_view_extra, flags=(SCATTER_ADD,))
bind("copy", "torch.index_select Tensor.index_select", ("input", "dim", "index"),
     extra=_view_extra, flags=(SCATTER_ADD,))
bind("copy", "torch.scatter Tensor.scatter Tensor.scatter_ torch.scatter_add Tensor.scatter_add "
     "Tensor.scatter_add_ Tensor.index_add Tensor.index_add_ Tensor.index_copy "
     "Tensor.index_copy_", ("input", "dim", "index", "src"), extra=_view_extra)

bind("scatter_reduce", "torch.scatter_reduce Tensor.scatter_reduce Tensor.scatter_reduce_",
     ("input", "dim", "index", "src", "reduce", "include_self"), extra=_view_extra)
bind("scatter_reduce", "torch.index_reduce Tensor.index_reduce Tensor.index_reduce_",
     ("input", "dim", "index", "src", "reduce", "include_self"), keywords={"source": "src"},
     extra=_view_extra)
# input with its masked positions taken, in order, from source: a copy
bind("copy", "torch.masked_scatter Tensor.masked_scatter Tensor.masked_scatter_",
     ("input", "mask", "source"), extra=_view_extra)

bind("create", "torch.zeros torch.ones torch.full torch.empty torch.arange torch.linspace "
     "torch.logspace torch.eye torch.rand torch.randn torch.randint torch.randperm torch.tensor "
     "torch.as_tensor torch.scalar_tensor torch.empty_strided torch.tril_indices "
     "torch.triu_indices", ("*args",), create=True)
bind("create", "torch.zeros_like torch.ones_like torch.full_like torch.empty_like "
     "torch.rand_like torch.randn_like torch.randint_like Tensor.new_zeros Tensor.new_ones "
     "Tensor.new_full Tensor.new_empty Tensor.new_tensor", ("like", "*args"))

# x[index] = value writes into a region of x and returns None: record the region as the output.
bind("copy", "Tensor.__setitem__", ("dest", "index", "value"),
     result=lambda b, out: b["dest"][b["index"]], extra=lambda b, out: {"is_view": False},
     sizes=_mask_index)

# The indices of the nonzero elements: as many rows as the data has nonzeros; the eager capture
# takes the static upper bound (every element), reported as CM009, unless the data is known.
bind("nonzero", "torch.nonzero Tensor.nonzero torch.argwhere Tensor.argwhere",
     ("input", "out", "as_tuple"), sizes=_keeps_data)
# Sizes that depend on tensor values, of ops costmodel has no formula for (they stay unsupported),
# and of unique (costed below).
note("torch.bincount", sizes=_keeps_data)
# the distinct values (sorted), and optionally the inverse indices and the counts
def _unique(b: dict) -> Any:
    """torch.unique has no meta kernel: its static upper bound, every element distinct (n values
    of the flattened input; the inverse has the input's shape, the counts n); with `dim`, torch
    decides (None)."""
    x = b.get("input")
    if not isinstance(x, Tensor) or b.get("dim") is not None:
        return None
    n = x.numel()
    values = empty((n,), x.dtype)
    extra = ((empty(tuple(x.shape), torch.int64),) if b.get("return_inverse") else ()) + (
        (empty((n,), torch.int64),) if b.get("return_counts") else ())
    return (values, *extra) if extra else values


bind("unique", "torch.unique Tensor.unique", ("input", "sorted", "return_inverse", "return_counts",
                                              "dim"), sizes=_keeps_data, shape=_unique)
bind("unique_consecutive", "torch.unique_consecutive Tensor.unique_consecutive",
     ("input", "return_inverse", "return_counts", "dim"), sizes=_keeps_data, shape=_unique)


# num_classes=-1 takes the size from the data's largest index: no shape rule answers it, and
# torch's meta kernel stops the capture with costmodel's "reads a tensor's value" error.
bind("one_hot", "F.one_hot", ("input", "num_classes"), shape=_one_hot)
