"""ShuffleNet V2.

Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", arXiv:1807.11164 (2018).

The defaults reproduce "ShuffleNet v2 1x" of Table 5: 146M multiply-adds
(the paper's "FLOPs") and 2.3M parameters. ``width_mult`` selects the other
columns of Table 5: 0.5x (41M, 1.4M), 1.5x (299M, 3.5M), 2x (591M, 7.4M).

Units follow Fig. 3(c)/(d): a stride-1 unit splits the channels in two halves,
passes one through 1x1 conv - 3x3 depthwise conv - 1x1 conv and concatenates it
with the untouched half; a stride-2 unit feeds the whole input to two branches
(3x3 depthwise - 1x1 and 1x1 - 3x3 depthwise - 1x1, both stride 2). Every unit
ends with a 2-group channel shuffle. The layer layout matches
torchvision.models.shufflenet_v2_x*, so parameter counts agree exactly.
"""

import torch
from torch import nn

INPUT = "1x3x224x224"

# Output channels of stages 2-4 and of conv5, Table 5.
STAGE_CHANNELS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}
REPEATS = (4, 8, 4)  # units per stage, the first with stride 2


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(N, g*k, H, W) -> (N, k*g, H, W): interleave the channels of the groups."""
    n, h, w = x.size(0), x.size(2), x.size(3)
    x = x.view(n, groups, -1, h, w).transpose(1, 2).contiguous()
    return x.view(n, -1, h, w)


def pointwise(inp: int, out: int) -> list[nn.Module]:
    """1x1 conv + BN + ReLU."""
    return [
        nn.Conv2d(inp, out, 1, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU(inplace=True),
    ]


def depthwise(channels: int, stride: int) -> list[nn.Module]:
    """3x3 depthwise conv + BN, no ReLU."""
    return [
        nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False),
        nn.BatchNorm2d(channels),
    ]


class ShuffleUnit(nn.Module):
    def __init__(self, inp: int, out: int, stride: int):
        super().__init__()
        self.stride = stride
        half = out // 2
        if stride == 2:
            self.left = nn.Sequential(*depthwise(inp, stride), *pointwise(inp, half))
        else:
            inp = half  # the unit only transforms the right half of its input
        self.right = nn.Sequential(
            *pointwise(inp, half), *depthwise(half, stride), *pointwise(half, half)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            out = torch.cat([self.left(x), self.right(x)], dim=1)
        else:
            left, right = x.chunk(2, dim=1)
            out = torch.cat([left, self.right(right)], dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000):
        super().__init__()
        *stage_channels, last = STAGE_CHANNELS[width_mult]
        self.stem = nn.Sequential(
            nn.Conv2d(3, 24, 3, 2, 1, bias=False),
            nn.BatchNorm2d(24),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages, inp = [], 24
        for out, repeats in zip(stage_channels, REPEATS, strict=True):
            units = [ShuffleUnit(inp, out, 2)]
            units += [ShuffleUnit(out, out, 1) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            inp = out
        self.stages = nn.Sequential(*stages)
        self.conv5 = nn.Sequential(*pointwise(inp, last))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv5(self.stages(self.stem(x))))
        return self.fc(torch.flatten(x, 1))


def build(width_mult: float = 1.0, num_classes: int = 1000) -> nn.Module:
    if width_mult not in STAGE_CHANNELS:
        raise ValueError(
            f"width_mult must be one of {sorted(STAGE_CHANNELS)}, got {width_mult}"
        )
    return ShuffleNetV2(width_mult, num_classes)
