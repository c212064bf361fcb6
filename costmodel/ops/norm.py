"""Bindings of the normalisation layers."""
from __future__ import annotations

from .registry import bind
from .shape_rules import _same, _weight_norm

bind("batch_norm", "F.batch_norm", ("input", "running_mean", "running_var", "weight", "bias",
                                    "training", "momentum", "eps"), shape=_same)
bind("layer_norm", "F.layer_norm", ("input", "normalized_shape", "weight", "bias", "eps"),
     shape=_same)
bind("group_norm", "F.group_norm", ("input", "num_groups", "weight", "bias", "eps"), shape=_same)
bind("instance_norm", "F.instance_norm", ("input", "running_mean", "running_var", "weight", "bias",
                                          "use_input_stats", "momentum", "eps"), shape=_same)
bind("rms_norm", "F.rms_norm", ("input", "normalized_shape", "weight", "eps"), shape=_same)
bind("normalize", "F.normalize", ("input", "p", "dim", "eps", "out"), shape=_same)
bind("local_response_norm", "F.local_response_norm", ("input", "size", "alpha", "beta", "k"),
     shape=_same)
bind("weight_norm", "torch._weight_norm", ("v", "g", "dim"), shape=_weight_norm)
