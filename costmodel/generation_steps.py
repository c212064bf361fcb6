"""The steps analyze_generation() captures: one adapter per kind of model, each turning (batch,
context, new tokens) into a Report of that step and the bytes of the cache it starts from.

- `_HFAdapter`: a Hugging Face causal LM, with its own cache class built from its config;
- `_EncDecAdapter`: a Hugging Face encoder-decoder (the encoder once, then decoder steps with
  self- and cross-attention caches);
- `_PlainAdapter`: any PyTorch model, through the documented `step=` function.
"""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from .api import analyze
from .core.report import Report
from .errors import AnalysisError

StepInputs = Callable[[int, int, int], Mapping[str, Any]]


class _Step(nn.Module):
    """One forward of a Hugging Face model with a given cache object (built outside the capture,
    so filling it is not counted as this step's work; growing it in the step is)."""

    def __init__(self, model: nn.Module, cache: Any, cache_arg: str) -> None:
        super().__init__()
        self.model = model
        self._cache = [cache]
        self._arg = cache_arg

    def forward(self, input_ids: torch.Tensor) -> Any:
        out = self.model(input_ids=input_ids, use_cache=True, **{self._arg: self._cache[0]})
        return out.logits if hasattr(out, "logits") else out[0]


class _HFAdapter:
    """Decode steps of a Hugging Face causal LM with its own cache: a DynamicCache, or the
    QuantizedCache its generation config asks for (`cache_implementation="quantized"`, with
    `cache_config`: backend, nbits, q_group_size, residual_length).

    - backend "fp8" (built into transformers): the steps are captured with the real cache, so
      the quantize / dequantize work is costed; its bytes are the stored float8 keys and values
      plus one float32 scale per tensor (what the cache object holds);
    - backends "quanto" / "hqq" (outside libraries): the steps are captured with a DynamicCache
      of the same shapes (the attention reads the dequantized cache, so MAdds are the same), the
      cache's own (de)quantization kernels are not costed and the generation says so (`notes`,
      status partial); the bytes follow `GroupQuantizedKV` (analysis/generation.py).
    """

    first = 0   # the first decode step's context is the prompt length
    kv_form = None   # a GroupQuantizedKV where the cache bytes are not the captured tensors'
    notes: tuple[str, ...] = ()

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        import transformers

        self.model = model
        self.config = model.config.get_text_config()
        self.dtype = dtype
        self._cache_cls = transformers.DynamicCache
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "past_key_values" if "past_key_values" in params else "cache"
        cfg = self.config
        heads = _first(cfg, "num_attention_heads", "n_head")
        self.kv_heads = _first(cfg, "num_key_value_heads", default=heads)
        width = _first(cfg, "hidden_size", "n_embd")
        self.head_dim = getattr(cfg, "head_dim", None) or width // heads
        self.key_dim = self.value_dim = self.head_dim
        latent, rope = getattr(cfg, "kv_lora_rank", None), getattr(cfg, "qk_rope_head_dim", None)
        if latent and rope:
            # MLA (DeepSeek-V3 in transformers) keeps the compressed latent in the key slot and
            # the shared rotary key in the value slot, one "head" for all
            self.kv_heads, self.key_dim, self.value_dim = 1, latent, rope
        self.layers = _first(cfg, "num_hidden_layers", "n_layer")
        self.quantized = _quantized_cache(model)
        if self.quantized is not None:
            self._quantize(transformers, *self.quantized)

    def _quantize(self, tf: Any, backend: str, opts: dict[str, Any]) -> None:
        from .analysis.generation import GroupQuantizedKV

        if backend == "fp8":
            self._cache_cls = lambda config: tf.QuantizedCache("fp8", config=config)
            return
        if backend not in ("quanto", "hqq"):
            raise AnalysisError(f"unknown quantized cache backend {backend!r} in the model's "
                                f"generation config (transformers knows quanto, hqq, fp8)")
        known = {"nbits": "nbits", "q_group_size": "group", "residual_length": "residual"}
        self.kv_form = GroupQuantizedKV(
            self.layers, self.kv_heads * self.head_dim, self.dtype.itemsize,
            **{known[k]: int(v) for k, v in opts.items() if k in known and v is not None})
        self.notes = (f"KV cache quantized by {backend} ({self.kv_form.nbits} bits): its "
                      f"quantize/dequantize kernels are not costed (steps captured over a "
                      f"full-precision cache of the same shape)",)

    def cache(self, batch: int, context: int) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cache = self._cache_cls(config=self.config)
            keys = (batch, self.kv_heads, context, self.key_dim)
            values = (batch, self.kv_heads, context, self.value_dim)
            if context:
                for layer in range(self.layers):
                    cache.update(torch.empty(keys, dtype=self.dtype, device="meta"),
                                 torch.empty(values, dtype=self.dtype, device="meta"), layer)
        return cache

    def breaks(self) -> list[int]:
        """Contexts where a cache layer stops growing: a sliding-window layer keeps the last
        `window - 1` tokens (transformers' DynamicSlidingWindowLayer)."""
        layers = getattr(self.cache(1, 0), "layers", [])
        return sorted({w - 1 for w in (getattr(lay, "sliding_window", None) for lay in layers)
                       if w})

    def step(self, batch: int, context: int, new: int, dtype: str | None) -> tuple[Report, int]:
        cache = self.cache(batch, context)
        kv = _cache_bytes(cache, dtype)   # before the step grows it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = analyze(_Step(self.model, cache, self.cache_arg),
                             kwargs={"input_ids": f"{batch}x{new}:int64"}, dtype=dtype)
        return report, kv


class _EncDecStep(nn.Module):
    """One decoder step of an encoder-decoder over cached self- and cross-attention keys/values
    (the encoder output is given: the encoder ran once, in the prefill)."""

    def __init__(self, model: nn.Module, encoded: torch.Tensor, cache: Any) -> None:
        super().__init__()
        self.model = model
        self._state = [encoded, cache]

    def forward(self, decoder_input_ids: torch.Tensor) -> Any:
        encoded, cache = self._state
        return self.model(encoder_outputs=(encoded,), decoder_input_ids=decoder_input_ids,
                          past_key_values=cache, use_cache=True).logits


class _EncDecPrefill(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor) -> Any:
        return self.model(input_ids=input_ids, decoder_input_ids=decoder_input_ids,
                          use_cache=True).logits


class _EncDecAdapter:
    """A Hugging Face encoder-decoder (BART-style): the prefill runs the encoder over the prompt
    and the decoder over its first token; decode step `context` runs the decoder over one token
    with `context` decoder tokens in the self-attention cache and the prompt's keys/values in the
    cross-attention cache (an EncoderDecoderCache, as generate() keeps it)."""

    first = 1   # the decoder has one token after the prefill

    def __init__(self, model: nn.Module, dtype: torch.dtype, prompt_len: int) -> None:
        import transformers

        self.model, self.dtype, self.prompt_len = model, dtype, prompt_len
        self._tf = transformers
        cfg = model.config
        heads = _first(cfg, "decoder_attention_heads", "num_heads")
        self.width = _first(cfg, "d_model", "hidden_size")
        self.kv_heads = heads
        self.head_dim = getattr(cfg, "d_kv", None) or self.width // heads
        self.layers = _first(cfg, "decoder_layers", "num_decoder_layers", "num_layers")

    def breaks(self) -> list[int]:
        return []

    def cache(self, batch: int, context: int) -> Any:
        tf = self._tf
        caches = []
        for length in (context, self.prompt_len):
            cache = tf.DynamicCache()
            shape = (batch, self.kv_heads, length, self.head_dim)
            for layer in range(self.layers):
                cache.update(torch.empty(shape, dtype=self.dtype, device="meta"),
                             torch.empty(shape, dtype=self.dtype, device="meta"), layer)
            caches.append(cache)
        return tf.EncoderDecoderCache(*caches)

    def step(self, batch: int, context: int, new: int, dtype: str | None) -> tuple[Report, int]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if context == 0:
                return analyze(_EncDecPrefill(self.model), kwargs={
                    "input_ids": f"{batch}x{new}:int64",
                    "decoder_input_ids": f"{batch}x1:int64"}, dtype=dtype), 0
            cache = self.cache(batch, context)
            kv = _cache_bytes(cache.self_attention_cache, dtype) + _cache_bytes(
                cache.cross_attention_cache, dtype)
            encoded = torch.empty(batch, self.prompt_len, self.width, dtype=self.dtype,
                                  device="meta")
            report = analyze(_EncDecStep(self.model, encoded, cache),
                             kwargs={"decoder_input_ids": f"{batch}x1:int64"}, dtype=dtype)
        return report, kv


class _PlainAdapter:
    first = 0   # the first decode step's context is the prompt length

    def __init__(self, model: nn.Module, step: StepInputs) -> None:
        self.model = model
        self.inputs = step

    def breaks(self) -> list[int]:
        return []

    def step(self, batch: int, context: int, new: int, dtype: str | None) -> tuple[Report, int]:
        given = dict(self.inputs(context, new, batch))
        report = analyze(self.model, kwargs=given, dtype=dtype)
        base = _input_bytes(self.inputs(0, new, batch), dtype)
        return report, _input_bytes(given, dtype) - base


def _quantized_cache(model: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """(backend, options) when the model's generation config asks for a QuantizedCache."""
    gen = getattr(model, "generation_config", None)
    if getattr(gen, "cache_implementation", None) != "quantized":
        return None
    opts = dict(getattr(gen, "cache_config", None) or {})
    opts.pop("config", None)
    return str(opts.pop("backend", "quanto")), opts


def _first(cfg: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(cfg, name, None)
        if value is not None:
            return value
    if default is None:
        raise AnalysisError(f"{type(cfg).__name__} has none of {', '.join(names)}")
    return default


def _itemsize(t: torch.Tensor, dtype: str | None) -> int:
    if dtype is not None and t.is_floating_point():
        return getattr(torch, dtype).itemsize
    return t.element_size()


def _cache_bytes(cache: Any, dtype: str | None) -> int:
    """Bytes of a cache's tensors: keys and values at `dtype` (when given), and a quantized
    layer's stored tensors (`_quantized_keys`, `_quantized_values`: data and scales) at their
    own width."""
    total = 0
    for layer in getattr(cache, "layers", []):
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(t, torch.Tensor):
                total += t.numel() * _itemsize(t, dtype)
        for stored in (getattr(layer, "_quantized_keys", None),
                       getattr(layer, "_quantized_values", None)):
            for t in stored if isinstance(stored, tuple) else (stored,):
                if isinstance(t, torch.Tensor):
                    total += t.numel() * t.element_size()
    return total


def _input_bytes(given: Mapping[str, Any], dtype: str | None) -> int:
    from .capture.inputs import meta_input

    total = 0
    for name, value in given.items():
        t = meta_input(value, name)[0]
        if t.is_floating_point():
            total += t.numel() * _itemsize(t, dtype)
    return total
