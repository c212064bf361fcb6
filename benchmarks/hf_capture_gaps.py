"""Which Hugging Face architectures the eager capture takes, on small configs (nothing downloaded):
captured or not (and why), complete or partial, and MAdds against FlopCounterMode / 2 on a real
forward of the same model under the MATH SDPA backend (issue 13, section 2).

    PYTHONPATH=/path/to/checkout python benchmarks/hf_capture_gaps.py [model_type ...]

Run it with two checkouts to see what a change captures. Results: benchmarks/results/
hf_capture_gaps.md.
"""
from __future__ import annotations

import logging
import platform
import sys
import time
import warnings

import torch
import transformers as T
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import costmodel

SMALL = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
             vocab_size=100, max_position_embeddings=64, d_model=32, encoder_layers=1,
             decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
             encoder_ffn_dim=64, decoder_ffn_dim=64, embedding_size=32, num_queries=10,
             pad_token_id=0, bos_token_id=0, eos_token_id=2, decoder_start_token_id=0,
             max_encoder_position_embeddings=64, max_decoder_position_embeddings=64)
TEXT = ["deberta", "deberta-v2", "longformer", "big_bird", "convbert", "roformer", "bart", "mbart",
        "marian", "pegasus", "blenderbot", "blenderbot-small", "m2m_100", "biogpt", "led",
        "plbart", "fsmt", "xglm", "mvp", "bigbird_pegasus", "nllb-moe", "switch_transformers",
        "mpnet", "squeezebert", "layoutlm", "xlm", "electra", "canine", "nystromformer", "yoso",
        "mra", "ibert", "markuplm", "ernie", "rembert", "roc_bert"]
DETR = ["detr", "table-transformer", "conditional_detr"]
OTHER = ["vilt", "vjepa2"]
SEQ = ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
       "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "num_queries")


def config(name: str) -> dict:
    if name in DETR:
        backbone = T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32],
                                  depths=[1, 1, 1, 1], out_features=["stage4"])
        return {**{k: SMALL[k] for k in SEQ}, "use_timm_backbone": False,
                "use_pretrained_backbone": False, "backbone_config": backbone}
    if name == "vilt":
        return dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64, vocab_size=100, image_size=32, patch_size=8,
                    max_image_length=-1)
    if name == "vjepa2":
        return dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2,
                    crop_size=32, patch_size=8, frames_per_clip=2, tubelet_size=2,
                    pred_hidden_size=32, pred_num_hidden_layers=1, pred_num_attention_heads=2)
    kw = dict(SMALL)
    if name in ("longformer", "led"):
        kw["attention_window"] = 4 if name == "longformer" else [4]
    if name in ("big_bird", "bigbird_pegasus"):
        kw["attention_type"] = "original_full"
    if name in ("nllb-moe", "switch_transformers"):
        kw.update(num_experts=2, d_ff=64, d_kv=16, num_layers=1, num_heads=2,
                  num_decoder_layers=1)
    if name == "fsmt":
        kw.update(src_vocab_size=100, tgt_vocab_size=100, langs=["en", "de"])
    if name == "marian":
        kw["decoder_vocab_size"] = 100
    return kw


def inputs(name: str, model) -> tuple[tuple, dict, tuple, dict]:
    """(specs, keyword specs, real inputs, real keyword inputs)."""
    if name in DETR:
        return ("1x3x64x64",), {}, (torch.randn(1, 3, 64, 64),), {}
    if name == "vilt":
        return (("1x8:int64",), {"pixel_values": "1x3x32x32"},
                (torch.ones(1, 8, dtype=torch.long),), {"pixel_values": torch.randn(1, 3, 32, 32)})
    if name == "vjepa2":
        return ("1x2x3x32x32",), {}, (torch.randn(1, 2, 3, 32, 32),), {}
    ids = torch.full((2, 16), 3, dtype=torch.long)
    if getattr(model.config, "is_encoder_decoder", False):
        return (("2x16:int64",), {"decoder_input_ids": "2x8:int64"}, (ids,),
                {"decoder_input_ids": ids[:, :8]})
    return ("2x16:int64",), {}, (ids,), {}


def row(name: str) -> str:
    try:
        model = T.AutoModel.from_config(T.CONFIG_MAPPING[name](**config(name))).eval()
    except Exception as exc:  # noqa: BLE001 - a config this script cannot build
        return f"| {name} | not built | {type(exc).__name__} | | |"
    specs, named, real, real_named = inputs(name, model)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, \
            torch.no_grad():
        model(*real, **real_named)
    oracle = counter.get_total_flops() // 2
    try:
        report = costmodel.analyze(model, *specs, kwargs=named)
    except Exception as exc:  # noqa: BLE001 - the reason is the result
        return f"| {name} | no | {str(exc).split(': ', 1)[-1][:90]} | | {oracle:,} |"
    totals = report.totals
    partial = f" ({', '.join(totals.unsupported)})" if totals.unsupported else ""
    same = "=" if totals.madds == oracle else "!="
    return (f"| {name} | {report.capture} | {totals.status}{partial} | {totals.madds:,} {same} | "
            f"{oracle:,} |")


def main() -> None:
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    names = sys.argv[1:] or TEXT + DETR + OTHER
    print(f"{platform.node()} ({platform.machine()}), torch {torch.__version__}, transformers "
          f"{T.__version__}, {time.strftime('%Y-%m-%d')}\n")
    print("| model type | captured | status | MAdds | FlopCounterMode / 2 |")
    print("|---|---|---|---|---|")
    for name in names:
        print(row(name), flush=True)


if __name__ == "__main__":
    main()
