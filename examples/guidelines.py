"""The four guideline experiments of ShuffleNet V2 (Section 2, Tables 1-4).

Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", arXiv:1807.11164 (2018).

Each benchmark net repeats one block ``repeats`` (10) times on a 56x56 feature
map, batch 1. There is no stem or classifier, so the input channel count
depends on the configuration: every built model carries it as
``model.input_shape`` ("1xCx56x56"). ``INPUT`` is the shape of the default
``build()`` (G1, 1:1), which is also that of the defaults of G2 and G3.

- G1, ``build_g1(ratio, c1, repeats)`` (Table 1, "equal channel width
  minimizes MAC"): each block is two 1x1 convs, c1 -> c2 -> c1, with
  c1:c2 in {1:1, 1:2, 1:6, 1:12}. c1 defaults to the GPU widths of the
  table (128, 90, 52, 36) that hold c1*c2, hence FLOPs, nearly constant.
  Input 1 x c1 x 56 x 56.
- G2, ``build_g2(groups, channels, repeats)`` (Table 2, "excessive group
  convolution increases MAC"): each block is one c -> c 1x1 conv with
  ``groups`` groups; c defaults to 128, 180, 256, 360 for g = 1, 2, 4, 8,
  which holds c*c/g nearly constant. Input 1 x c x 56 x 56.
- G3, ``build_g3(structure, channels, repeats)`` (Table 3 and Appendix
  Fig. 1, "network fragmentation reduces degree of parallelism"): blocks of
  1, 2 or 4 1x1 convs. ``channels`` is c of the 1-fragment block (c -> c).
  "k-fragment-series" chains k convs c' -> c' with c' = int(c / sqrt(k))
  (90 and 64 for c = 128), so k*c'^2 ~ c^2. "k-fragment-parallel" runs k
  Inception-style 1x1 branches c -> c/k on the same input and concatenates
  them back to c channels, which has exactly the FLOPs of the 1-fragment
  block. (The paper only says the widths are "adjusted so that the FLOPs is
  the same"; concatenation is our reading of its Inception-like figure.)
  Input 1 x c' x 56 x 56 for series blocks, 1 x c x 56 x 56 otherwise.
- G4, ``build_g4(relu, shortcut, channels, repeats)`` (Table 4,
  "element-wise operations are non-negligible"): the ResNet bottleneck
  unit, 1x1 (channels -> channels/4), 3x3, 1x1 (back to channels), each conv
  followed by BatchNorm, ReLU after the first two convs and after the
  residual addition. ``relu=False`` drops all three ReLUs, ``shortcut=False``
  drops the identity addition. Table 4 sweeps "the number of channels in
  unit" c in {32, 64, 128}, read here as the bottleneck width c = channels/4;
  the default 256 -> 64 -> 256 (c = 64) is ResNet's conv2_x unit.
  Input 1 x channels x 56 x 56.

G1-G3 blocks are bare bias-free convs (no BN or ReLU), so that only the
property under test varies. ``PAPER_TABLES`` holds the paper's configurations
and measured GPU speeds for ranking comparisons.
"""

import math

import torch
from torch import nn

INPUT = "1x128x56x56"
SIZE = 56

G1_C1 = {"1:1": 128, "1:2": 90, "1:6": 52, "1:12": 36}
G2_CHANNELS = {1: 128, 2: 180, 4: 256, 8: 360}
G3_STRUCTURES = {  # name -> (number of fragments, arrangement)
    "1-fragment": (1, "series"),
    "2-fragment-series": (2, "series"),
    "4-fragment-series": (4, "series"),
    "2-fragment-parallel": (2, "parallel"),
    "4-fragment-parallel": (4, "parallel"),
}

# Speeds measured in the paper on a GTX 1080Ti in batches/sec (higher is
# faster), for the default widths of the builders above; "ranking" lists the
# labels fastest first. G4 uses the c = 64 column of Table 4; its labels name
# what the unit keeps ("none": neither ReLU nor shortcut).
# NOTE: transcribed without the PDF at hand; check exact values against
# arXiv:1807.11164 before relying on them.
PAPER_TABLES = {
    "g1": {
        "source": "arXiv:1807.11164, Table 1 (GPU, x1)",
        "rows": [
            {"label": "1:1", "kwargs": {"ratio": "1:1"}, "speed": 1480},
            {"label": "1:2", "kwargs": {"ratio": "1:2"}, "speed": 1296},
            {"label": "1:6", "kwargs": {"ratio": "1:6"}, "speed": 876},
            {"label": "1:12", "kwargs": {"ratio": "1:12"}, "speed": 748},
        ],
        "ranking": ["1:1", "1:2", "1:6", "1:12"],
    },
    "g2": {
        "source": "arXiv:1807.11164, Table 2 (GPU, x1)",
        "rows": [
            {"label": "g=1", "kwargs": {"groups": 1}, "speed": 2451},
            {"label": "g=2", "kwargs": {"groups": 2}, "speed": 1725},
            {"label": "g=4", "kwargs": {"groups": 4}, "speed": 1026},
            {"label": "g=8", "kwargs": {"groups": 8}, "speed": 634},
        ],
        "ranking": ["g=1", "g=2", "g=4", "g=8"],
    },
    "g3": {
        "source": "arXiv:1807.11164, Table 3 (GPU, c=128)",
        "rows": [
            {"label": s, "kwargs": {"structure": s}, "speed": v}
            for s, v in [
                ("1-fragment", 2446),
                ("2-fragment-series", 1790),
                ("4-fragment-series", 752),
                ("2-fragment-parallel", 1537),
                ("4-fragment-parallel", 691),
            ]
        ],
        "ranking": [
            "1-fragment",
            "2-fragment-series",
            "2-fragment-parallel",
            "4-fragment-series",
            "4-fragment-parallel",
        ],
    },
    "g4": {
        "source": "arXiv:1807.11164, Table 4 (GPU, c=64)",
        "rows": [
            {"label": label, "kwargs": {"relu": r, "shortcut": sc}, "speed": v}
            for label, r, sc, v in [
                ("relu+shortcut", True, True, 2066),
                ("relu", True, False, 2256),
                ("shortcut", False, True, 2121),
                ("none", False, False, 2376),
            ]
        ],
        "ranking": ["none", "relu", "shortcut", "relu+shortcut"],
    },
}


def conv1x1(inp: int, out: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inp, out, 1, groups=groups, bias=False)


def stack(block, repeats: int, channels: int) -> nn.Sequential:
    """``repeats`` fresh copies of ``block()``, tagged with their input shape."""
    model = nn.Sequential(*(block() for _ in range(repeats)))
    model.input_shape = f"1x{channels}x{SIZE}x{SIZE}"
    return model


def build_g1(ratio: str = "1:1", c1: int | None = None, repeats: int = 10) -> nn.Module:
    """G1: blocks of two 1x1 convs c1 -> c2 -> c1 with c1:c2 = ``ratio``."""
    left, right = (int(v) for v in ratio.split(":"))
    if c1 is None:
        if ratio not in G1_C1:
            raise ValueError(f"pass c1 for ratios outside {list(G1_C1)}")
        c1 = G1_C1[ratio]
    c2 = c1 * right // left
    return stack(lambda: nn.Sequential(conv1x1(c1, c2), conv1x1(c2, c1)), repeats, c1)


def build_g2(
    groups: int = 1, channels: int | None = None, repeats: int = 10
) -> nn.Module:
    """G2: c -> c 1x1 group convs with ``groups`` groups."""
    c = G2_CHANNELS[groups] if channels is None else channels
    return stack(lambda: conv1x1(c, c, groups), repeats, c)


class Parallel(nn.Module):
    """1x1 conv branches on the same input, concatenated along channels."""

    def __init__(self, channels: int, fragments: int):
        super().__init__()
        self.branches = nn.ModuleList(
            conv1x1(channels, channels // fragments) for _ in range(fragments)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def build_g3(
    structure: str = "1-fragment", channels: int = 128, repeats: int = 10
) -> nn.Module:
    """G3: 1, 2 or 4 1x1 convs in series or in parallel, FLOPs ~ ``channels``^2."""
    fragments, arrangement = G3_STRUCTURES[structure]
    if arrangement == "parallel":
        return stack(lambda: Parallel(channels, fragments), repeats, channels)
    c = int(channels / math.sqrt(fragments))
    return stack(
        lambda: nn.Sequential(*(conv1x1(c, c) for _ in range(fragments))), repeats, c
    )


class Bottleneck(nn.Module):
    """ResNet bottleneck 1x1-3x3-1x1 whose ReLUs and shortcut can be removed."""

    def __init__(self, channels: int, relu: bool = True, shortcut: bool = True):
        super().__init__()
        mid = channels // 4

        def conv_bn(inp: int, out: int, kernel: int, act: bool) -> list[nn.Module]:
            layers = [
                nn.Conv2d(inp, out, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm2d(out),
            ]
            return [*layers, nn.ReLU(inplace=True)] if act else layers

        self.body = nn.Sequential(
            *conv_bn(channels, mid, 1, relu),
            *conv_bn(mid, mid, 3, relu),
            *conv_bn(mid, channels, 1, False),
        )
        self.shortcut = shortcut
        self.relu = nn.ReLU(inplace=True) if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.shortcut:
            out = out + x
        if self.relu is not None:
            out = self.relu(out)
        return out


def build_g4(
    relu: bool = True, shortcut: bool = True, channels: int = 256, repeats: int = 10
) -> nn.Module:
    """G4: ResNet bottleneck units channels -> channels/4 -> channels."""
    return stack(lambda: Bottleneck(channels, relu, shortcut), repeats, channels)


BUILDERS = {"g1": build_g1, "g2": build_g2, "g3": build_g3, "g4": build_g4}


def build(experiment: str = "g1", **kwargs) -> nn.Module:
    """Dispatch to ``build_g1`` .. ``build_g4``; see the module docstring."""
    if experiment not in BUILDERS:
        raise ValueError(
            f"experiment must be one of {list(BUILDERS)}, got {experiment!r}"
        )
    return BUILDERS[experiment](**kwargs)
