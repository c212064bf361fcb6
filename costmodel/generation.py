"""analyze_generation(): the static cost of generating `new_tokens` after a `prompt_len` prompt.

The prompt pass (prefill, an empty cache) and one decode step (one new token per sequence over a
cache already holding `context` tokens) are captured like analyze() captures any model: its own
forward on meta tensors, here with the model's own cache object (a Hugging Face `DynamicCache`
built from the config, so sliding-window layers keep what the model keeps). Every other step comes
from the exact piecewise-affine forms of analysis/generation.py, fitted from two captures per
segment: 10,000 decode steps cost a handful of captures, not 10,000.

A plain PyTorch model works through an adapter: `step(context, new_tokens, batch)` returns the
forward's keyword inputs (shapes, '1x1:int64' strings or tensors) for a step that feeds
`new_tokens` tokens per sequence over a cache holding `context` tokens, the cache included
(`context=0, new_tokens=prompt_len` is the prefill). Its KV-cache bytes are the bytes of the
floating-point inputs at `context` less those at context 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from .analysis import generation as forms
from .analysis import latency as _latency
from .core.report import Report
from .core.tensors import canonical_dtype
from .errors import AnalysisError
from .generation_steps import StepInputs, _EncDecAdapter, _HFAdapter, _itemsize, _PlainAdapter


@dataclass(frozen=True)
class PhaseLatency:
    seconds: float
    interval: tuple[float, float] | None


@dataclass(frozen=True)
class GenerationLatency:
    """Time to first token (the prefill), the decode step at the first and last context, and
    decode tokens/s over the generation (per-step time taken as linear between the two steps)."""

    profile: str
    ttft: PhaseLatency
    first_step: PhaseLatency
    last_step: PhaseLatency
    tokens_per_s: float
    batch: int
    bound_prefill: str
    bound_decode: str
    tokens_per_s_interval: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        def ph(p: PhaseLatency) -> dict[str, Any]:
            return {"seconds": p.seconds, "interval": list(p.interval) if p.interval else None}
        return {"profile": self.profile, "time_to_first_token": ph(self.ttft),
                "first_step": ph(self.first_step), "last_step": ph(self.last_step),
                "tokens_per_s": self.tokens_per_s,
                "tokens_per_s_interval": (list(self.tokens_per_s_interval)
                                          if self.tokens_per_s_interval else None),
                "bound_prefill": self.bound_prefill,
                "bound_decode": self.bound_decode}


class Generation:
    """The cost of one generation: `prefill`, `decode(context)`, `per_token`, `totals`, KV-cache
    bytes, parameters, peak memory per phase and the latency estimate."""

    def __init__(self, model: nn.Module, adapter: Any, prompt_len: int, new_tokens: int,
                 batch: int, dtype: str | None) -> None:
        self.name = type(model).__name__
        self.prompt_len, self.new_tokens, self.batch, self.dtype = (prompt_len, new_tokens,
                                                                    batch, dtype)
        self._adapter = adapter
        self._reports: dict[int, tuple[Report, int]] = {}
        self.prefill = adapter.step(batch, 0, prompt_len, dtype)[0]
        # decode steps run at contexts first_context .. last_context (a causal LM's first step
        # has the prompt cached; an encoder-decoder's decoder has its first token)
        self.first_context = adapter.first or prompt_len
        self.last_context = self.first_context + new_tokens - 1
        self._adapter_kv = getattr(adapter, "kv_form", None)
        self.notes: tuple[str, ...] = tuple(getattr(adapter, "notes", ()))
        self._form = forms.Piecewise.fit(1, adapter.breaks(), self._measure)
        self.params = sum(p.numel() for p in model.parameters())
        self.params_active = _active(self.prefill, model)
        self.weight_bytes = sum(p.numel() * (_itemsize(p, dtype)) for p in model.parameters())

    # ---- per step -------------------------------------------------------------------------
    def _step(self, context: int) -> tuple[Report, int]:
        found = self._reports.get(context)
        if found is None:
            found = self._reports[context] = self._adapter.step(self.batch, context, 1, self.dtype)
        return found

    def _measure(self, context: int) -> tuple[int, ...]:
        report, kv = self._step(context)
        t = report.totals
        return t.madds, t.flops, t.mac_bytes, kv

    def decode(self, context: int) -> Report:
        """One decode step with `context` tokens already cached (captured, then kept)."""
        if context < 1:
            raise ValueError(f"context must be at least 1, not {context}")
        return self._step(context)[0]

    def curve(self, points: int = 5) -> list[forms.StepRow]:
        """A few steps of the per-token curve: the first, the last and evenly between."""
        return [self.step_cost(c) for c in forms.curve_contexts(self.first_context,
                                                                self.new_tokens, points)]

    @property
    def status(self) -> str:
        """'complete' when the prefill and every captured step costed every op, else 'partial'
        (an op costmodel cannot cost is never a silent zero, in the closed forms either)."""
        reports = [self.prefill, *(r for r, _ in self._reports.values())]
        if self.notes:
            return "partial"
        return "complete" if all(r.totals.status == "complete" for r in reports) else "partial"

    def step_cost(self, context: int) -> forms.StepRow:
        """The closed form at one context (no capture)."""
        madds, flops, mac, kv = self._form(context)
        if self._adapter_kv is not None:   # a cache whose bytes are not the captured tensors'
            kv = self._adapter_kv(context, self.prompt_len, self.batch)
        return forms.StepRow(context, madds, flops, mac, kv)

    @property
    def per_token(self) -> list[forms.StepRow]:
        found = forms.rows(self._form, self.first_context, self.new_tokens)
        if self._adapter_kv is None:
            return found
        return [replace(r, kv_cache_bytes=self._adapter_kv(r.context, self.prompt_len,
                                                           self.batch)) for r in found]

    @property
    def totals(self) -> dict[str, int]:
        steps = forms.sum_rows(self.per_token)
        t = self.prefill.totals
        return {"madds": t.madds + steps["madds"], "flops": t.flops + steps["flops"],
                "mac_bytes": t.mac_bytes + steps["mac_bytes"]}

    def kv_cache_bytes(self, context: int) -> int:
        """Bytes of the cache holding `context` tokens, batch included."""
        return self.step_cost(context).kv_cache_bytes if context else 0

    # ---- memory and speed ------------------------------------------------------------------
    @property
    def peak_memory_bytes(self) -> dict[str, dict[str, int]]:
        last = self.last_context
        phases = {"prefill": (self.prefill, self.kv_cache_bytes(self.first_context)),
                  "decode": (self.decode(last), self.kv_cache_bytes(last + 1))}
        out = {}
        for name, (report, kv) in phases.items():
            act = forms.peak_activation_bytes(report.graph)
            out[name] = {"weights": self.weight_bytes, "kv_cache": kv, "activations": act,
                         "total": self.weight_bytes + kv + act}
        return out

    def latency(self, profile: Any = None) -> GenerationLatency:
        prof = _latency.load_profile(profile)
        start, last = self.first_context, self.last_context
        prefill = _phase(self.prefill, prof)
        first = _phase(self.decode(start), prof)
        final = _phase(self.decode(last), prof) if last != start else first
        mean = (first.seconds + final.seconds) / 2
        per_s = self.batch / mean if mean else math.inf
        ridge = (prof.peak_flops, prof.bandwidth_bytes_per_s)
        pt, dt = self.prefill.totals, self.decode(start).totals
        band = None
        if first.interval and final.interval:   # slow end of each step -> fewest tokens/s
            slow = (first.interval[1] + final.interval[1]) / 2
            fast = (first.interval[0] + final.interval[0]) / 2
            band = (self.batch / slow if slow else math.inf,
                    self.batch / fast if fast else math.inf)
        return GenerationLatency(prof.name, prefill, first, final, per_s, self.batch,
                                 forms.bound(pt.flops, pt.mac_bytes, *ridge),
                                 forms.bound(dt.flops, dt.mac_bytes, *ridge), band)

    def step_seconds(self, context: int, profile: Any = None) -> float:
        """Estimated seconds of the decode step at `context`: linear between the estimates of
        the first and the last step (the rule latency() uses for tokens/s)."""
        lat = self.latency(profile)
        first, last = self.first_context, self.last_context
        if last == first:
            return lat.first_step.seconds
        share = (context - first) / (last - first)
        return lat.first_step.seconds + share * (lat.last_step.seconds - lat.first_step.seconds)

    def to_dict(self, profile: Any = None) -> dict[str, Any]:
        pt = self.prefill.totals
        d = self.decode(self.first_context).totals
        out: dict[str, Any] = {
            "model": self.name, "prompt_len": self.prompt_len, "new_tokens": self.new_tokens,
            "batch": self.batch,
            "dtype": self.dtype, "params": self.params, "params_active": self.params_active,
            "prefill": {"madds": pt.madds, "flops": pt.flops, "mac_bytes": pt.mac_bytes,
                        "intensity": forms.intensity(pt.flops, pt.mac_bytes),
                        "status": str(pt.status)},
            "decode_first": {"madds": d.madds, "flops": d.flops, "mac_bytes": d.mac_bytes,
                             "intensity": forms.intensity(d.flops, d.mac_bytes),
                             "status": str(d.status)},
            "totals": self.totals, "status": self.status, "notes": list(self.notes),
            "peak_memory_bytes": self.peak_memory_bytes,
            "kv_cache_bytes": self.kv_cache_bytes(self.last_context + 1),
            "per_token": [r.to_dict() for r in self.curve()]}
        if profile is not None:
            out["latency"] = self.latency(profile).to_dict()
        return out


def active_parameters(model: nn.Module) -> int:
    """Parameters one token uses: every parameter of a dense model; in a mixture of experts
    whose config names the routed experts (`num_local_experts` / `num_experts` /
    `n_routed_experts`) and the top-k (`num_experts_per_tok`), the routed experts' parameters
    (those under a module named `experts`, stacked or one module per expert) count k / E of
    theirs, and everything else (attention, router, shared experts, embeddings) in full.

    The fallback of `_active` when the graph shows no grouped-matmul experts: this reads the
    Hugging Face config only."""
    total = sum(p.numel() for p in model.parameters())
    cfg = getattr(model, "config", None)
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    experts = next((getattr(cfg, n) for n in ("num_local_experts", "num_experts",
                                               "n_routed_experts") if getattr(cfg, n, None)), None)
    top_k = getattr(cfg, "num_experts_per_tok", None)
    if not experts or not top_k:
        return total
    routed = sum(p.numel() for name, p in model.named_parameters()
                 if "experts" in name.split(".")[:-1])
    return total - routed + routed * top_k // experts


def _active(prefill: Report, model: nn.Module) -> int:
    """Active parameters per token: from the prefill graph (costmodel.active_params: expert
    weights read by grouped matmuls count by the rows routed to them) when it has experts, else
    from the model's config (active_parameters)."""
    from .analysis.moe import active_params
    from .errors import AnalysisError
    try:
        found = active_params(prefill)
    except AnalysisError:
        return active_parameters(model)
    return found.active if found.expert else active_parameters(model)


def _phase(report: Report, profile: Any) -> PhaseLatency:
    est = _latency.estimate(report, profile)
    interval = getattr(est, "interval", None)
    if callable(interval):
        interval = interval()
    return PhaseLatency(est.total_s, tuple(interval) if interval else None)


def analyze_generation(model: nn.Module, prompt_len: int, new_tokens: int, batch: int = 1,
                       dtype: str | None = None, step: StepInputs | None = None) -> Generation:
    """Static cost of generating `new_tokens` tokens per sequence after a `prompt_len` prompt.

    model: a Hugging Face causal LM (its DynamicCache is used), a Hugging Face encoder-decoder
        (BART-style: the encoder runs once in the prefill, decoder steps use self- and
        cross-attention caches), or any nn.Module with `step`.
    step: for a plain PyTorch model, `step(context, new_tokens, batch)` -> the forward's keyword
        inputs with the cache (module docstring).
    dtype: count bytes (MAC, KV cache, weights) as if floating tensors had this dtype.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"analyze_generation() expects an nn.Module, not {type(model).__name__}")
    for name, value, low in (("prompt_len", prompt_len, 1), ("new_tokens", new_tokens, 1),
                             ("batch", batch, 1)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")
    dtype = canonical_dtype(dtype) if dtype is not None else None
    if step is not None:
        adapter: Any = _PlainAdapter(model, step)
    elif getattr(model, "config", None) is not None and hasattr(model.config, "get_text_config"):
        cache_dtype = getattr(torch, dtype) if dtype else next(model.parameters()).dtype
        if model.config.is_encoder_decoder:
            adapter = _EncDecAdapter(model, cache_dtype, prompt_len)
        else:
            adapter = _HFAdapter(model, cache_dtype)
    else:
        raise AnalysisError(f"{type(model).__name__} is not a Hugging Face model: pass "
                            f"step=fn(context, new_tokens, batch) returning its decode-step inputs")
    return Generation(model, adapter, prompt_len, new_tokens, batch, dtype)
