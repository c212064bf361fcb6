"""MobileNet V2.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
arXiv:1801.04381 (2018).

The defaults reproduce the 1.0 / 224 network of Table 2: 300M multiply-adds
and 3.4M parameters (Table 4). ``width_mult`` scales every layer's channels,
rounded to a multiple of 8; the last 1x1 conv keeps 1280 channels for
multipliers below 1 (Section 6.1). The layer layout matches
torchvision.models.mobilenet_v2, so parameter counts agree exactly.
"""

import torch
from torch import nn

INPUT = "1x3x224x224"

# Expansion t, output channels c, repeats n, first stride s; Table 2.
SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never dropping more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn(
    inp: int, out: int, kernel: int, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expansion, 3x3 depthwise, linear 1x1 projection, residual if shapes match."""

    def __init__(self, inp: int, out: int, stride: int, expand: int):
        super().__init__()
        hidden = inp * expand
        self.residual = stride == 1 and inp == out
        layers = [conv_bn(inp, hidden, 1)] if expand != 1 else []
        layers += [
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000):
        super().__init__()
        inp = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers = [conv_bn(3, inp, 3, stride=2)]
        for expand, channels, repeats, stride in SETTINGS:
            out = make_divisible(channels * width_mult)
            for i in range(repeats):
                layers.append(
                    InvertedResidual(inp, out, stride if i == 0 else 1, expand)
                )
                inp = out
        layers.append(conv_bn(inp, last, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def build(width_mult: float = 1.0, num_classes: int = 1000) -> nn.Module:
    return MobileNetV2(width_mult, num_classes)
