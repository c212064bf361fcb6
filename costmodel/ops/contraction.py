"""Bindings of the contractions: linear, bilinear, matmul, addmm, einsum, attention."""
from __future__ import annotations

from typing import Any

from .registry import Binding, bind, bind_op
from .shape_rules import _grouped_mm, _linear, _matmul, _mha, _sdpa


def _mha_extra(b: dict, out: Any) -> dict:
    return {"self_attention": b["query"] is b["key"] and b["key"] is b["value"]}


bind("linear", "F.linear", ("input", "weight", "bias"), shape=_linear)
bind("bilinear", "F.bilinear", ("input1", "input2", "weight", "bias"))
bind("matmul", "torch.matmul Tensor.matmul Tensor.__matmul__", ("input", "other"), shape=_matmul)
bind("matmul", "torch.mm Tensor.mm torch.bmm Tensor.bmm", ("input", "other"),
     keywords={"mat2": "other"})
bind("matmul", "torch.mv Tensor.mv", ("input", "other"), keywords={"vec": "other"})
bind("matmul", "torch.dot Tensor.dot torch.inner", ("input", "other"),
     keywords={"tensor": "other"})
bind("matmul", "Tensor.__rmatmul__", ("other", "input"))
bind("addmm", "torch.addmm Tensor.addmm", ("input", "mat1", "mat2", "beta", "alpha"))
bind("addmm", "torch.baddbmm Tensor.baddbmm", ("input", "mat1", "mat2", "beta", "alpha"),
     keywords={"batch1": "mat1", "batch2": "mat2"})
bind("addmm", "torch.addmv Tensor.addmv", ("input", "mat1", "mat2", "beta", "alpha"),
     keywords={"mat": "mat1", "vec": "mat2"})
bind("solve_triangular", "torch.linalg.solve_triangular", ("A", "B", "upper", "left",
                                                           "unitriangular"))
bind("grouped_mm", "torch._grouped_mm F.grouped_mm",
     ("input", "mat2", "offs", "bias", "out_dtype"), shape=_grouped_mm,
     keywords={"mat_a": "input", "mat_b": "mat2", "self": "input"})
# transformers' opaque stand-in for grouped_mm, taken when it sees a trace or compilation (as it
# does under costmodel's eager capture): the same contraction, (S, K) x (E, K, N) -> (S, N).
bind_op("grouped_mm", "transformers::grouped_mm_fallback", ("input", "mat2", "offs"),
        shape=_grouped_mm)
bind("einsum", "torch.einsum", ("equation", "*operands"), spread=True)
bind("sdpa", "F.scaled_dot_product_attention",
     ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"),
     shape=_sdpa)
bind("mha", "F.multi_head_attention_forward",
     ("query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight", "in_proj_bias",
      "bias_k", "bias_v", "add_zero_attn", "dropout_p", "out_proj_weight", "out_proj_bias",
      "training", "key_padding_mask", "need_weights", "attn_mask", "use_separate_proj_weight",
      "q_proj_weight", "k_proj_weight", "v_proj_weight", "static_k", "static_v",
      "average_attn_weights", "is_causal"), shape=_mha, extra=_mha_extra)

# fp8 matmul: (M, K) x (K, N), scaled, written at out_dtype (the operands' own 1-byte elements)
bind("scaled_mm", "torch._scaled_mm", ("input", "mat2", "scale_a", "scale_b", "bias",
                                       "scale_result", "out_dtype", "use_fast_accum"),
     keywords={"self": "input"})

# The fused attention kernels called directly, (B, H, L, E) like F.scaled_dot_product_attention;
# only the attention output is recorded (logsumexp, seeds and debug masks are bookkeeping).
_FIRST = {"result": lambda b, out: out[0]}
bind_op("sdpa", "aten::_scaled_dot_product_flash_attention_for_cpu",
        ("query", "key", "value", "dropout_p", "is_causal"), **_FIRST)
bind_op("sdpa", "aten::_scaled_dot_product_flash_attention",
        ("query", "key", "value", "dropout_p", "is_causal", "return_debug_mask"), **_FIRST)
bind_op("sdpa", "aten::_scaled_dot_product_efficient_attention "
        "aten::_scaled_dot_product_cudnn_attention",
        ("query", "key", "value", "attn_mask", "compute_log_sumexp", "dropout_p", "is_causal"),
        **_FIRST)
# the math backend writes the attention weights too: both outputs are recorded
bind_op("sdpa", "aten::_scaled_dot_product_attention_math",
        ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "dropout_mask"))


def _varlen(b: Binding, args: tuple, kwargs: dict) -> str | None:
    """Packed sequences (cum_seq given): the cost depends on each sequence's length."""
    packed = b.rule.bind(args, kwargs).get("cum_seq_q") if b.rule is not None else None
    return None if packed is None else (
        f"{b.name} attends within packed sequences whose lengths are tensor values (cum_seq): "
        f"its cost is the upper bound, every query attending to max_k keys")


# The flash / memory-efficient kernels, (B, L, H, E), or packed (T, H, E) with cumulative
# sequence offsets (variable length: an upper bound, CM009); torch.nn.attention.varlen's op.
bind_op("flash_attention", "aten::_flash_attention_forward",
        ("query", "key", "value", "cum_seq_q", "cum_seq_k", "max_q", "max_k", "dropout_p",
         "is_causal", "return_debug_mask"), sizes=_varlen, **_FIRST)
bind_op("flash_attention", "aten::_efficient_attention_forward",
        ("query", "key", "value", "attn_mask", "cum_seq_q", "cum_seq_k", "max_q", "max_k",
         "dropout_p", "custom_mask_type", "compute_log_sumexp"), sizes=_varlen, **_FIRST)
bind_op("flash_attention", "torch_attn::_varlen_attn",
        ("query", "key", "value", "cum_seq_q", "cum_seq_k", "max_q", "max_k", "is_causal", "scale",
         "window_size", "enable_gqa", "seqused_k", "block_table", "num_splits"),
        sizes=_varlen, **_FIRST)
