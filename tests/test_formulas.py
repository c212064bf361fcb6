"""The formula table: every formula against the papers' arithmetic, written out, never precomputed.

Each row is one `OpCall` built from `spec(...)` and the Cost fields it must produce. Expected values
are products of the shapes in the row, in the papers' notation where there is one (MobileNet:
Dk*Dk*M*N*DF*DF; ShuffleNet V2: hw(c1+c2) + c1*c2). Fields a row leaves out are covered by the
invariants below the table (e.g. mac_bytes == 4 * mac for an all-float32 op).
"""
from __future__ import annotations

import math
from fractions import Fraction

import pytest

from costmodel.core.cost import Cost
from costmodel.core.tensors import TensorSpec, spec
from costmodel.core.vocab import CONTRACTION, Category
from costmodel.formulas import FORMULAS, OpCall, cost_of, formula


def param(*shape: int) -> TensorSpec:
    return spec(*shape, role="param")


def buffer(*shape: int) -> TensorSpec:
    return spec(*shape, role="buffer")


def expanded(*shape: int, stored: int) -> TensorSpec:
    """A broadcast view (stride 0 somewhere): `stored` distinct elements behind `shape`."""
    return TensorSpec(tuple(shape), "float32", 4, stored, "activation")


def conv_call(x, w, b, out, groups=1, **attrs) -> OpCall:
    return OpCall("conv", {"input": x, "weight": w, "bias": b}, (out,), {"groups": groups, **attrs})


def convt_call(x, w, b, out, groups=1) -> OpCall:
    return OpCall("conv_transpose", {"input": x, "weight": w, "bias": b}, (out,),
                  {"groups": groups})


def row(id_: str, call: OpCall, **expected):
    return pytest.param(call, expected, id=id_)


# ---- the table ------------------------------------------------------------------------------

ROWS = [
    # -- convolution (MobileNet V1: MAdds = Dk*Dk*M*N*DF*DF, params = Dk*Dk*M*N (+N)) --
    row("conv3x3_bias",
        conv_call(spec(1, 32, 56, 56), param(64, 32, 3, 3), param(64), spec(1, 64, 56, 56),
                  padding=1),
        madds=3 * 3 * 32 * 64 * 56 * 56,
        flops=2 * 3 * 3 * 32 * 64 * 56 * 56 + 64 * 56 * 56,
        params=3 * 3 * 32 * 64 + 64,
        mac=32 * 56 * 56 + 3 * 3 * 32 * 64 + 64 + 64 * 56 * 56,
        mac_bytes=4 * (32 * 56 * 56 + 3 * 3 * 32 * 64 + 64 + 64 * 56 * 56),
        category=Category.CONV),
    row("conv3x3_nobias",
        conv_call(spec(1, 32, 56, 56), param(64, 32, 3, 3), None, spec(1, 64, 56, 56), padding=1),
        madds=3 * 3 * 32 * 64 * 56 * 56,
        flops=2 * 3 * 3 * 32 * 64 * 56 * 56,
        params=3 * 3 * 32 * 64,
        mac=32 * 56 * 56 + 3 * 3 * 32 * 64 + 64 * 56 * 56,
        category=Category.CONV),
    row("conv_batch2",
        conv_call(spec(2, 3, 32, 32), param(8, 3, 5, 5), None, spec(2, 8, 28, 28)),
        madds=2 * 5 * 5 * 3 * 8 * 28 * 28,
        params=5 * 5 * 3 * 8,
        mac=2 * 3 * 32 * 32 + 5 * 5 * 3 * 8 + 2 * 8 * 28 * 28),
    # stride 2, padding 2, dilation 2 on 28x28: DF = (28 + 2*2 - 2*(3-1) - 1) // 2 + 1 = 14
    row("conv_strided_padded_dilated",
        conv_call(spec(1, 16, 28, 28), param(32, 16, 3, 3), None, spec(1, 32, 14, 14),
                  stride=2, padding=2, dilation=2),
        madds=3 * 3 * 16 * 32 * 14 * 14,
        params=3 * 3 * 16 * 32,
        mac=16 * 28 * 28 + 3 * 3 * 16 * 32 + 32 * 14 * 14),
    row("conv_1x7_rectangular",
        conv_call(spec(1, 16, 17, 17), param(24, 16, 1, 7), None, spec(1, 24, 17, 17),
                  padding=(0, 3)),
        madds=1 * 7 * 16 * 24 * 17 * 17,
        params=1 * 7 * 16 * 24),
    # depthwise: Dk*Dk*M*DF*DF
    row("depthwise3x3",
        conv_call(spec(1, 32, 56, 56), param(32, 1, 3, 3), None, spec(1, 32, 56, 56), groups=32),
        madds=3 * 3 * 32 * 56 * 56,
        flops=2 * 3 * 3 * 32 * 56 * 56,
        params=3 * 3 * 32,
        mac=32 * 56 * 56 + 3 * 3 * 32 + 32 * 56 * 56,
        category=Category.DEPTHWISE_CONV),
    row("depthwise_multiplier2",   # C_out = 2 * C_in, still one input channel per group
        conv_call(spec(1, 16, 14, 14), param(32, 1, 3, 3), param(32), spec(1, 32, 14, 14),
                  groups=16),
        madds=3 * 3 * 32 * 14 * 14,
        flops=2 * 3 * 3 * 32 * 14 * 14 + 32 * 14 * 14,
        params=3 * 3 * 32 + 32,
        category=Category.DEPTHWISE_CONV),
    # group conv (ResNeXt, ShuffleNet V1): MAdds and params divided by g
    row("group_conv_g4",
        conv_call(spec(1, 32, 28, 28), param(64, 32 // 4, 3, 3), None, spec(1, 64, 28, 28),
                  groups=4),
        madds=3 * 3 * 32 * 64 * 28 * 28 // 4,
        params=3 * 3 * 32 * 64 // 4,
        mac=32 * 28 * 28 + 3 * 3 * 32 * 64 // 4 + 64 * 28 * 28,
        category=Category.GROUP_CONV),
    row("conv1d",
        conv_call(spec(2, 8, 33), param(16, 8, 5), param(16), spec(2, 16, 15), stride=2),
        madds=2 * 5 * 8 * 16 * 15,
        flops=2 * 2 * 5 * 8 * 16 * 15 + 2 * 16 * 15,
        params=5 * 8 * 16 + 16,
        mac=2 * 8 * 33 + 5 * 8 * 16 + 16 + 2 * 16 * 15,
        category=Category.CONV),
    row("conv3d",
        conv_call(spec(1, 4, 6, 8, 8), param(8, 4, 3, 3, 3), None, spec(1, 8, 6, 8, 8), padding=1),
        madds=3 * 3 * 3 * 4 * 8 * 6 * 8 * 8,
        params=3 * 3 * 3 * 4 * 8,
        mac=4 * 6 * 8 * 8 + 3 * 3 * 3 * 4 * 8 + 8 * 6 * 8 * 8,
        category=Category.CONV),
    # transposed conv: weight (C_in, C_out/g, *k); MAdds = in_numel * C_out/g * prod(k)
    # stride 2, padding 1, output_padding 1 on 7x7: (7 - 1)*2 - 2*1 + 3 + 1 = 14
    row("conv_transpose2d",
        convt_call(spec(2, 8, 7, 7), param(8, 4, 3, 3), param(4), spec(2, 4, 14, 14)),
        madds=(2 * 8 * 7 * 7) * 4 * 3 * 3,
        flops=2 * (2 * 8 * 7 * 7) * 4 * 3 * 3 + 2 * 4 * 14 * 14,
        params=8 * 4 * 3 * 3 + 4,
        mac=2 * 8 * 7 * 7 + 8 * 4 * 3 * 3 + 4 + 2 * 4 * 14 * 14,
        category=Category.TRANSPOSED_CONV),
    row("conv_transpose2d_g2",
        convt_call(spec(2, 8, 7, 7), param(8, 4 // 2, 3, 3), None, spec(2, 4, 15, 15), groups=2),
        madds=(2 * 8 * 7 * 7) * (4 // 2) * 3 * 3,
        params=8 * (4 // 2) * 3 * 3,
        category=Category.TRANSPOSED_CONV),
    row("conv_transpose1d",
        convt_call(spec(2, 4, 10), param(4, 8, 3), None, spec(2, 8, 21)),
        madds=(2 * 4 * 10) * 8 * 3,
        params=4 * 8 * 3),

    # -- linear and matrix products --
    row("linear_batch_dims",
        OpCall("linear", {"input": spec(2, 5, 32), "weight": param(64, 32), "bias": param(64)},
               (spec(2, 5, 64),)),
        madds=2 * 5 * 32 * 64,
        flops=2 * 2 * 5 * 32 * 64 + 2 * 5 * 64,
        params=64 * 32 + 64,
        mac=2 * 5 * 32 + 64 * 32 + 64 + 2 * 5 * 64,
        category=Category.LINEAR),
    row("linear_nobias",
        OpCall("linear", {"input": spec(7, 32), "weight": param(64, 32), "bias": None},
               (spec(7, 64),)),
        madds=7 * 32 * 64, flops=2 * 7 * 32 * 64, params=64 * 32,
        mac=7 * 32 + 64 * 32 + 7 * 64),
    row("matmul_broadcast",   # (2,1,5,8) @ (3,8,6) -> (2,3,5,6)
        OpCall("matmul", {"input": spec(2, 1, 5, 8), "other": spec(3, 8, 6)}, (spec(2, 3, 5, 6),)),
        madds=2 * 3 * 5 * 8 * 6,
        flops=2 * 2 * 3 * 5 * 8 * 6,
        params=0,
        mac=2 * 1 * 5 * 8 + 3 * 8 * 6 + 2 * 3 * 5 * 6,
        category=Category.MATMUL),
    row("matmul_matrix_vector",
        OpCall("matmul", {"input": spec(3, 5, 8), "other": spec(8)}, (spec(3, 5),)),
        madds=3 * 5 * 8, mac=3 * 5 * 8 + 8 + 3 * 5),
    row("matmul_vector_matrix",
        OpCall("matmul", {"input": spec(8), "other": spec(8, 6)}, (spec(6),)),
        madds=8 * 6),
    row("dot",
        OpCall("matmul", {"input": spec(7), "other": spec(7)}, (spec(),)),
        madds=7, flops=2 * 7, mac=7 + 7 + 1),
    row("bmm",
        OpCall("matmul", {"input": spec(4, 5, 8), "other": spec(4, 8, 6)}, (spec(4, 5, 6),)),
        madds=4 * 5 * 8 * 6, flops=2 * 4 * 5 * 8 * 6,
        mac=4 * 5 * 8 + 4 * 8 * 6 + 4 * 5 * 6),
    row("addmm",   # bias (6,) + (5,8) @ (8,6): a matmul plus 1 FLOP per output element
        OpCall("addmm", {"input": param(6), "mat1": spec(5, 8), "mat2": param(8, 6)},
               (spec(5, 6),)),
        madds=5 * 8 * 6,
        flops=2 * 5 * 8 * 6 + 5 * 6,
        params=6 + 8 * 6,
        mac=6 + 5 * 8 + 8 * 6 + 5 * 6,
        category=Category.MATMUL),
    row("baddbmm",
        OpCall("addmm", {"input": spec(4, 5, 6), "mat1": spec(4, 5, 8), "mat2": spec(4, 8, 6)},
               (spec(4, 5, 6),)),
        madds=4 * 5 * 8 * 6, flops=2 * 4 * 5 * 8 * 6 + 4 * 5 * 6),

    # -- einsum, contracted pairwise left to right --
    row("einsum_attention_scores",   # bhld,bhsd->bhls
        OpCall("einsum", {"operands": (spec(2, 4, 16, 8), spec(2, 4, 12, 8))},
               (spec(2, 4, 16, 12),), {"equation": "bhld,bhsd->bhls"}),
        madds=2 * 4 * 16 * 12 * 8,
        flops=2 * 2 * 4 * 16 * 12 * 8,
        params=0,
        mac=2 * 4 * 16 * 8 + 2 * 4 * 12 * 8 + 2 * 4 * 16 * 12,
        category=Category.MATMUL),
    row("einsum_chain3",   # (ij,jk) -> ik, then (ik,kl) -> il
        OpCall("einsum", {"operands": (spec(3, 4), spec(4, 5), spec(5, 6))}, (spec(3, 6),),
               {"equation": "ij,jk,kl->il"}),
        madds=3 * 4 * 5 + 3 * 5 * 6,
        flops=2 * (3 * 4 * 5 + 3 * 5 * 6),
        mac=3 * 4 + 4 * 5 + 5 * 6 + 3 * 6),
    row("einsum_ellipsis",
        OpCall("einsum", {"operands": (spec(2, 3, 4), spec(2, 4, 5))}, (spec(2, 3, 5),),
               {"equation": "...ij,...jk->...ik"}),
        madds=2 * 3 * 4 * 5),
    row("einsum_implicit_output",   # "ij,jk" means "ij,jk->ik"
        OpCall("einsum", {"operands": (spec(3, 4), spec(4, 5))}, (spec(3, 5),),
               {"equation": "ij,jk"}),
        madds=3 * 4 * 5),
    row("einsum_sum_out_first",   # k is summed out of the second operand (1 FLOP/element), then i,j
        OpCall("einsum", {"operands": (spec(3, 4), spec(4, 5))}, (spec(3),),
               {"equation": "ij,jk->i"}),
        madds=3 * 4,
        flops=2 * 3 * 4 + 4 * 5),
    row("einsum_size1_contraction",   # d = 1: one product per output, no sum (torch: aten.mul)
        OpCall("einsum", {"operands": (spec(2, 7, 4, 1), spec(2, 7, 4, 1))}, (spec(2, 7, 4, 4),),
               {"equation": "bcxd,bcyd->bcxy"}),
        madds=0, flops=2 * 7 * 4 * 4),

    # -- attention: MAdds = B*H*L*S*E + B*H*L*S*Ev; per score 1 scale (+1 mask) + 5 softmax --
    row("sdpa",
        OpCall("sdpa", {"query": spec(2, 4, 16, 8), "key": spec(2, 4, 12, 8),
                        "value": spec(2, 4, 12, 10)}, (spec(2, 4, 16, 10),)),
        madds=2 * 4 * 16 * 12 * 8 + 2 * 4 * 16 * 12 * 10,
        flops=2 * (2 * 4 * 16 * 12 * 8 + 2 * 4 * 16 * 12 * 10) + 2 * 4 * 16 * 12 * (1 + 5),
        params=0,
        mac=2 * 4 * 16 * 8 + 2 * 4 * 12 * 8 + 2 * 4 * 12 * 10 + 2 * 4 * 16 * 10,
        category=Category.ATTENTION),
    row("sdpa_causal",   # the causal mask keeps the full L x S square (as FlopCounterMode does)
        OpCall("sdpa", {"query": spec(2, 4, 16, 8), "key": spec(2, 4, 16, 8),
                        "value": spec(2, 4, 16, 8)}, (spec(2, 4, 16, 8),), {"is_causal": True}),
        madds=2 * 2 * 4 * 16 * 16 * 8,
        flops=2 * 2 * 2 * 4 * 16 * 16 * 8 + 2 * 4 * 16 * 16 * (1 + 1 + 5)),
    row("sdpa_mask",
        OpCall("sdpa", {"query": spec(1, 2, 4, 8), "key": spec(1, 2, 6, 8),
                        "value": spec(1, 2, 6, 8), "attn_mask": spec(4, 6)},
               (spec(1, 2, 4, 8),)),
        madds=2 * 1 * 2 * 4 * 6 * 8,
        flops=2 * 2 * 1 * 2 * 4 * 6 * 8 + 1 * 2 * 4 * 6 * (1 + 1 + 5),
        mac=1 * 2 * 4 * 8 + 1 * 2 * 6 * 8 + 1 * 2 * 6 * 8 + 4 * 6 + 1 * 2 * 4 * 8),
    # multi-query attention: k, v (B, 1, S, E) broadcast over the Hq query heads
    row("sdpa_kv_broadcast_1head",
        OpCall("sdpa", {"query": spec(2, 8, 16, 8), "key": spec(2, 1, 12, 8),
                        "value": spec(2, 1, 12, 8)}, (spec(2, 8, 16, 8),)),
        madds=2 * 8 * 16 * 12 * 8 + 2 * 8 * 16 * 12 * 8,
        mac=2 * 8 * 16 * 8 + 2 * 1 * 12 * 8 + 2 * 1 * 12 * 8 + 2 * 8 * 16 * 8),
    # grouped-query attention (enable_gqa=True): Hq = 8 query heads share Hkv = 2 k/v heads
    row("sdpa_gqa_8q_2kv",
        OpCall("sdpa", {"query": spec(2, 8, 16, 8), "key": spec(2, 2, 12, 8),
                        "value": spec(2, 2, 12, 8)}, (spec(2, 8, 16, 8),), {"enable_gqa": True}),
        madds=2 * 8 * 16 * 12 * 8 + 2 * 8 * 16 * 12 * 8,
        flops=2 * (2 * 8 * 16 * 12 * 8 * 2) + 2 * 8 * 16 * 12 * (1 + 5),
        mac=2 * 8 * 16 * 8 + 2 * 2 * 12 * 8 + 2 * 2 * 12 * 8 + 2 * 8 * 16 * 8),
    # nn.MultiheadAttention, self-attention, (L, N, E) = (10, 2, 32), 4 heads:
    # 3 input projections + 2*N*L*S*E attention + output projection; MAC = 10*L*N*E + weights
    row("mha_self",
        OpCall("mha", {"query": spec(10, 2, 32), "key": spec(10, 2, 32), "value": spec(10, 2, 32),
                       "in_proj_weight": param(3 * 32, 32), "in_proj_bias": param(3 * 32),
                       "out_proj_weight": param(32, 32), "out_proj_bias": param(32)},
               (spec(10, 2, 32), spec(2, 10, 10)), {"num_heads": 4, "self_attention": True}),
        madds=3 * 10 * 2 * 32 * 32 + 2 * 2 * 10 * 10 * 32 + 10 * 2 * 32 * 32,
        flops=(2 * (4 * 10 * 2 * 32 * 32 + 2 * 2 * 10 * 10 * 32) + 2 * 4 * 10 * 10 * (1 + 5)
               + 3 * 10 * 2 * 32 + 10 * 2 * 32),
        params=4 * 32 * 32 + 4 * 32,
        # activations read/written across the kernels, weights, and the returned (N, L, S) weights
        mac=10 * (10 * 2 * 32) + 4 * 32 * 32 + 4 * 32 + 2 * 10 * 10,
        category=Category.ATTENTION),
    # cross-attention with kdim=16, vdim=24 (separate projection weights), L=10, S=7
    row("mha_cross",
        OpCall("mha", {"query": spec(10, 2, 32), "key": spec(7, 2, 16), "value": spec(7, 2, 24),
                       "in_proj_bias": param(3 * 32), "out_proj_weight": param(32, 32),
                       "out_proj_bias": param(32), "q_proj_weight": param(32, 32),
                       "k_proj_weight": param(32, 16), "v_proj_weight": param(32, 24)},
               (spec(10, 2, 32),), {"num_heads": 4, "self_attention": False}),
        madds=(10 * 2 * 32 * 32 + 7 * 2 * 16 * 32 + 7 * 2 * 24 * 32) + 2 * 2 * 10 * 7 * 32
        + 10 * 2 * 32 * 32,
        params=32 * 32 + 32 * 16 + 32 * 24 + 3 * 32 + 32 * 32 + 32),

    # -- normalisation: stats 3 + normalise 2 + 1 per affine tensor; eval batch norm 2 --
    row("batch_norm_eval",
        OpCall("batch_norm", {"input": spec(1, 32, 56, 56), "running_mean": buffer(32),
                              "running_var": buffer(32), "weight": param(32), "bias": param(32)},
               (spec(1, 32, 56, 56),), {"training": False}),
        madds=0,
        flops=2 * 32 * 56 * 56,
        params=2 * 32,
        mac=32 * 56 * 56 + 4 * 32 + 32 * 56 * 56,
        category=Category.NORM),
    row("batch_norm_train",
        OpCall("batch_norm", {"input": spec(1, 32, 56, 56), "running_mean": buffer(32),
                              "running_var": buffer(32), "weight": param(32), "bias": param(32)},
               (spec(1, 32, 56, 56),), {"training": True}),
        madds=0,
        flops=32 * 56 * 56 * (3 + 2 + 1 + 1),
        params=2 * 32),
    row("layer_norm",
        OpCall("layer_norm", {"input": spec(2, 10, 32), "weight": param(32), "bias": param(32)},
               (spec(2, 10, 32),), {"normalized_shape": (32,)}),
        madds=0,
        flops=2 * 10 * 32 * (3 + 2 + 1 + 1),
        params=2 * 32,
        mac=2 * 10 * 32 + 2 * 32 + 2 * 10 * 32,
        category=Category.NORM),
    row("layer_norm_no_affine",
        OpCall("layer_norm", {"input": spec(2, 10, 32), "weight": None, "bias": None},
               (spec(2, 10, 32),)),
        flops=2 * 10 * 32 * (3 + 2), params=0, mac=2 * (2 * 10 * 32)),
    row("group_norm",
        OpCall("group_norm", {"input": spec(2, 32, 8, 8), "weight": param(32), "bias": param(32)},
               (spec(2, 32, 8, 8),), {"num_groups": 8}),
        flops=2 * 32 * 8 * 8 * (3 + 2 + 1 + 1),
        params=2 * 32,
        mac=2 * 32 * 8 * 8 + 2 * 32 + 2 * 32 * 8 * 8),

    # -- element-wise (G4: small FLOPs, heavy MAC) --
    row("relu",
        OpCall("relu", {"input": spec(1, 64, 56, 56)}, (spec(1, 64, 56, 56),)),
        madds=0, flops=64 * 56 * 56, params=0, mac=2 * 64 * 56 * 56,
        category=Category.ACTIVATION),
    row("add_same_shape",
        OpCall("add", {"input": spec(1, 64, 56, 56), "other": spec(1, 64, 56, 56)},
               (spec(1, 64, 56, 56),)),
        flops=64 * 56 * 56, mac=3 * 64 * 56 * 56, category=Category.ELEMENTWISE),
    row("add_broadcast",   # the (1,64,1,1) operand is read once: its 64 stored elements
        OpCall("add", {"input": spec(1, 64, 56, 56), "other": spec(1, 64, 1, 1)},
               (spec(1, 64, 56, 56),)),
        madds=0, flops=64 * 56 * 56, mac=64 * 56 * 56 + 64 + 64 * 56 * 56),
    row("add_expanded_view",   # an expand()ed operand (stride 0) reads its stored elements only
        OpCall("add", {"input": spec(1, 64, 56, 56), "other": expanded(1, 64, 56, 56, stored=64)},
               (spec(1, 64, 56, 56),)),
        flops=64 * 56 * 56, mac=64 * 56 * 56 + 64 + 64 * 56 * 56),
    row("mul_scalar",
        OpCall("mul", {"input": spec(4, 8)}, (spec(4, 8),), {"other": 2.0}),
        flops=4 * 8, mac=2 * 4 * 8),
    row("softmax",
        OpCall("softmax", {"input": spec(2, 4, 16, 16)}, (spec(2, 4, 16, 16),), {"dim": -1}),
        madds=0, flops=5 * 2 * 4 * 16 * 16, mac=2 * 2 * 4 * 16 * 16,
        category=Category.SOFTMAX),

    # -- pooling: 1 FLOP per window element per output --
    row("max_pool3x3_s2",   # 112 -> 56 with padding 1
        OpCall("max_pool", {"input": spec(1, 64, 112, 112)}, (spec(1, 64, 56, 56),),
               {"kernel_size": 3, "stride": 2, "padding": 1, "spatial_dims": 2}),
        madds=0, flops=64 * 56 * 56 * 3 * 3, mac=64 * 112 * 112 + 64 * 56 * 56,
        category=Category.POOL),
    row("avg_pool2x2",
        OpCall("avg_pool", {"input": spec(1, 64, 56, 56)}, (spec(1, 64, 28, 28),),
               {"kernel_size": (2, 2), "spatial_dims": 2}),
        flops=64 * 28 * 28 * 2 * 2, mac=64 * 56 * 56 + 64 * 28 * 28),
    row("max_pool1d",
        OpCall("max_pool", {"input": spec(2, 8, 32)}, (spec(2, 8, 16),),
               {"kernel_size": 2, "spatial_dims": 1}),
        flops=2 * 8 * 16 * 2),
    # adaptive 7 -> 3: windows [0,3) [2,5) [4,7), 3 + 3 + 3 per axis
    row("adaptive_avg_pool_7to3",
        OpCall("adaptive_avg_pool", {"input": spec(1, 512, 7, 7)}, (spec(1, 512, 3, 3),),
               {"output_size": (3, 3), "spatial_dims": 2}),
        madds=0, flops=512 * (3 + 3 + 3) * (3 + 3 + 3), mac=512 * 7 * 7 + 512 * 3 * 3,
        category=Category.POOL),
    # uneven windows: 5 -> 3 is [0,2) [1,4) [3,5) = 2 + 3 + 2; 7 -> 3 as above
    row("adaptive_avg_pool_5x7_to_3x3",
        OpCall("adaptive_avg_pool", {"input": spec(1, 16, 5, 7)}, (spec(1, 16, 3, 3),),
               {"output_size": 3, "spatial_dims": 2}),
        flops=16 * (2 + 3 + 2) * (3 + 3 + 3)),
    row("adaptive_avg_pool_global",
        OpCall("adaptive_avg_pool", {"input": spec(2, 512, 7, 7)}, (spec(2, 512, 1, 1),),
               {"output_size": 1, "spatial_dims": 2}),
        flops=2 * 512 * 7 * 7, mac=2 * 512 * 7 * 7 + 2 * 512),

    # -- resampling: FLOPs per output element = the taps' multiplies and adds --
    row("interpolate_nearest",
        OpCall("interpolate", {"input": spec(1, 16, 28, 28)}, (spec(1, 16, 56, 56),),
               {"scale_factor": 2, "mode": "nearest", "spatial_dims": 2}),
        madds=0, flops=0, mac=16 * 28 * 28 + 16 * 56 * 56, category=Category.RESAMPLE),
    row("interpolate_bilinear",   # 4 taps: 4 multiplies + 3 adds
        OpCall("interpolate", {"input": spec(1, 16, 28, 28)}, (spec(1, 16, 56, 56),),
               {"scale_factor": 2, "mode": "bilinear", "spatial_dims": 2}),
        madds=0, flops=(4 + 3) * 16 * 56 * 56, mac=16 * 28 * 28 + 16 * 56 * 56),

    # -- embedding: indices read + one weight row read per index + output written --
    row("embedding",
        OpCall("embedding", {"input": spec(2, 10, dtype="int64"), "weight": param(1000, 64)},
               (spec(2, 10, 64),)),
        madds=0, flops=0,
        params=1000 * 64,
        mac=2 * 10 + 2 * 10 * 64 + 2 * 10 * 64,
        mac_bytes=8 * 2 * 10 + 4 * 2 * 10 * 64 + 4 * 2 * 10 * 64,
        category=Category.EMBEDDING),

    # -- dropout: the identity at inference; in training it writes (and reads) a mask --
    row("dropout_eval",
        OpCall("dropout", {"input": spec(8, 64)}, (spec(8, 64),), {"p": 0.5, "training": False}),
        madds=0, flops=0, params=0, mac=0, mac_bytes=0, category=Category.DROPOUT),
    row("dropout_train",
        OpCall("dropout", {"input": spec(8, 64)}, (spec(8, 64),), {"p": 0.5, "training": True}),
        madds=0, flops=8 * 64, params=0, mac=8 * 64 + 8 * 64 + 8 * 64),
    row("dropout_train_p0",
        OpCall("dropout", {"input": spec(8, 64)}, (spec(8, 64),), {"p": 0.0, "training": True}),
        flops=0, mac=0),

    # -- data movement: a view moves nothing; a copy reads what it copies and writes its output --
    row("view_flatten",
        OpCall("copy", {"input": spec(1, 64, 7, 7)}, (spec(1, 64 * 7 * 7),),
               {"args": (1,), "is_view": True}),
        madds=0, flops=0, params=0, mac=0, mac_bytes=0, category=Category.DATA_MOVEMENT),
    row("view_detach",
        OpCall("view", {"input": spec(4, 4)}, (spec(4, 4),), {"is_view": True}),
        mac=0),
    row("copy_channel_shuffle",   # ShuffleNet: moves data, does no arithmetic
        OpCall("copy", {"input": spec(1, 3, 4, 28, 28)}, (spec(1, 4, 3, 28, 28),),
               {"is_view": False}),
        madds=0, flops=0, mac=2 * 3 * 4 * 28 * 28),
    row("copy_cat",
        OpCall("copy", {"tensors": (spec(1, 32, 28, 28), spec(1, 64, 28, 28))},
               (spec(1, 96, 28, 28),), {"dim": 1, "is_view": False}),
        madds=0, flops=0, params=0,
        mac=(32 * 28 * 28 + 64 * 28 * 28) + 96 * 28 * 28,
        category=Category.DATA_MOVEMENT),
    row("copy_gather",   # reads at most what it writes, plus the whole index tensor
        OpCall("copy", {"input": spec(10, 64), "index": spec(5, 64, dtype="int64")}, (spec(5, 64),),
               {"dim": 0, "is_view": False}),
        mac=5 * 64 + 5 * 64 + 5 * 64,
        mac_bytes=4 * 5 * 64 + 8 * 5 * 64 + 4 * 5 * 64),
    row("nonzero",   # the static upper bound: every element's index, (numel, ndim) int64
        OpCall("nonzero", {"input": spec(4, 6)}, (spec(24, 2, dtype="int64"),), {}),
        madds=0, flops=4 * 6, mac=4 * 6 + 24 * 2, mac_bytes=4 * 4 * 6 + 8 * 24 * 2),
    # -- Fourier transforms: 5 N log2 N real FLOPs per complex transform, 2.5 N log2 N real --
    row("fft_complex64",     # 2 transforms of N = 8: 5 * 8 * 3 each
        OpCall("fft", {"input": spec(2, 8, dtype="complex64")}, (spec(2, 8, dtype="complex64"),),
               {"fft_lengths": (8,), "fft_batch": 2}),
        madds=0, flops=2 * 5 * 8 * 3, mac=2 * 8 + 2 * 8, mac_bytes=8 * 2 * 8 + 8 * 2 * 8,
        category=Category.SPECTRAL),
    row("rfft_float32",      # 4 real transforms of N = 16 (half spectrum: 9 bins)
        OpCall("rfft", {"input": spec(4, 16)}, (spec(4, 9, dtype="complex64"),),
               {"fft_lengths": (16,), "fft_batch": 4}),
        flops=4 * 16 * 4 * 5 // 2, mac=4 * 16 + 4 * 9, mac_bytes=4 * 4 * 16 + 8 * 4 * 9),
    row("irfft2_float32",    # 3 real-output 2-D transforms of 8 x 4 (M = 32 = 2^5)
        OpCall("irfft", {"input": spec(3, 8, 3, dtype="complex64")}, (spec(3, 8, 4),),
               {"fft_lengths": (8, 4), "fft_batch": 3}),
        flops=3 * 32 * 5 * 5 // 2, mac=3 * 8 * 3 + 3 * 8 * 4,
        mac_bytes=8 * 3 * 8 * 3 + 4 * 3 * 8 * 4),
    row("fft_length_6",      # not a power of two: the same formula, rounded up
        OpCall("fft", {"input": spec(6, dtype="complex64")}, (spec(6, dtype="complex64"),),
               {"fft_lengths": (6,), "fft_batch": 1}),
        flops=math.ceil(5 * 6 * math.log2(6))),
]


@pytest.mark.parametrize("call, expected", ROWS)
def test_formula_table(call: OpCall, expected: dict) -> None:
    cost, category = cost_of(call)
    expected = dict(expected)
    want_category = expected.pop("category", None)
    got = {name: getattr(cost, name) for name in expected}
    assert got == expected
    if want_category is not None:
        assert category is want_category


# ---- invariants over every row ----------------------------------------------------------------

def _all_float32(call: OpCall) -> bool:
    return all(s.dtype == "float32" for s in (*call.inputs(), *call.outputs))


@pytest.mark.parametrize("call, expected", ROWS)
def test_row_invariants(call: OpCall, expected: dict) -> None:
    cost, category = cost_of(call)
    assert all(isinstance(v, int) and not isinstance(v, bool) for v in cost.as_dict().values())
    assert all(v >= 0 for v in cost.as_dict().values())
    if cost.madds:
        assert category in CONTRACTION
    assert cost.flops >= 2 * cost.madds
    if _all_float32(call):   # bytes are the same accesses at 4 bytes each
        assert cost.mac_bytes == 4 * cost.mac


def test_stride_padding_dilation_only_change_the_output_map() -> None:
    x, w, out = spec(1, 16, 28, 28), param(32, 16, 3, 3), spec(1, 32, 14, 14)
    plain = cost_of(conv_call(x, w, None, out))[0]
    for attrs in ({"stride": 2}, {"stride": 2, "padding": 1},
                  {"stride": 2, "padding": 2, "dilation": 2},
                  {"stride": (2, 2), "padding": (3, 3), "dilation": (3, 3)}):
        assert cost_of(conv_call(x, w, None, out, **attrs))[0] == plain


# ---- ShuffleNet V2 MAC identities --------------------------------------------------------------

def pointwise(h: int, w: int, c1: int, c2: int, g: int = 1) -> Cost:
    call = conv_call(spec(1, c1, h, w), param(c2, c1 // g, 1, 1), None, spec(1, c2, h, w), groups=g)
    return cost_of(call)[0]


@pytest.mark.parametrize("h, w, c1, c2", [(56, 56, 128, 128), (56, 56, 64, 256), (28, 28, 32, 512),
                                          (7, 7, 1024, 1024), (14, 14, 512, 128)])
def test_g1_pointwise_mac(h: int, w: int, c1: int, c2: int) -> None:
    """1x1 conv: B = hw*c1*c2, MAC = hw(c1+c2) + c1*c2 >= 2*sqrt(hw*B) + B/hw, equal iff
    c1 == c2."""
    cost = pointwise(h, w, c1, c2)
    hw, B = h * w, h * w * c1 * c2
    assert cost.madds == B
    assert cost.mac == hw * (c1 + c2) + c1 * c2
    # exact integer form of the bound: (MAC - B/hw)^2 >= 4*hw*B, both sides integers
    assert B % hw == 0
    slack = (cost.mac - B // hw) ** 2 - 4 * hw * B
    assert slack >= 0
    assert (slack == 0) == (c1 == c2)
    bound = 2 * math.sqrt(hw * B) + B / hw
    assert cost.mac >= bound or math.isclose(cost.mac, bound)
    if c1 == c2:
        assert cost.mac == 2 * math.isqrt(hw * B) + B // hw
        assert math.isclose(cost.mac, bound)


def test_g1_equal_width_minimises_mac_at_fixed_madds() -> None:
    """ShuffleNet V2 Table 1 shape: same B, c1:c2 = 1:1, 1:2, 1:6, 1:12 -> MAC grows with the
    ratio."""
    h = w = 56
    B = h * w * 128 * 128
    macs = []
    for c1, c2 in ((128, 128), (90, 180), (52, 312), (36, 432)):
        cost = pointwise(h, w, c1, c2)
        assert abs(cost.madds - B) <= B * 6 // 100   # the paper's widths keep B within 6%
        macs.append(cost.mac)
    assert macs == sorted(macs) and len(set(macs)) == len(macs)


@pytest.mark.parametrize("g", [1, 2, 4, 8])
def test_g2_group_pointwise_mac(g: int) -> None:
    """1x1 group conv: MAC = hw(c1+c2) + c1*c2/g = hw*c1 + B*g/c1 + B/hw, with B = hw*c1*c2/g."""
    h, w, c1, c2 = 28, 28, 64, 128
    cost = pointwise(h, w, c1, c2, g)
    hw = h * w
    B = hw * c1 * c2 // g
    assert cost.madds == B
    assert cost.mac == hw * (c1 + c2) + c1 * c2 // g
    assert Fraction(cost.mac) == hw * c1 + Fraction(B * g, c1) + Fraction(B, hw)


def test_g2_mac_grows_with_groups_at_fixed_madds() -> None:
    """Fixed B and c1: widening c2 with g keeps B, and MAC rises with g (ShuffleNet V2 Table 2)."""
    h, w, c1 = 56, 56, 128
    B = h * w * c1 * c1
    macs = []
    for g in (1, 2, 4, 8):
        cost = pointwise(h, w, c1, c1 * g, g)
        assert cost.madds == B
        macs.append(cost.mac)
    assert macs == sorted(macs) and len(set(macs)) == len(macs)


# ---- MobileNet V1: depthwise separable = 1/N + 1/Dk^2 of the standard conv -------------------

@pytest.mark.parametrize("Dk, M, N, DF", [(3, 32, 64, 112), (3, 512, 512, 14), (5, 16, 24, 28),
                                          (7, 8, 3, 10)])
def test_depthwise_separable_ratio(Dk: int, M: int, N: int, DF: int) -> None:
    x = spec(1, M, DF, DF)
    standard = cost_of(conv_call(x, param(N, M, Dk, Dk), None, spec(1, N, DF, DF)))[0]
    dw = cost_of(conv_call(x, param(M, 1, Dk, Dk), None, spec(1, M, DF, DF), groups=M))[0]
    pw = cost_of(conv_call(spec(1, M, DF, DF), param(N, M, 1, 1), None, spec(1, N, DF, DF)))[0]
    assert standard.madds == Dk * Dk * M * N * DF * DF
    assert dw.madds == Dk * Dk * M * DF * DF
    assert pw.madds == M * N * DF * DF
    assert Fraction(dw.madds + pw.madds, standard.madds) == Fraction(1, N) + Fraction(1, Dk ** 2)
    assert Fraction(dw.params + pw.params, standard.params) == Fraction(1, N) + Fraction(1, Dk ** 2)


# ---- ShuffleNet V1 unit costs (bottleneck m, g groups, h x w x c input) -------------------------

def test_shufflenet_v1_unit_madds() -> None:
    """ResNet unit hw(2cm + 9m^2); ResNeXt unit hw(2cm + 9m^2/g); ShuffleNet unit hw(2cm/g + 9m)."""
    h = w = 28
    c, m, g = 240, 60, 3
    x = spec(1, c, h, w)

    def conv(cin: int, cout: int, k: int, groups: int = 1) -> int:
        call = conv_call(spec(1, cin, h, w), param(cout, cin // groups, k, k), None,
                         spec(1, cout, h, w), groups=groups)
        return cost_of(call)[0].madds

    assert x.numel == h * w * c
    resnet = conv(c, m, 1) + conv(m, m, 3) + conv(m, c, 1)
    resnext = conv(c, m, 1) + conv(m, m, 3, g) + conv(m, c, 1)
    shufflenet = conv(c, m, 1, g) + conv(m, m, 3, m) + conv(m, c, 1, g)
    assert resnet == h * w * (2 * c * m + 9 * m * m)
    assert resnext == h * w * (2 * c * m + 9 * m * m // g)
    assert shufflenet == h * w * (2 * c * m // g + 9 * m)


# ---- the registry ------------------------------------------------------------------------------

def test_registry_refuses_a_duplicate_name() -> None:
    before = FORMULAS["relu"]

    def impostor(call: OpCall) -> Cost:
        """Never registered."""
        return Cost()

    with pytest.raises(KeyError, match="relu"):
        formula("relu", category=Category.ACTIVATION)(impostor)
    assert FORMULAS["relu"] is before


def test_registry_refusal_registers_nothing() -> None:
    """A refused registration must not leave its other names behind (all or nothing)."""
    fresh = "test_formulas_only_fresh_name"

    def impostor(call: OpCall) -> Cost:
        """Never registered."""
        return Cost()

    try:
        with pytest.raises(KeyError):
            formula(fresh, "relu", category=Category.ACTIVATION)(impostor)
        assert fresh not in FORMULAS
    finally:
        FORMULAS.pop(fresh, None)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_every_formula_has_a_docstring(name: str) -> None:
    doc = FORMULAS[name].formula.__doc__
    assert doc and doc.strip(), f"formula {name!r} has no docstring"


def test_table_covers_every_op_family() -> None:
    """The families the README promises, each with at least one row above."""
    covered = {p.values[0].op for p in ROWS}
    assert covered >= {"conv", "conv_transpose", "linear", "matmul", "addmm", "einsum", "sdpa",
                       "mha", "batch_norm", "layer_norm", "group_norm", "relu", "add", "softmax",
                       "max_pool", "avg_pool", "adaptive_avg_pool", "interpolate", "embedding",
                       "dropout", "view", "copy"}
