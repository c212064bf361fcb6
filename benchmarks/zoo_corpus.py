"""The model corpus of benchmarks/zoo.py: which timm, Hugging Face and torchvision models it runs,
and how each one is built with its inputs (shape specs for costmodel, real tensors for the oracle).

Nothing is downloaded: timm with pretrained=False, torchvision with weights=None, transformers from
small configs (`AutoModel.from_config`).
"""
from __future__ import annotations

import hashlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any

SIZE_WORDS = ("atto", "femto", "pico", "nano", "tiny", "xxs", "xxsmall", "xs", "xsmall", "mini",
              "small", "s", "lite", "light", "mobile", "b0", "little", "medium", "m", "base", "b")


@dataclass
class Built:
    """A model and its inputs: `specs`/`kwspecs` for costmodel.analyze, `args`/`kwargs` (real
    tensors, same shapes) for the real forward and the oracle."""

    model: Any
    specs: tuple = ()
    kwspecs: dict = field(default_factory=dict)
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    input: str = ""
    note: str = ""


# ---------------------------------------------------------------------------------------- timm
def _size_rank(name: str) -> tuple:
    tokens = re.split(r"[_.\-]", name)
    word = min((SIZE_WORDS.index(t) for t in tokens if t in SIZE_WORDS), default=len(SIZE_WORDS))
    number = re.search(r"\d+", name)
    return (word, int(number.group()) if number else 0, len(name), name)


def timm_names(minimum: int = 255) -> list[str]:
    """One model per family (module, name stem), the smallest by its name, then a second per
    family in order until `minimum` is reached."""
    import timm
    import timm.models._registry as registry

    families: dict[tuple[str, str], list[str]] = {}
    for name in timm.list_models():
        key = (registry._model_to_module.get(name, "?"), re.match(r"[a-z]+", name).group())
        families.setdefault(key, []).append(name)
    ranked = [sorted(names, key=_size_rank) for _, names in sorted(families.items())]
    chosen = _shuffled([names[0] for names in ranked])
    for depth in (1, 2):
        more = _shuffled([names[depth] for names in ranked if len(names) > depth])
        chosen += more[:max(0, minimum - len(chosen))]
    return chosen


def _shuffled(names: list[str]) -> list[str]:
    """A stable shuffle (by hash): a partial run is a sample, not the first letters."""
    return sorted(names, key=lambda n: hashlib.md5(n.encode()).hexdigest())


def build_timm(name: str) -> Built:
    import timm
    import timm.data
    import torch

    model = timm.create_model(name, pretrained=False).eval()
    size = tuple(timm.data.resolve_data_config({}, model=model)["input_size"])
    shape = (1, *size)
    spec = "x".join(map(str, shape))
    return Built(model, (spec,), {}, (torch.randn(shape),), {}, spec)


# --------------------------------------------------------------------------------- torchvision
def _tv_kind(name: str) -> str:
    import torchvision.models as tvm

    for kind in ("detection", "segmentation", "video", "optical_flow", "quantization"):
        if name in tvm.list_models(module=getattr(tvm, kind)):
            return kind
    return "classification"


def torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models())


def build_torchvision(name: str) -> Built:
    import torch
    from torchvision.models import get_model

    kind = _tv_kind(name)
    kw: dict[str, Any] = {"weights": None}
    if kind == "quantization":
        kw["quantize"] = True
    if kind in ("detection", "segmentation"):
        kw["weights_backbone"] = None
    model = get_model(name, **kw).eval()
    if kind == "detection":
        shape = (1, 3, 800, 800)          # torchvision's own _ops were counted at 800x800
    elif kind == "segmentation":
        shape = (1, 3, 224, 224)          # not the weights' 520: one thread must run it twice
    elif kind == "video":
        side = 112 if name in ("r3d_18", "mc3_18", "r2plus1d_18") else 224
        shape = (1, 3, 16, side, side)
    elif kind == "optical_flow":
        shape = (1, 3, 224, 224)
    else:
        side = getattr(model, "image_size", None) or (299 if "inception" in name else 224)
        shape = (1, 3, side, side)
    spec = "x".join(map(str, shape))
    if kind == "optical_flow":
        return Built(model, (spec, spec), {}, (torch.randn(shape), torch.randn(shape)), {},
                     f"2 x {spec}")
    return Built(model, (spec,), {}, (torch.randn(shape),), {}, spec)


# -------------------------------------------------------------------------------- transformers
SMALL = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
    intermediate_size=64, vocab_size=128, max_position_embeddings=128, head_dim=16,
    d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
    decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, d_ff=64, d_kv=16,
    num_layers=2, num_decoder_layers=1, num_heads=2, n_embd=32, n_layer=2, n_head=2,
    n_positions=128, n_inner=64, embed_dim=32, embedding_size=32, projection_dim=32,
    num_experts=4, num_local_experts=4, n_routed_experts=4, num_experts_per_tok=2,
    moe_intermediate_size=32, shared_expert_intermediate_size=32, n_group=1, topk_group=1,
    kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
    max_source_positions=32, encoder_hidden_size=32, text_embed_dim=32, vision_embed_dim=32,
    rotary_dim=8,
)
LAYER_LISTS = ("depths", "num_layers_per_stage", "layers", "block_repeats")
MOE_ATTRS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")
EXPERTS = ("eager", "grouped_mm")
SEQ = 32


def _shrunk(config, widths: bool) -> dict:
    from transformers import PretrainedConfig

    attrs = config.to_dict()
    out: dict[str, Any] = {}
    for key, value in SMALL.items():
        if key in attrs and isinstance(attrs[key], int) and not isinstance(attrs[key], bool):
            if widths or "layers" in key or key in ("n_layer", "vocab_size"):
                out[key] = value
    for key in LAYER_LISTS:
        if isinstance(attrs.get(key), list) and all(isinstance(v, int) for v in attrs[key]):
            out[key] = [1] * len(attrs[key])
    vocab = out.get("vocab_size")
    pad = attrs.get("pad_token_id")
    if vocab and isinstance(pad, int) and pad >= vocab:
        out["pad_token_id"] = 1                 # an embedding's padding_idx must be in range
    layers = attrs.get("num_hidden_layers")
    if isinstance(layers, int) and "num_hidden_layers" in out:
        for key, value in attrs.items():       # per-layer lists (layer_types, ...) follow
            if isinstance(value, list) and len(value) == layers and key not in out:
                out[key] = value[:out["num_hidden_layers"]]
    for key in getattr(config, "sub_configs", {}) or {}:
        sub = getattr(config, key, None)
        if isinstance(sub, PretrainedConfig):
            out[key] = {**sub.to_dict(), **_shrunk(sub, widths)}
    return out


def hf_config_class(model_type: str):
    from transformers import CONFIG_MAPPING

    return CONFIG_MAPPING[model_type]


def hf_names(only: str | None = None) -> tuple[list[str], dict[str, str]]:
    """Model types with a base model class; MoE types twice (one per expert implementation).
    Also returns the skipped types with the reason. `only`: a regex on the model type (the
    default configs are built only for those)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    names, skipped = [], {}
    for model_type in CONFIG_MAPPING_NAMES:
        if only and not any(re.search(only, model_type + suffix)
                            for suffix in ("", *(f"[{impl}]" for impl in EXPERTS))):
            continue
        if model_type not in MODEL_MAPPING_NAMES:
            skipped[model_type] = "no base model class in MODEL_MAPPING"
            continue
        try:
            config = hf_config_class(model_type)()
        except Exception as exc:  # noqa: BLE001 - the reason is recorded
            skipped[model_type] = f"default config does not build: {one_line(exc)}"
            continue
        if _is_moe(config):
            names += [f"{model_type}[{impl}]" for impl in EXPERTS]
        else:
            names.append(model_type)
    return names, skipped


def _is_moe(config) -> bool:
    configs = [config] + [getattr(config, k, None) for k in getattr(config, "sub_configs", {})]
    return any(isinstance(getattr(c, a, None), int) and getattr(c, a) > 1
               for c in configs if c is not None for a in MOE_ATTRS)


def _set_experts(config, impl: str) -> None:
    """Only the (sub-)configs with experts: a vision tower refuses the setting."""
    if _moe_here(config):
        config._experts_implementation = impl
        return
    config._experts_implementation = {key: impl for key in getattr(config, "sub_configs", {})
                                      if _moe_here(getattr(config, key, None))}


def _moe_here(config) -> bool:
    return any(isinstance(getattr(config, a, None), int) and getattr(config, a) > 1
               for a in MOE_ATTRS)


def _image_size(config) -> tuple[int, int]:
    for c in (config, getattr(config, "vision_config", None)):
        size = getattr(c, "image_size", None)
        if isinstance(size, int):
            return size, size
        if isinstance(size, (list, tuple)) and len(size) == 2:
            return int(size[0]), int(size[1])
    return 224, 224


def _hf_inputs(model, config) -> tuple[dict, dict, str]:
    import torch

    params = inspect.signature(model.forward).parameters
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    specs: dict[str, str] = {}
    real: dict[str, Any] = {}
    if "input_ids" in params:
        vocab = getattr(text, "vocab_size", None) or 100
        specs["input_ids"] = f"1x{SEQ}:int64"
        real["input_ids"] = torch.randint(4, max(5, min(vocab, 100)), (1, SEQ))
        if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in params:
            specs["decoder_input_ids"] = specs["input_ids"]
            real["decoder_input_ids"] = real["input_ids"].clone()
        image_tokens = any(hasattr(config, a) for a in ("image_token_id", "image_token_index"))
        required = params.get("pixel_values") is not None and \
            params["pixel_values"].default is inspect.Parameter.empty
        if "pixel_values" in params and (required or not image_tokens):   # CLIP-like, BLIP-2
            h, w = _image_size(config)
            specs["pixel_values"] = f"1x3x{h}x{w}"
            real["pixel_values"] = torch.randn(1, 3, h, w)
    elif "pixel_values" in params:
        h, w = _image_size(config)
        channels = getattr(config, "num_channels", None) or 3
        shape = (1, channels, h, w)
        specs["pixel_values"] = "x".join(map(str, shape))
        real["pixel_values"] = torch.randn(shape)
    elif "input_values" in params:
        shape = (1, 8000)
        if isinstance(getattr(config, "max_length", None), int) and hasattr(config, "num_mel_bins"):
            shape = (1, config.max_length, config.num_mel_bins)   # spectrogram transformers
        specs["input_values"] = "x".join(map(str, shape))
        real["input_values"] = torch.randn(shape)
    elif "input_features" in params:
        bins = getattr(config, "num_mel_bins", None) or getattr(config, "feature_size", 80)
        frames = 2 * getattr(config, "max_source_positions", 32)
        shape = (1, bins, frames)
        specs["input_features"] = "x".join(map(str, shape))
        real["input_features"] = torch.randn(shape)
    else:
        wanted = ", ".join(list(params)[:4])
        raise LookupError(f"harness: no input recipe for forward({wanted}, ...)")
    return specs, real, ", ".join(f"{k}={v}" for k, v in specs.items())


def build_hf(name: str) -> Built:
    import torch
    import transformers

    model_type, impl = (name[:-1].split("[") + [None])[:2] if name.endswith("]") else (name, None)
    cls = hf_config_class(model_type)
    default = cls()
    errors = []
    for widths in (True, False):
        try:
            config = cls(**_shrunk(default, widths))
            if impl:
                _set_experts(config, impl)
            if not widths:
                _refuse_large(config)
            torch.manual_seed(0)
            model = transformers.AutoModel.from_config(config).eval()
            break
        except Exception as exc:  # noqa: BLE001 - try the next, less shrunk config
            errors.append(one_line(exc))
    else:
        raise RuntimeError(f"harness: small config does not build: {errors[-1]}")
    kwspecs, real, described = _hf_inputs(model, model.config)
    note = f"experts_implementation={impl}" if impl else ""
    return Built(model, (), kwspecs, (), real, described, note)


def _refuse_large(config, limit: int = 100_000_000) -> None:
    """Default widths can mean billions of parameters: count them on meta first."""
    import torch
    import transformers

    with torch.device("meta"):
        model = transformers.AutoModel.from_config(config)
    count = sum(p.numel() for p in model.parameters())
    if count > limit:
        raise ValueError(f"{count:,} parameters at the default widths")


def one_line(exc: BaseException, width: int = 600) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:width]


BUILDERS = {"timm": build_timm, "torchvision": build_torchvision, "hf": build_hf}
