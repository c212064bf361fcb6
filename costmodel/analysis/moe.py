"""Active parameters per token of a Mixture-of-Experts model.

A MoE layer holds E experts but routes each token through k of them, so the parameters a token
uses (the "active" parameters that MoE papers report next to the total) are fewer than the
model's. costmodel derives them from the graph, not from a config, with one definition:

    active = total - sum over expert weights (G, K, N) of G * K * N
                   + sum over expert weights of (rows routed through it) * K * N / tokens

An expert weight is a parameter that a grouped matmul (`torch._grouped_mm`, the path transformers
5 runs experts through) reads as its 3-D right operand: G stacked (K, N) matrices. Its rows are
the grouped matmul's total rows (tokens x k with top-k routing; exact whatever the split between
experts, see `grouped_mm_madds`), so the active part of a weight is exactly k * K * N per token.
Every other parameter (attention, embeddings, routers, shared experts) is active for every token.
`tokens` is the number of tokens of the forward: by default the number of elements of the first
integer input (a language model's token ids, batch x sequence).

Not covered: experts run as a Python loop over `nn.Linear` modules (the eager path, which reads
the routing values and does not capture), and per-expert biases indexed by expert id (counted as
dense parameters, a small over-count).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.report import Report
from ..errors import AnalysisError


@dataclass(frozen=True, slots=True)
class ActiveParams:
    """Parameters used per token (`active`) next to the model's (`total`), and how they split."""

    total: int
    active: int
    expert: int           # parameters in expert weights (all experts)
    expert_active: int    # of which one token uses, on average (exact under top-k routing)
    tokens: int

    @property
    def ratio(self) -> float:
        return self.active / self.total if self.total else 1.0


def _tokens(report: Report) -> int:
    for info in report.inputs:
        if info.dtype.startswith(("int", "uint")) and info.shape:
            n = 1
            for s in info.shape:
                n *= s
            return n
    raise AnalysisError("active_params: the model has no integer (token id) input; pass tokens=")


def active_params(report: Report, tokens: int | None = None) -> ActiveParams:
    """Active parameters per token of the analysed model (see the module docstring); a dense
    model has active == total."""
    if report.graph is None:
        raise AnalysisError("active_params needs the graph: a report read back from JSON has none")
    if tokens is None:
        tokens = _tokens(report)
    if type(tokens) is not int or tokens < 1:
        raise AnalysisError(f"active_params: tokens must be a positive int, not {tokens!r}")
    views = {node.name: _viewed_param(node.calls) for node in report.graph}
    experts: dict[object, int] = {}
    routed = 0
    for node in report.graph:
        for i, rec in enumerate(node.calls):
            call = rec.call
            w, a = call.t("mat2"), call.t("input")
            if call.op != "grouped_mm" or w is None or a is None or w.ndim != 3:
                continue
            key = _weight_key(w, rec, node, views, node.calls[:i])
            if key is None:
                continue
            experts[key] = w.numel
            rows = a.shape[0] if a.ndim == 2 else a.shape[0] * a.shape[1]
            routed += rows * w.shape[1] * w.shape[2]
    expert = sum(experts.values())
    total = report.totals.params
    expert_active = routed // tokens
    return ActiveParams(total, total - expert + expert_active, expert, expert_active, tokens)


def _viewed_param(calls) -> tuple[object, int] | None:
    """(key, numel) of the one parameter a chain of views / copies hands on (`w.transpose(-2,
    -1)`), or None."""
    if not calls or any(rec.call.op not in ("view", "copy") for rec in calls):
        return None
    params = {p for rec in calls for p in rec.params}
    return next(iter(params)) if len(params) == 1 else None


def _weight_key(w, rec, node, views, before) -> object | None:
    """The parameter behind a grouped matmul's right operand: read directly, through a view made
    by an earlier call of the same node, or through a view node that feeds this one."""
    if w.role == "param":
        return rec.params[-1][0] if rec.params else ("spec", node.name, id(rec))
    candidates = [p for r in before if r.call.op in ("view", "copy") for p in r.params]
    candidates += [views[src[0]] for src in node.sources if src and views.get(src[0])]
    for key, numel in candidates:
        if numel == w.numel:
            return key
    return None
