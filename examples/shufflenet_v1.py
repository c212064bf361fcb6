"""ShuffleNet V1.

Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network
for Mobile Devices", arXiv:1707.01083 (2017).

The defaults reproduce "ShuffleNet 1x (g = 3)" of Table 1, which the paper
quotes at 140 MFLOPs (its "FLOPs" are multiply-adds; Table 1 itself lists
137M). ``groups`` picks a column of Table 1 (g = 1, 2, 3, 4, 8); ``scale`` is
the "ShuffleNet s x" multiplier of Table 2 (0.25, 0.5, 1.0, ...), applied to
every layer including the 24-channel stem. Widths that are then not divisible
by g are rounded down to a multiple of g (the paper leaves this open; at 1x
nothing is rounded).

Units follow Fig. 2: 1x1 group conv, BN, ReLU, channel shuffle, 3x3
depthwise conv, BN, 1x1 group conv, BN. Stride-1 units add the identity and
apply ReLU; stride-2 units concatenate a 3x3 average-pooled shortcut, then
apply ReLU. The bottleneck is a quarter of the stage's output channels, and
the first 1x1 conv of stage 2 is not grouped (its input has only 24 channels).
"""

import torch
from torch import nn

INPUT = "1x3x224x224"

# Output channels of stages 2-4 for each group count, Table 1.
STAGE_CHANNELS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
REPEATS = (3, 7, 3)  # stride-1 units per stage, after one stride-2 unit


def round_down(value: float, groups: int) -> int:
    """Largest multiple of ``groups`` not above ``value`` (at least ``groups``)."""
    return max(groups, int(value) // groups * groups)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(N, g*k, H, W) -> (N, k*g, H, W): interleave the channels of the groups."""
    n, h, w = x.size(0), x.size(2), x.size(3)
    x = x.view(n, groups, -1, h, w).transpose(1, 2).contiguous()
    return x.view(n, -1, h, w)


def conv_bn(
    inp: int, out: int, kernel: int, stride: int = 1, groups: int = 1
) -> list[nn.Module]:
    return [
        nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
    ]


class ShuffleUnit(nn.Module):
    def __init__(
        self, inp: int, out: int, stride: int, groups: int, group_first: bool = True
    ):
        super().__init__()
        self.groups = groups
        mid = round_down(out / 4, groups)
        branch_out = out - inp if stride == 2 else out
        self.reduce = nn.Sequential(
            *conv_bn(inp, mid, 1, groups=groups if group_first else 1),
            nn.ReLU(inplace=True),
        )
        self.depthwise = nn.Sequential(*conv_bn(mid, mid, 3, stride, groups=mid))
        self.expand = nn.Sequential(*conv_bn(mid, branch_out, 1, groups=groups))
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = channel_shuffle(self.reduce(x), self.groups)
        out = self.expand(self.depthwise(out))
        if self.shortcut is None:
            return self.relu(x + out)
        return self.relu(torch.cat([self.shortcut(x), out], dim=1))


class ShuffleNetV1(nn.Module):
    def __init__(self, groups: int = 3, scale: float = 1.0, num_classes: int = 1000):
        super().__init__()
        inp = round_down(24 * scale, groups)
        self.stem = nn.Sequential(
            *conv_bn(3, inp, 3, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        for i, (channels, repeats) in enumerate(
            zip(STAGE_CHANNELS[groups], REPEATS, strict=True)
        ):
            out = round_down(channels * scale, groups)
            units = [ShuffleUnit(inp, out, 2, groups, group_first=i > 0)]
            units += [ShuffleUnit(out, out, 1, groups) for _ in range(repeats)]
            stages.append(nn.Sequential(*units))
            inp = out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inp, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stages(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


def build(groups: int = 3, scale: float = 1.0, num_classes: int = 1000) -> nn.Module:
    if groups not in STAGE_CHANNELS:
        raise ValueError(
            f"groups must be one of {sorted(STAGE_CHANNELS)}, got {groups}"
        )
    return ShuffleNetV1(groups, scale, num_classes)
