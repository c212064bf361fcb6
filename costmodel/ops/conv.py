"""Bindings of the convolutions (standard, grouped, depthwise, transposed; 1d/2d/3d)."""
from __future__ import annotations

from .registry import bind
from .shape_rules import _conv

CONV = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
bind("conv", "torch.conv1d torch.conv2d torch.conv3d", CONV, shape=_conv)
bind("conv_transpose", "torch.conv_transpose1d torch.conv_transpose2d torch.conv_transpose3d",
     ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"))
