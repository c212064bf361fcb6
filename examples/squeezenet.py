"""SqueezeNet.

Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters
and <0.5MB model size", arXiv:1602.07360 (2016).

The defaults reproduce SqueezeNet 1.0 of Table 1: 1,248,424 parameters
(the paper's "1.25M", 4.8MB uncompressed), no bypass connections.
``version="1_1"`` gives SqueezeNet 1.1 from the authors' repository (not in
the paper): a 3x3/64 first conv and earlier pooling, slightly fewer
parameters and ~2.4x less compute. The layer layout matches
torchvision.models.squeezenet1_0 / squeezenet1_1.
"""

import torch
from torch import nn

INPUT = "1x3x224x224"


class Fire(nn.Module):
    """1x1 squeeze conv, then concatenated 1x1 and 3x3 expand convs, all with ReLU."""

    def __init__(self, inp: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(inp, squeeze, 1), nn.ReLU(inplace=True))
        self.expand1x1 = nn.Sequential(
            nn.Conv2d(squeeze, expand1x1, 1), nn.ReLU(inplace=True)
        )
        self.expand3x3 = nn.Sequential(
            nn.Conv2d(squeeze, expand3x3, 3, padding=1), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat([self.expand1x1(x), self.expand3x3(x)], dim=1)


def pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


def features(version: str) -> list[nn.Module]:
    if version == "1_0":
        return [
            nn.Conv2d(3, 96, 7, stride=2),
            nn.ReLU(inplace=True),
            pool(),
            Fire(96, 16, 64, 64),
            Fire(128, 16, 64, 64),
            Fire(128, 32, 128, 128),
            pool(),
            Fire(256, 32, 128, 128),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            pool(),
            Fire(512, 64, 256, 256),
        ]
    if version == "1_1":
        return [
            nn.Conv2d(3, 64, 3, stride=2),
            nn.ReLU(inplace=True),
            pool(),
            Fire(64, 16, 64, 64),
            Fire(128, 16, 64, 64),
            pool(),
            Fire(128, 32, 128, 128),
            Fire(256, 32, 128, 128),
            pool(),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256),
        ]
    raise ValueError(f'version must be "1_0" or "1_1", got {version!r}')


class SqueezeNet(nn.Module):
    def __init__(self, version: str = "1_0", num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(*features(version))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5),
            nn.Conv2d(512, num_classes, 1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


def build(version: str = "1_0", num_classes: int = 1000) -> nn.Module:
    return SqueezeNet(version, num_classes)
