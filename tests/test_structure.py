"""Kernels, critical path, parallelism and fragments (ShuffleNet V2, G3), on the paper's G3 nets
(examples/guidelines.py), toy blocks and torchvision's ResNets / GoogLeNet."""
from __future__ import annotations

import importlib.util
import pathlib

import pytest
import torch
from torch import nn

import costmodel
from costmodel import structure

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
C, HW, REPEATS = 16, 8, 3


def example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


G3 = example("guidelines")


def g3_report(name: str):
    model = G3.build_g3(name, channels=C, repeats=REPEATS)
    channels = model.input_shape.split("x")[1]
    return costmodel.analyze(model, f"1x{channels}x{HW}x{HW}")


# (structure, fragments, branches, longest chain, kernels per block, critical-path kernels per
# block). Series blocks: k convs one after another. Parallel blocks: k convs on one input, then
# a cat that joins them (a kernel, but not a fragment): k + 1 kernels, 2 on the critical path.
PAPER_G3 = [
    ("1-fragment", 1, 1, 1, 1, 1),
    ("2-fragment-series", 2, 1, 2, 2, 2),
    ("4-fragment-series", 4, 1, 4, 4, 4),
    ("2-fragment-parallel", 2, 2, 1, 2 + 1, 1 + 1),
    ("4-fragment-parallel", 4, 4, 1, 4 + 1, 1 + 1),
]


@pytest.mark.parametrize("name, fragments, branches, chain, kernels, serial", PAPER_G3)
def test_paper_g3_blocks(name, fragments, branches, chain, kernels, serial):
    report = g3_report(name)
    blocks = structure.blocks(report.graph, depth=1)
    assert [b.path for b in blocks] == [str(i) for i in range(REPEATS)]
    for b in blocks:
        assert (b.fragments, b.branches, b.longest_chain) == (fragments, branches, chain)
        assert (b.kernels, b.serial_kernels) == (kernels, serial)


@pytest.mark.parametrize("name, fragments, branches, chain, kernels, serial", PAPER_G3)
def test_paper_g3_model(name, fragments, branches, chain, kernels, serial):
    s = structure.model_structure(g3_report(name).graph)
    assert s.kernels == REPEATS * kernels
    assert s.critical_path_kernels == REPEATS * serial
    assert s.parallelism == pytest.approx(kernels / serial)
    assert sum(s.width_profile) == s.kernels
    assert s.max_width == branches
    assert len(s.critical_path) == s.critical_path_kernels


def test_repeated_blocks_found_without_depth():
    """Blocks of more than one anchor in a stage of repeats are found without a depth."""
    assert structure.find_blocks(g3_report("4-fragment-parallel").graph) == ["0", "1", "2"]
    assert structure.find_blocks(g3_report("2-fragment-series").graph) == ["0", "1", "2"]


class SeparableBlock(nn.Module):
    """dw 3x3 -> BN -> 1x1 conv (one fragment), then a 1x1 group conv after a dw (two)."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.dw1, self.bn1 = nn.Conv2d(c, c, 3, 1, 1, groups=c), nn.BatchNorm2d(c)
        self.pw1 = nn.Conv2d(c, c, 1)
        self.dw2, self.gpw = nn.Conv2d(c, c, 3, 1, 1, groups=c), nn.Conv2d(c, c, 1, groups=2)

    def forward(self, x):
        x = torch.relu(self.pw1(self.bn1(self.dw1(x))))
        return self.gpw(self.dw2(x)) + x


def test_depthwise_separable_is_one_fragment():
    g = costmodel.analyze(SeparableBlock().eval(), "1x8x8x8").graph
    b = structure.block_structure(g, "")
    # dw1+pw1 fuse (dense 1x1 after a depthwise); dw2 and the group conv gpw stay apart.
    assert (b.fragments, b.branches, b.longest_chain) == (1 + 2, 1, 3)
    # kernels: dw1, bn1, pw1, relu, dw2, gpw, add
    assert b.kernels == 7 and b.serial_kernels == 7


def test_views_are_not_kernels():
    class Views(nn.Module):
        def forward(self, x):
            return torch.relu(x.view(1, -1).transpose(0, 1).reshape(-1))

    g = costmodel.analyze(Views(), "1x4x4").graph
    assert structure.kernels(g) == {next(d.name for d in g if d.target == "torch.relu"): 1}


def test_critical_path_in_time_follows_the_weights():
    report = g3_report("2-fragment-parallel")
    g = report.graph
    convs = [d.name for d in g if d.target == "Conv2d"]
    weight = {n: 1.0 for n in structure.kernels(g)}
    weight[convs[1]] = 10.0                    # make the second branch of block 0 the slow one
    length, path = structure.critical_path(g, weight)
    assert convs[1] in path and convs[0] not in path
    assert length == 10.0 + (REPEATS * 2 - 1) * 1.0


@pytest.fixture(scope="module")
def torchvision_models():
    return pytest.importorskip("torchvision").models


@pytest.mark.parametrize("name, identity, projection", [
    ("resnet18", 2, 3),     # BasicBlock: two 3x3 convs (+1 with a 1x1 projection shortcut)
    ("resnet50", 3, 4),     # Bottleneck: 1x1, 3x3, 1x1 (+1 with a projection shortcut)
])
def test_resnet_blocks_have_2_to_4_fragments(meta_builder, torchvision_models, name, identity,
                                             projection):
    """The paper: 'ResNet has 2-3 fragments per block'; with the projection shortcut counted, the
    first block of each stage has one more."""
    report = costmodel.analyze(meta_builder(getattr(torchvision_models, name)), "1x3x64x64")
    blocks = structure.blocks(report.graph)
    depth = {"resnet18": (2, 2, 2, 2), "resnet50": (3, 4, 6, 3)}[name]
    assert [b.path for b in blocks] == [f"layer{i + 1}.{j}" for i, n in enumerate(depth)
                                        for j in range(n)]
    with_projection = {"layer2.0", "layer3.0", "layer4.0"}
    if name == "resnet50":                                   # 64 -> 256 channels: projected too
        with_projection.add("layer1.0")
    for b in blocks:
        expected = projection if b.path in with_projection else identity
        assert b.fragments == expected, b
        assert b.branches == (2 if b.path in with_projection else 1)
        assert b.longest_chain == identity


def test_inception_modules_are_blocks(meta_builder, torchvision_models):
    model = meta_builder(torchvision_models.googlenet, aux_logits=False, init_weights=False)
    report = costmodel.analyze(model, "1x3x64x64")
    blocks = structure.blocks(report.graph)
    assert [b.path for b in blocks] == ["inception3a", "inception3b", "inception4a",
                                        "inception4b", "inception4c", "inception4d",
                                        "inception4e", "inception5a", "inception5b"]
    # branches: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | maxpool -> 1x1
    for b in blocks:
        assert (b.fragments, b.branches, b.longest_chain) == (1 + 2 + 2 + 2, 4, 2)
    assert structure.model_structure(report.graph).parallelism > 2


def test_shufflenet_v2_units():
    report = costmodel.analyze(example("shufflenet_v2").build(), "1x3x64x64")
    blocks = structure.blocks(report.graph)
    assert len(blocks) == 4 + 8 + 4
    for b in blocks:
        stride2 = b.path.endswith(".0")
        # stride 1: 1x1, then dw + 1x1 (one separable fragment); stride 2 adds dw + 1x1 beside it
        assert (b.fragments, b.branches) == ((3, 2) if stride2 else (2, 1)), b
