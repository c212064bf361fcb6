"""MobileNet V1.

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
Vision Applications", arXiv:1704.04861 (2017).

The defaults reproduce "1.0 MobileNet-224" (Table 1 body): 569M multiply-adds
and 4.2M parameters (Tables 6 and 7). ``width_mult`` is the width multiplier
alpha of Table 6 (0.75, 0.5, 0.25). ``resolution`` is the resolution of
Table 7 (224, 192, 160, 128): it is the input size to analyse with, not a
weight-shape parameter (the net ends in global average pooling). It is stored
on the model as ``model.resolution`` and ``model.input_shape``
("1x3x{r}x{r}"); ``INPUT`` is the 224 default.

Every conv is bias-free and followed by BatchNorm + ReLU, as in Fig. 3.
"""

import torch
from torch import nn

INPUT = "1x3x224x224"

# (output channels, stride) of each depthwise separable layer, Table 1.
LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
LAYERS += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def conv_bn(
    inp: int, out: int, kernel: int, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU(inplace=True),
    )


def separable(inp: int, out: int, stride: int) -> nn.Sequential:
    """3x3 depthwise conv then 1x1 pointwise conv, each with BN + ReLU."""
    return nn.Sequential(conv_bn(inp, inp, 3, stride, groups=inp), conv_bn(inp, out, 1))


class MobileNetV1(nn.Module):
    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000):
        super().__init__()
        width = 32
        layers = [conv_bn(3, int(width * width_mult), 3, stride=2)]
        for out, stride in LAYERS:
            layers.append(
                separable(int(width * width_mult), int(out * width_mult), stride)
            )
            width = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(int(width * width_mult), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.fc(torch.flatten(x, 1))


def build(
    width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000
) -> nn.Module:
    model = MobileNetV1(width_mult, num_classes)
    model.resolution = resolution
    model.input_shape = f"1x3x{resolution}x{resolution}"
    return model
