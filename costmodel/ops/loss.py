"""Bindings of the loss functions (torch.nn.functional)."""
from __future__ import annotations

from .registry import bind

_OLD = ("size_average", "reduce", "reduction")   # size_average / reduce: deprecated spellings
bind("mse_loss", "F.mse_loss", ("input", "target", *_OLD, "weight"))
bind("l1_loss", "F.l1_loss", ("input", "target", *_OLD, "weight"))
bind("smooth_l1_loss", "F.smooth_l1_loss", ("input", "target", *_OLD, "beta"))
bind("smooth_l1_loss", "F.huber_loss", ("input", "target", "reduction", "delta", "weight"))
bind("binary_cross_entropy", "F.binary_cross_entropy",
     ("input", "target", "weight", *_OLD))
bind("binary_cross_entropy_with_logits", "F.binary_cross_entropy_with_logits",
     ("input", "target", "weight", *_OLD, "pos_weight"))
bind("cross_entropy", "F.cross_entropy",
     ("input", "target", "weight", "size_average", "ignore_index", "reduce", "reduction",
      "label_smoothing"))
bind("nll_loss", "F.nll_loss",
     ("input", "target", "weight", "size_average", "ignore_index", "reduce", "reduction"))
bind("kl_div", "F.kl_div", ("input", "target", *_OLD, "log_target"))
