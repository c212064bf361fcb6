"""The networks calibration times: small synthetic blocks built by costmodel itself from a seed,
never a user's model nor a scored one.

- `synthetic_block(seed)`: a few units of one kind on one map size (14-56 px, 16-192 channels)
  or a few transformer / ConvNeXt blocks. Small and quick: many of them, half to fit and half
  held out, separate the terms of the estimate (measure._fit_blocks).

torch is imported inside the functions.
"""
from __future__ import annotations

import random
from types import SimpleNamespace

#: the convolutional kinds of unit, and the token kinds (synthetic_block draws among all nine)
CONV_KINDS = ("basic", "inverted", "inverted-se", "shuffle", "plain", "group", "resnext")
TOKEN_KINDS = ("transformer", "convnext")
#: map sizes of the convolutional synthetic blocks
BLOCK_SIZES = (14, 28, 56)

_KIT: SimpleNamespace | None = None


def _kit() -> SimpleNamespace:
    """The module classes of the synthetic blocks (defined on first use, when torch is
    imported)."""
    global _KIT
    if _KIT is not None:
        return _KIT
    import torch
    from torch import nn

    class Residual(nn.Module):
        def __init__(self, body, post=None):
            super().__init__()
            self.body, self.post = nn.Sequential(*body), post

        def forward(self, x):
            y = self.body(x) + x
            return self.post(y) if self.post is not None else y

    class SE(nn.Module):
        def __init__(self, ch):
            super().__init__()
            mid = max(8, ch // 4)
            self.pool, self.fc1 = nn.AdaptiveAvgPool2d(1), nn.Conv2d(ch, mid, 1)
            self.fc2, self.act, self.gate = nn.Conv2d(mid, ch, 1), nn.ReLU(), nn.Hardsigmoid()

        def forward(self, x):
            return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))

    class Shuffle(nn.Module):
        def __init__(self, branch):
            super().__init__()
            self.branch = branch

        def forward(self, x):
            a, b = x.chunk(2, dim=1)
            y = torch.cat((a, self.branch(b)), dim=1)
            n, ch, h, w = y.shape
            return y.view(n, 2, ch // 2, h, w).transpose(1, 2).contiguous().view(n, ch, h, w)

    class ChannelShuffle(nn.Module):
        def __init__(self, groups):
            super().__init__()
            self.groups = groups

        def forward(self, x):
            n, ch, h, w = x.shape
            return (x.view(n, self.groups, ch // self.groups, h, w).transpose(1, 2)
                    .contiguous().view(n, ch, h, w))

    class Head(nn.Module):
        def __init__(self, ch):
            super().__init__()
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(ch, 1000)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(x), 1))

    class Attention(nn.Module):
        """A pre-norm transformer block, attention written out with reshapes and permutes."""
        def __init__(self, dim):
            super().__init__()
            self.dim, self.heads = dim, dim // 32
            self.norm1, self.qkv, self.proj = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), \
                nn.Linear(dim, dim)
            self.norm2, self.fc1, self.act, self.fc2 = nn.LayerNorm(dim), \
                nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)

        def forward(self, x):
            b, t, _ = x.shape
            dim, heads = self.dim, self.heads
            q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, heads, dim // heads) \
                .permute(2, 0, 3, 1, 4).unbind(0)
            a = torch.softmax(q @ k.transpose(-2, -1) * (dim // heads) ** -0.5, dim=-1)
            x = x + self.proj((a @ v).transpose(1, 2).reshape(b, t, dim))
            return x + self.fc2(self.act(self.fc1(self.norm2(x))))

    class ConvNeXt(nn.Module):
        """7x7 depthwise conv, channels-last layer norm, GELU MLP, residual."""
        def __init__(self, dim):
            super().__init__()
            self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
            self.norm, self.fc1, self.act, self.fc2 = nn.LayerNorm(dim), \
                nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)

        def forward(self, x):
            y = self.norm(self.dw(x).permute(0, 2, 3, 1))
            return x + self.fc2(self.act(self.fc1(y))).permute(0, 3, 1, 2)

    _KIT = SimpleNamespace(Residual=Residual, SE=SE, Shuffle=Shuffle,
                           ChannelShuffle=ChannelShuffle, Head=Head, Attention=Attention,
                           ConvNeXt=ConvNeXt)
    return _KIT


def _cba(act):
    """conv (bias-free) + batch norm (+ activation) layers, with activation class `act`."""
    from torch import nn

    def cba(cin, cout, k=1, groups=1, activation=True, stride=1):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        return layers + ([act()] if activation else [])
    return cba


def _conv_units(rng: random.Random, kind: str, c: int, units: int, act) -> list:
    """`units` units of `kind` on `c` channels (shape-preserving)."""
    from torch import nn
    kit, cba = _kit(), _cba(act)
    layers: list = []
    for _ in range(units):
        if kind == "basic":
            layers.append(kit.Residual(cba(c, c, 3) + cba(c, c, 3, activation=False),
                                       nn.ReLU()))
        elif kind == "shuffle":
            half = c // 2
            layers.append(kit.Shuffle(nn.Sequential(*cba(half, half),
                                                    *cba(half, half, 3, half, False),
                                                    *cba(half, half))))
        elif kind == "group":                       # ShuffleNet V1 units
            g = rng.choice((2, 3, 4, 8))
            ch = g * max(2, c // g)
            layers.append(kit.Residual(cba(ch, ch, 1, g) + [kit.ChannelShuffle(g)]
                                       + cba(ch, ch, 3, ch, False) + cba(ch, ch, 1, g, False),
                                       nn.ReLU()) if ch == c else nn.Conv2d(c, c, 1, bias=False))
        elif kind == "resnext":
            per_group = rng.choice((4, 8, 16, 32))
            wide = per_group * max(2, c // per_group)
            layers.append(kit.Residual(cba(c, wide) + cba(wide, wide, 3, wide // per_group)
                                       + cba(wide, c, activation=False), nn.ReLU()))
        elif kind == "plain":                       # bare convs, as in the paper's G1-G3 nets
            wide = c * rng.choice((1, 2, 4))
            k = rng.choice((1, 1, 3))
            layers += [nn.Conv2d(c, wide, k, padding=k // 2, bias=False),
                       nn.Conv2d(wide, c, 1, bias=False)]
        else:
            e = c * rng.choice((3, 4, 6))
            body = cba(c, e) + cba(e, e, rng.choice((3, 5)), e)
            body += [kit.SE(e)] if kind == "inverted-se" else []
            layers.append(kit.Residual(body + cba(e, c, activation=False)))
    return layers


def synthetic_block(seed: int):
    """A small network of one seeded random kind, and its input shape: stacks of ResNet basic
    units, inverted residuals (ReLU / Hardswish / SiLU, with or without squeeze-excite),
    ShuffleNet V2 units, ShuffleNet V1 units (grouped 1x1 convs), ResNeXt units (grouped 3x3
    convs) or bare convs, on 14-56 px maps with 16-192 channels, sometimes with a pooled linear
    head; or pre-norm transformer blocks (attention written out, GELU MLP) on 49-197 tokens of
    96-384 features, or ConvNeXt blocks (7x7 depthwise conv, channels-last layer norm and MLP).
    Built by costmodel for calibration; never a user's model."""
    from torch import nn
    rng = random.Random(seed)
    c = rng.choice((16, 24, 32, 48, 64, 96, 128, 192))
    size = rng.choice(BLOCK_SIZES)
    units = rng.randint(2, 5)
    kind = rng.choice(CONV_KINDS + TOKEN_KINDS)
    act = rng.choice((nn.ReLU, nn.Hardswish, nn.SiLU))
    if kind in TOKEN_KINDS:
        return _token_block(rng, kind, units)
    layers = _conv_units(rng, kind, c, units, act)
    if rng.random() < 0.3:
        layers.append(_kit().Head(c))
    return nn.Sequential(*layers).eval(), (1, c, size, size)


def _token_block(rng: random.Random, kind: str, units: int):
    """Transformer blocks (pre-norm, attention written out with reshapes and permutes, a GELU
    MLP) on (1, tokens, dim), or ConvNeXt blocks on (1, dim, size, size)."""
    from torch import nn
    kit = _kit()
    dim = rng.choice((96, 192, 384))
    if kind == "transformer":
        tokens = rng.choice((49, 50, 197))
        return nn.Sequential(*(kit.Attention(dim) for _ in range(units))).eval(), \
            (1, tokens, dim)
    size = rng.choice((7, 14, 28))
    return nn.Sequential(*(kit.ConvNeXt(dim) for _ in range(units))).eval(), (1, dim, size, size)

