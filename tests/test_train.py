"""mode="train": per-op backward formulas, requires-grad propagation, activation memory, and the
FlopCounterMode oracle (which counts backward: run forward + backward under it).

Oracle runs are on the meta device, like tests/test_oracle.py. Two documented oracle conventions:
- fused sdpa (and nn.MultiheadAttention with need_weights=False) recomputes q k^T in its backward,
  as the flash / memory-efficient / CPU-flash kernels do and as FlopCounterMode's own sdpa backward
  formula counts; on meta, sdpa decomposes into bmm, whose backward does not recompute. The
  expected count adds that recompute, B*H*L*S*E, written out.
- FlopCounterMode's convolution_backward ignores groups for grad-weight ("I skip those for the sake
  of brevity" in torch/utils/flop_counter.py): it counts g times the true MAdds. A grouped conv's
  grad-weight has exactly one product per (weight element, output position): the forward's MAdds.
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import costmodel
from costmodel.core.cost import Cost
from costmodel.core.tensors import spec
from costmodel.formulas import FORMULAS, OpCall
from costmodel.formulas.registry import BACKWARD, NO_BACKWARD, GradCall, backward, backward_of


def param(*shape: int):
    return spec(*shape, role="param")


def bwd(call: OpCall, *needs: str) -> Cost:
    return backward_of(GradCall(call, frozenset(needs))).cost


# ---- formula arithmetic -----------------------------------------------------------------------

CONV = OpCall("conv", {"input": spec(2, 16, 32, 32), "weight": param(32, 16, 3, 3),
                       "bias": param(32)}, (spec(2, 32, 32, 32),), {"groups": 1})
CONV_M = 2 * 32 * 32 * 32 * 16 * 3 * 3          # forward MAdds: out_numel * C_in * k * k


@pytest.mark.parametrize("needs, madds, flops", [
    (("input", "weight", "bias"), 2 * CONV_M, 2 * 2 * CONV_M + 2 * 32 * 32 * 32),  # trainable
    (("weight", "bias"), CONV_M, 2 * CONV_M + 2 * 32 * 32 * 32),   # first layer: no grad-input
    (("input",), CONV_M, 2 * CONV_M),                              # frozen weight and bias
    ((), 0, 0),                                                    # frozen first layer
])
def test_conv_backward_grad_input_and_grad_weight(needs, madds, flops):
    cost = bwd(CONV, *needs)
    assert (cost.madds, cost.flops, cost.params) == (madds, flops, 0)


def test_conv_backward_mac_reads_gy_and_operands_writes_grads():
    x, w, gy = 2 * 16 * 32 * 32, 32 * 16 * 3 * 3, 2 * 32 * 32 * 32
    assert bwd(CONV, "input").mac == gy + w + x                    # gx = convT(gy, W)
    assert bwd(CONV, "weight").mac == x + gy + w                   # gW = conv(x, gy)
    assert bwd(CONV, "input", "weight", "bias").mac == 2 * (gy + w + x) + gy + 32
    assert bwd(CONV, "input").mac_bytes == 4 * (gy + w + x)


def test_grouped_and_transposed_conv_backward_equals_forward_per_gradient():
    dw = OpCall("conv", {"input": spec(1, 32, 56, 56), "weight": param(32, 1, 3, 3), "bias": None},
                (spec(1, 32, 56, 56),), {"groups": 32})
    assert bwd(dw, "input", "weight").madds == 2 * (3 * 3 * 32 * 56 * 56)
    ct = OpCall("conv_transpose", {"input": spec(1, 16, 8, 8), "weight": param(16, 8, 2, 2),
                                   "bias": None}, (spec(1, 8, 16, 16),), {"groups": 1})
    assert bwd(ct, "input", "weight").madds == 2 * (16 * 8 * 8 * 8 * 2 * 2)


def test_linear_matmul_and_addmm_backward():
    lin = OpCall("linear", {"input": spec(4, 10, 64), "weight": param(32, 64), "bias": param(32)},
                 (spec(4, 10, 32),))
    assert bwd(lin, "input", "weight", "bias").flops == 2 * (2 * 40 * 64 * 32) + 40 * 32
    assert bwd(lin, "weight").madds == 40 * 64 * 32
    mm = OpCall("matmul", {"input": spec(8, 5, 16), "other": spec(16, 7)}, (spec(8, 5, 7),))
    assert bwd(mm, "input").madds == 8 * 5 * 16 * 7
    assert bwd(mm, "input", "other").madds == 2 * 8 * 5 * 16 * 7
    addmm = OpCall("addmm", {"input": param(7), "mat1": spec(5, 16), "mat2": param(16, 7)},
                   (spec(5, 7),))
    assert bwd(addmm, "input", "mat2").flops == 2 * (5 * 16 * 7) + 5 * 7   # + bias summed


def test_sdpa_backward_recomputes_scores_and_keeps_logsumexp():
    b, h, n, s, e = 2, 4, 16, 12, 8
    call = OpCall("sdpa", {"query": spec(b, h, n, e), "key": spec(b, h, s, e),
                           "value": spec(b, h, s, e)}, (spec(b, h, n, e),), {})
    scores = b * h * n * s
    full = backward_of(GradCall(call, frozenset({"query", "key", "value"})))
    # recompute q k^T, gV, gP, gQ, gK
    assert full.cost.madds == scores * e + scores * e + scores * e + scores * e + scores * e
    assert full.extra_bytes == 4 * b * h * n
    assert set(full.saved) >= {"query", "key", "value", "out"}
    only_v = bwd(call, "value")                       # no gP, gQ, gK
    assert only_v.madds == scores * e + scores * e


@pytest.mark.parametrize("op, needs, per_element", [
    ("relu", ("input",), 1), ("gelu", ("input",), 2), ("sigmoid", ("input",), 2),
    ("mul", ("input", "other"), 2), ("add", ("input", "other"), 0), ("sub", ("other",), 1),
])
def test_elementwise_backward_per_element(op, needs, per_element):
    call = OpCall(op, {name: spec(2, 8, 4, 4) for name in needs}, (spec(2, 8, 4, 4),))
    assert bwd(call, *needs).flops == per_element * 2 * 8 * 4 * 4


def test_add_hands_gy_on_and_sums_a_broadcast_operand():
    same = OpCall("add", {"input": spec(2, 8), "other": spec(2, 8)}, (spec(2, 8),))
    assert bwd(same, "input", "other") == Cost()          # nothing computed, read or written
    bias = OpCall("add", {"input": spec(2, 8), "other": spec(8)}, (spec(2, 8),))
    assert bwd(bias, "other").flops == 2 * 8               # gy summed over the batch


def test_norm_backward_training_and_frozen():
    n = 4 * 16 * 8 * 8
    bn = OpCall("batch_norm", {"input": spec(4, 16, 8, 8), "weight": param(16), "bias": param(16)},
                (spec(4, 16, 8, 8),), {"training": True})
    full = backward_of(GradCall(bn, frozenset({"input", "weight", "bias"})))
    assert full.cost.flops == n * (2 + 1 + 2 + 4)   # x_hat, sum gy, sum gy x_hat, grad-input
    assert full.saved == ("input",) and full.extra_bytes == 2 * 16 * 4
    assert bwd(bn, "weight", "bias").flops == n * (2 + 1 + 2)   # BN on the input: no grad-input
    frozen = OpCall("batch_norm", {"input": spec(4, 16, 8, 8), "weight": param(16),
                                   "bias": param(16)}, (spec(4, 16, 8, 8),), {"training": False})
    assert bwd(frozen, "input").flops == n            # running statistics: gy * w * rstd


def test_embedding_grad_weight_is_a_scatter_add():
    call = OpCall("embedding", {"input": spec(2, 7, dtype="int64"), "weight": param(100, 16)},
                  (spec(2, 7, 16),))
    cost = bwd(call, "weight")
    assert cost.flops == 2 * 7 * 16
    assert cost.mac == 2 * 7 + 2 * 7 * 16 + 2 * 7 * 16 + 100 * 16 + 2 * 7 * 16


def test_every_forward_formula_has_a_backward_rule_or_says_why_not():
    # a new forward formula needs a backward rule, or an entry saying why not
    assert set(FORMULAS) - set(BACKWARD) == set(NO_BACKWARD)
    with pytest.raises(KeyError, match="registered twice"):
        backward("conv")(lambda grad: None)


# ---- analyze(mode="train") --------------------------------------------------------------------

def convs(*frozen: int) -> nn.Module:
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1))
    for i in frozen:
        m[i].requires_grad_(False)
    return m


M1, M2 = 2 * 8 * 16 * 16 * 3 * 9, 2 * 16 * 16 * 16 * 8 * 9


@pytest.mark.parametrize("frozen, backward_madds", [
    ((), M1 + 2 * M2),       # first layer: grad-weight only; second: grad-input + grad-weight
    ((0,), M2),              # frozen first layer: no backward; the second needs no grad-input
    ((2,), M1 + M2),         # frozen last layer: grad-input only, still flows to the first
    ((0, 2), 0),             # nothing to train
])
def test_requires_grad_propagation(frozen, backward_madds):
    model = convs(*frozen)
    report = costmodel.analyze(model, "2x3x16x16", mode="train")
    assert report.train.backward.madds == backward_madds
    assert report.train.forward.madds == M1 + M2
    assert report.totals.madds == M1 + M2 + backward_madds
    assert report.train.trainable_params == sum(p.numel() for p in model.parameters()
                                                if p.requires_grad)
    if frozen == (0, 2):
        assert report.train.backward == Cost() and report.train.activation_bytes == 0


def test_activation_memory_dedupes_shared_tensors():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    report = costmodel.analyze(model, "2x8", mode="train")
    # linear 1 keeps the input; ReLU keeps its output, which linear 2 keeps too (counted once)
    assert report.train.activation_bytes == 4 * (2 * 8) + 4 * (2 * 16)
    assert sum(layer.activation_bytes for layer in report.layers) == report.train.activation_bytes


def saved_by_autograd(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Bytes of the distinct storages autograd keeps for backward (parameters, buffers excluded)."""
    owned = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    kept: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in owned:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randn(shape))
    return sum(kept.values())


@pytest.mark.parametrize("factory, shape", [
    (lambda: torchvision.models.resnet18(), (1, 3, 64, 64)),
    (lambda: torchvision.models.mobilenet_v3_small(), (2, 3, 64, 64)),  # in-place hardswish, SE
    (lambda: nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 10)),
     (4, 32)),
    (lambda: SelfAttention(need_weights=True), (2, 16, 32)),    # keeps the attention matrix
    (lambda: SelfAttention(need_weights=False), (2, 16, 32)),   # fused: keeps the log-sum-exp
    # dropout=0: with attention dropout, CPU falls back to the math kernel (GPUs keep fused)
    (lambda: nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True), (2, 16, 32)),
], ids=["resnet18", "mobilenet_v3_small", "mlp_dropout", "mha_need_weights", "mha_fused",
        "transformer_layer"])
def test_activation_memory_matches_what_autograd_keeps(factory, shape):
    torch.manual_seed(0)
    model = factory()
    report = costmodel.analyze(model, shape, mode="train")
    assert report.train.activation_bytes == saved_by_autograd(model, shape)


def test_training_semantics_in_the_forward():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.Dropout(0.5)).eval()
    n = 2 * 8 * 4 * 4
    ev = costmodel.analyze(model, "2x3x4x4")
    tr = costmodel.analyze(model, "2x3x4x4", mode="train")
    def bn(r):
        return next(layer for layer in r.layers if layer.op == "batch_norm")

    def drop(r):
        return next(layer for layer in r.layers if layer.op == "dropout")

    assert bn(ev).forward.flops == 2 * n
    assert bn(tr).forward.flops >= 7 * n              # batch statistics: 3 + 2 + 2 per element
    assert drop(ev).forward.flops == 0 and drop(tr).forward.flops == n
    assert not model.training and all(not m.training for m in model.modules())  # flags restored


def test_report_structure_and_schema():
    model = convs()
    report = costmodel.analyze(model, "1x3x8x8", mode="train")
    assert report.mode == "train" and report.schema_version == "1.2"
    assert report.totals.cost == report.train.forward + report.train.backward
    for layer in report.layers:
        assert layer.forward + layer.backward == layer.cost
    rows = report.by_operator()
    assert (sum(r.madds for r in rows) == sum(layer.madds for layer in report.layers)
            == report.totals.madds)
    assert report.by_module(depth=0)[0].flops == report.totals.flops
    data = json.loads(report.to_json())
    assert data["train"]["total"]["madds"] == report.totals.madds
    assert data["train"]["activation_bytes"] == report.train.activation_bytes
    assert "backward" in data["layers"][0]
    eval_data = costmodel.analyze(model, "1x3x8x8").to_dict()
    assert "train" not in eval_data and "backward" not in eval_data["layers"][0]
    with pytest.raises(ValueError, match="mode"):
        costmodel.analyze(model, "1x3x8x8", mode="inference")


class LRN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return F.local_response_norm(self.conv(x), 3)


def test_no_backward_formula_makes_totals_partial_with_a_diagnostic():
    report = costmodel.analyze(LRN(), "1x3x8x8", mode="train")
    assert report.train.status == "partial" and report.totals.status == "partial"
    assert "local_response_norm (backward)" in report.totals.unsupported
    found = [d for d in report.diagnostics if d.code == "CM010"]
    assert len(found) == 1 and "local_response_norm" in found[0].message
    # eval mode is untouched by it
    assert costmodel.analyze(LRN(), "1x3x8x8").totals.status == "complete"


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        h = self.a(x)
        return h + self.b(h.detach()) + self.b(h)


def test_gradient_accumulation_and_detach():
    report = costmodel.analyze(Residual(), "4x8", mode="train")
    by_name = {layer.name: layer for layer in report.layers}
    # h feeds the add and b (the detached use sends no gradient): 1 addition of 4x8
    assert by_name["a"].backward.flops == 2 * 4 * 8 * 8 + 4 * 8 + 4 * 8
    # b's first call: grad-weight only (its input is detached); second: grad-input and grad-weight
    b_calls = [layer for layer in report.layers if layer.module == "b"]
    assert [layer.backward.madds for layer in b_calls] == [4 * 8 * 8, 2 * 4 * 8 * 8]


def test_model_is_untouched_by_train_analysis():
    model = convs(0).eval()
    before = [(n, p.requires_grad) for n, p in model.named_parameters()]
    costmodel.analyze(model, "1x3x8x8", mode="train")
    assert [(n, p.requires_grad) for n, p in model.named_parameters()] == before
    assert not any(m.training for m in model.modules())


# ---- oracle: FlopCounterMode over forward + backward ------------------------------------------

def oracle_madds(model: nn.Module, shapes: list[tuple[int, ...]]) -> int:
    model.train()
    inputs = [torch.empty(s, device="meta") for s in shapes]
    with FlopCounterMode(display=False) as counter:
        out = model(*inputs)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        sum(o.sum() for o in outs if isinstance(o, torch.Tensor) and o.requires_grad).backward()
    return counter.get_total_flops() // 2


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def frozen_mlp() -> nn.Module:
    m = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.1),
                      nn.Linear(64, 10))
    m[0].requires_grad_(False)           # no backward at all: its input needs no gradient
    m[2].weight.requires_grad_(False)    # grad-input only (its bias still trains)
    return m


class SDPABlock(nn.Module):
    def __init__(self, d: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.ln, self.qkv, self.out = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(self.ln(x)).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + self.out(y.transpose(1, 2).reshape(b, n, d))


class SelfAttention(nn.Module):
    def __init__(self, need_weights: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.need_weights = need_weights

    def forward(self, x):
        return self.attn(x, x, x, need_weights=self.need_weights)[0]


RECOMPUTE = 2 * 4 * 16 * 16 * 8   # fused attention backward: q k^T again, B*H*L*S*E


@pytest.mark.parametrize("factory, shapes, recompute", [
    (SmallCNN, [(2, 3, 32, 32)], 0),
    (lambda: torchvision.models.resnet18(), [(1, 3, 64, 64)], 0),
    (frozen_mlp, [(4, 32)], 0),
    (lambda: SelfAttention(need_weights=True), [(2, 16, 32)], 0),
    (lambda: SelfAttention(need_weights=False), [(2, 16, 32)], RECOMPUTE),
    (SDPABlock, [(2, 16, 32)], RECOMPUTE),
    (lambda: nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), [(2, 16, 32)], RECOMPUTE),
], ids=["small_cnn", "resnet18", "frozen_mlp", "mha_need_weights", "mha_sdpa", "sdpa_block",
        "transformer_layer"])
def test_forward_plus_backward_madds_match_flop_counter(factory, shapes, recompute):
    with torch.device("meta"):
        model = factory()
    report = costmodel.analyze(model, *shapes, mode="train")
    assert report.totals.status == "complete"
    assert report.totals.madds == oracle_madds(model, shapes) + recompute


def test_flop_counter_counts_grouped_conv_grad_weight_g_times():
    """The oracle's own gap, pinned: for groups=g it counts grad-weight g times."""
    g = 4
    with torch.device("meta"):
        model = nn.Conv2d(8, 16, 3, padding=1, groups=g)
    report = costmodel.analyze(model, "2x8x10x10", mode="train")
    forward = 2 * 16 * 10 * 10 * (8 // g) * 3 * 3
    assert report.totals.madds == forward + forward          # forward + grad-weight
    assert oracle_madds(model, [(2, 8, 10, 10)]) == forward + g * forward


def grouped_conv_excess(report) -> int:
    """What FlopCounterMode counts beyond the truth: (g - 1) x forward MAdds per grouped conv."""
    from costmodel.formulas import cost_of
    excess = 0
    for node in report.graph:
        for rec in node.calls:
            if rec.call.op == "conv" and rec.call.attr("groups", 1) > 1:
                excess += (rec.call.attr("groups") - 1) * cost_of(rec.call)[0].madds
    return excess


@pytest.mark.parametrize("factory, shape, recompute", [
    (lambda: torchvision.models.mobilenet_v3_small(), (2, 3, 64, 64), 0),   # depthwise, SE
    (lambda: torchvision.models.shufflenet_v2_x0_5(), (1, 3, 64, 64), 0),   # channel shuffle
    (lambda: torchvision.models.vision_transformer.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128),
     (2, 3, 32, 32), 2 * 2 * 4 * 17 * 17 * 16),                             # 2 layers of fused MHA
], ids=["mobilenet_v3_small", "shufflenet_v2_x0_5", "vit_tiny"])
def test_torchvision_train_madds_match_flop_counter_up_to_its_grouped_conv_gap(
        factory, shape, recompute):
    with torch.device("meta"):
        model = factory()
    report = costmodel.analyze(model, shape, mode="train")
    assert report.totals.status == "complete"
    assert (report.totals.madds + grouped_conv_excess(report)
            == oracle_madds(model, [shape]) + recompute)


def test_llama_style_decoder_with_grouped_query_attention_matches_flop_counter():
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=128, vocab_size=100)
    config._attn_implementation = "sdpa"

    class Hidden(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = transformers.AutoModel.from_config(config)

        def forward(self, ids):
            return self.model(input_ids=ids).last_hidden_state

    with torch.device("meta"):
        model = Hidden()
    report = costmodel.analyze(model, "2x16:int64", mode="train")
    assert report.train.status == "complete"
    ids = torch.zeros(2, 16, dtype=torch.long, device="meta")
    model.train()
    with FlopCounterMode(display=False) as counter:
        model(ids).sum().backward()
    recompute = 2 * 2 * 4 * 16 * 16 * 16          # layers * B * query heads * L * S * E
    assert report.totals.madds == counter.get_total_flops() // 2 + recompute


def test_train_report_reads_back_from_json():
    from costmodel.core.report import Report
    report = costmodel.analyze(convs(), "1x3x8x8", mode="train")
    back = Report.from_json(report.to_json())
    assert back.train == report.train and back.totals == report.totals
    assert [layer.backward for layer in back.layers] == [layer.backward for layer in report.layers]
    assert back.to_dict() == report.to_dict()
