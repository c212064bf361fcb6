"""Verdicts, summary and Markdown of benchmarks/zoo.py's results (zoo.json); no torch here."""
from __future__ import annotations

import re
from collections import defaultdict

GOALS = ("captured >= 99% of the corpus, complete >= 97%, MAdds equal to the oracle on every model "
         "it can judge, params exact everywhere, analysis faster than one forward for >= 95% of "
         "timm models (one thread)")


# contraction ops that FlopCounterMode has no formula for (it counts them 0): where the real forward
# runs one, the oracle cannot judge the model's MAdds
BLIND = re.compile(r"(lstm|gru|rnn_tanh|rnn_relu|\w*_cell|_thnn_fused_\w+|mkldnn_rnn\w*|"
                   r"\w*grouped_mm|mv|addmv|dot|vdot|inner|_?fft_\w+|bilinear|_trilinear|conv_tbc|\w*conv\w*|"
                   r"\w*mm\w*|\w*attention\w*|\w*linear\w*)")


def blind(op) -> bool:
    """`op` (an aten/quantized op name) is a contraction FlopCounterMode has no formula for."""
    namespace, _, name = str(op).partition(".")
    if name.startswith(("upsample", "_upsample")):      # interpolation: no MAdds anywhere
        return False
    return namespace == "quantized" or bool(BLIND.fullmatch(name))


def oracle_blind(rec: dict) -> list[str]:
    return [op for op in rec.get("oracle_blind") or () if blind(op)]


def built(rec: dict) -> bool:
    """In the corpus: the harness built it and its real forward runs (a model whose own forward
    fails on the harness's inputs judges the harness, not costmodel)."""
    if rec.get("oracle") == "failed":
        return False
    return rec.get("stage") != "not built" and not (
        rec.get("stage") == "timed out" and rec.get("timeout_stage") in ("building", "starting"))


def captured(rec: dict) -> bool:
    return bool(rec.get("captured"))


def complete(rec: dict) -> bool:
    return captured(rec) and rec.get("status") == "complete"


def capture_reason(rec: dict) -> str:
    if rec.get("stage") == "timed out" and rec.get("timeout_stage") == "analysing":
        return "analysis timed out"
    if rec.get("stage") == "crashed" and "captured" not in rec:
        return rec.get("error", "crashed")
    return rec.get("error", "")


def madds_verdict(rec: dict) -> str:
    """equal / mismatch (judged); or why the oracle cannot judge this model."""
    if not captured(rec):
        return "-"
    oracle = rec.get("oracle")
    if oracle != "ok":
        return "oracle timed out" if oracle == "timed out" else "oracle failed"
    if oracle_blind(rec):
        return "oracle blind"
    if rec.get("status") != "complete":
        return "partial"
    if rec["madds"] == rec["oracle_madds"]:
        return "equal"
    if rec.get("data_dependent"):      # costmodel kept the static upper bound of a data size
        return "upper bound" if rec["madds"] > rec["oracle_madds"] else "below oracle"
    return "mismatch"


def params_exact(rec: dict) -> bool:
    return captured(rec) and rec.get("params") == rec.get("params_true")


def faster(rec: dict) -> bool | None:
    if not captured(rec) or not rec.get("forward_s"):
        return None
    return rec["analyze_s"] < rec["forward_s"]


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} = {100 * n / d:.1f}%" if d else f"{n}/0"


def _key(text: str) -> str:
    site = re.search(r"stopped at \S+ in (\w+): (.*?):? (\w*(?:Error|Exception)): (.*)", text)
    if site:              # "the eager capture stopped at FILE:LINE in F: CODE: Error: why"
        text = f"{site[3]}: {site[4][:60]} at `{site[2][:50]}`"
    text = re.sub(r"\S*/site-packages/|\S*/work/\S*?/", "", text)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'...'", text)
    return re.sub(r"\d+", "N", text)[:110]


def stats(data: dict) -> dict:
    rows = list(data["results"].values())
    corpus = [r for r in rows if built(r)]
    out: dict = {"rows": rows, "corpus": corpus, "suites": {}}
    for suite in ("timm", "hf", "torchvision", "all"):
        rs = [r for r in corpus if suite == "all" or r["suite"] == suite]
        verdicts = [madds_verdict(r) for r in rs]
        speed = [faster(r) for r in rs if faster(r) is not None]
        out["suites"][suite] = {
            "models": len(rs), "captured": sum(map(captured, rs)),
            "complete": sum(map(complete, rs)),
            "equal": verdicts.count("equal"), "judged": verdicts.count("equal") +
            verdicts.count("mismatch"), "mismatch": verdicts.count("mismatch"),
            "bound": verdicts.count("upper bound"), "below": verdicts.count("below oracle"),
            "blind": verdicts.count("oracle blind"), "partial": verdicts.count("partial"),
            "oracle_timeout": verdicts.count("oracle timed out"),
            "oracle_failed": verdicts.count("oracle failed"),
            "params_exact": sum(map(params_exact, rs)),
            "faster": sum(speed), "timed": len(speed),
            "not_built": sum(1 for r in rows if not built(r) and
                             (suite == "all" or r["suite"] == suite)),
        }
    return out


def summary_block(data: dict) -> str:
    s = stats(data)
    lines = ["=" * 78, f"costmodel zoo: {data.get('machine', {}).get('date', '')}, torch "
             f"{data.get('machine', {}).get('torch', '?')}", f"goal: {GOALS}", ""]
    for suite, v in s["suites"].items():
        if not v["models"] and not v["not_built"]:
            continue
        planned = data.get("planned", {})
        total = sum(planned.values()) if suite == "all" else planned.get(suite)
        ran = v["models"] + v["not_built"]
        lines += [f"[{suite}] corpus {v['models']} models ({v['not_built']} not built by the "
                  f"harness, outside the corpus; {ran} run" +
                  (f" of {total} planned)" if total else ")"),
                  f"  captured        {_pct(v['captured'], v['models'])}",
                  f"  complete        {_pct(v['complete'], v['models'])}",
                  f"  MAdds = oracle  {_pct(v['equal'], v['judged'])} of the models it judges; "
                  f"{v['bound']} data-dependent upper bounds (>= oracle), {v['below']} below; "
                  f"not judged: {v['blind']} oracle blind, {v['partial']} partial, "
                  f"{v['oracle_timeout']} oracle timed out",
                  f"  params exact    {_pct(v['params_exact'], v['captured'])} of captured",
                  f"  analyze < fwd   {_pct(v['faster'], v['timed'])}"]
    lines += ["", "remaining failures by cause:"] + failures(s["corpus"], width=100) + ["=" * 78]
    return "\n".join(lines)


def failures(rows: list[dict], width: int = 0) -> list[str]:
    groups: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        tag = f"{r['suite']}:{r['name']}"
        if not captured(r):
            groups[f"not captured: {_key(capture_reason(r))}"].append(tag)
        elif r.get("status") != "complete":
            for op in r.get("unsupported") or ["?"]:
                groups[f"partial: {op}"].append(tag)
        verdict = madds_verdict(r)
        if verdict in ("mismatch", "below oracle"):
            groups[f"MAdds {verdict}"].append(
                f"{tag} ({r['madds']:,} vs {r['oracle_madds']:,})")
        if r["suite"] == "timm" and faster(r) is False:
            groups["timm: analysis slower than one forward"].append(
                f"{tag} ({r['analyze_s']:.2f} s vs {r['forward_s']:.2f} s)")
        if captured(r) and not params_exact(r):
            groups["params differ"].append(f"{tag} ({r.get('params')} vs {r.get('params_true')})")
    out = []
    for cause, tags in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        names = ", ".join(tags)
        if width and len(names) > width:
            names = names[:width - 3] + "..."
        out.append(f"- {cause} [{len(tags)}]: {names}")
    return out


def line(rec: dict) -> str:
    tag = f"{rec['suite']}:{rec['name']}"
    if not built(rec):
        why = rec.get('oracle_error') if rec.get("oracle") == "failed" else rec.get('error')
        return f"{tag:45s} NOT BUILT {why or rec.get('stage')}"
    if not captured(rec):
        return f"{tag:45s} NOT CAPTURED {capture_reason(rec)}"
    t = f"{rec['analyze_s']:.2f}s/{rec['forward_s']:.2f}s" if rec.get("forward_s") else \
        f"{rec['analyze_s']:.2f}s/-"
    partial = f" ({', '.join(rec['unsupported'])})" if rec.get("unsupported") else ""
    return (f"{tag:45s} {rec['status']}{partial} madds {madds_verdict(rec)} "
            f"params {'=' if params_exact(rec) else '!='} {t}")


def _row(r: dict) -> str:
    if not built(r):
        why = f"real forward fails: {r.get('oracle_error')}" if r.get("oracle") == "failed" \
            else r.get("error", r.get("stage"))
        return f"| {r['suite']} | {r['name']} | not built | {_cell(why)} | | | | |"
    if not captured(r):
        return (f"| {r['suite']} | {r['name']} | no | {_cell(capture_reason(r))} | | | "
                f"{r.get('params_true', ''):,} | |")
    status = r["status"] + (f" ({', '.join(r['unsupported'])})" if r.get("unsupported") else "")
    oracle = f"{r['oracle_madds']:,}" if r.get("oracle") == "ok" else r.get("oracle", "")
    if oracle_blind(r):
        oracle += f" (blind: {', '.join(oracle_blind(r))})"
    timing = f"{r['analyze_s']:.2f} / {r['forward_s']:.2f}" if r.get("forward_s") else \
        f"{r['analyze_s']:.2f} / -"
    params = f"{r['params']:,}" + ("" if params_exact(r) else f" != {r['params_true']:,}")
    return (f"| {r['suite']} | {r['name']} | yes | {status} | {r['madds']:,} | "
            f"{oracle} {madds_verdict(r)} | {params} | {timing} |")


def _cell(text: str) -> str:
    return re.sub(r"\S*/site-packages/", "", str(text)).replace("|", "\\|").replace("\n", " ")


def markdown(data: dict) -> str:
    m = data.get("machine", {})
    head = [
        "# costmodel zoo (issue 13, section 5)", "",
        f"Machine: {m.get('host')} ({m.get('cpu')}), one thread (`taskset -c 0`, "
        f"`torch.set_num_threads(1)`); python {m.get('python')}, torch {m.get('torch')}, "
        f"torchvision {m.get('torchvision')}, timm {m.get('timm')}, transformers "
        f"{m.get('transformers')}; {m.get('date')}.", "",
        "Commands (in order; each merges its rows into zoo.json): " + "; ".join(
            f"`{c}`" for c in data.get("commands", [])), "", "```", summary_block(data), "```", "",
        "Oracle: `FlopCounterMode / 2` on a real forward of the same model and inputs under "
        "`sdpa_kernel(SDPBackend.MATH)`. `oracle blind` means the forward ran a contraction-like "
        "op that FlopCounterMode has no formula for (it counts 0: RNNs, `_grouped_mm`, `mv`, FFT, "
        "quantized ops), so it cannot judge; `upper bound` means costmodel assumed the static "
        "upper bound of a data-dependent size (CM009) and is >= the oracle's count on random "
        "weights; `partial` totals are lower bounds and are not compared.", "",
        "| suite | model | captured | status / reason | MAdds | FlopCounterMode / 2 | params "
        "| analyze / forward (s) |", "|---|---|---|---|---|---|---|---|"]
    rows = sorted(data["results"].values(), key=lambda r: (r["suite"], r["name"]))
    skipped = [f"- {k}: {v}" for k, v in sorted(data.get("skipped", {}).items())]
    return "\n".join(head + [_row(r) for r in rows] + [
        "", "## Not in the corpus (no base model class, or the default config does not build)",
        ""] + skipped) + "\n"


def docs_page(data: dict) -> str:
    s = stats(data)
    m = data.get("machine", {})
    lines = [
        "# Model zoo: what costmodel captures", "",
        "`benchmarks/zoo.py` runs a wide corpus as a user would: timm architectures at their "
        "default input size (`pretrained=False`), Hugging Face architectures built from small "
        "configs (`AutoModel.from_config`, nothing downloaded; MoE families once per expert "
        "implementation, `eager` and `grouped_mm`) and every torchvision model (`weights=None`). "
        "Each model is analysed in a worker process with a timeout and checked against a real "
        "forward: MAdds against `FlopCounterMode / 2` (MATH SDPA backend), params against "
        "`sum(p.numel())`, and the time of `analyze()` against one forward on one thread.", "",
        f"Last run: torch {m.get('torch')}, timm {m.get('timm')}, transformers "
        f"{m.get('transformers')}, torchvision {m.get('torchvision')}, {m.get('date')}, "
        f"{m.get('cpu')}. Every model's row is in `benchmarks/results/zoo.md`.", "",
        "| suite | run / planned | corpus | captured | complete | MAdds = oracle (judged) | "
        "not judged (blind / partial / bound / oracle timeout) | params exact | "
        "analyze < forward |", "|---|---|---|---|---|---|---|---|---|"]
    planned = data.get("planned", {})
    for suite, v in s["suites"].items():
        total = sum(planned.values()) if suite == "all" else planned.get(suite, "?")
        lines.append(
            f"| {suite} | {v['models'] + v['not_built']} / {total} | {v['models']} | "
            f"{_pct(v['captured'], v['models'])} | "
            f"{_pct(v['complete'], v['models'])} | {_pct(v['equal'], v['judged'])} | "
            f"{v['blind']} / {v['partial']} / {v['bound']} / {v['oracle_timeout']} | "
            f"{_pct(v['params_exact'], v['captured'])} | {_pct(v['faster'], v['timed'])} |")
    lines += [
        "", "The corpus is the models the harness built and whose real forward runs on its "
        "inputs; the others (`not built`: a config that needs more than small sizes, an input "
        "the harness has no recipe for) are listed in the results with the reason.", "",
        f"Goal (issue 13): {GOALS}.", "", "## How the corpus is built", "",
        "- timm: one model per family (timm module and name stem), the smallest by its name "
        "(atto, femto, pico, nano, tiny, ... then the lowest number), then a second and a third "
        "per family up to 255 models; each at its `pretrained_cfg` input size "
        "(`timm.data.resolve_data_config`), batch 1.",
        "- Hugging Face: every model type in `CONFIG_MAPPING` with a base model class in "
        "`MODEL_MAPPING`, its config built with small sizes (hidden 32, 2 layers, 2 heads, 1 KV "
        "head, FFN 64, vocab 128, and the same for each sub-config; per-layer lists such as "
        "`layer_types` cut to the new depth) and `AutoModel.from_config`. Inputs: 1x32 token ids "
        "(plus 1x32 decoder ids for encoder-decoders; plus pixel values for dual encoders such "
        "as CLIP, and for forwards that require them; vision-language models with image tokens "
        "run text-only), else pixel values at the config's image size, else 1x8000 audio "
        "samples, else 1 x mel bins x frames features. MoE types (`num_experts`, "
        "`num_local_experts`, `n_routed_experts` > 1) run twice, with "
        "`config._experts_implementation` `eager` and `grouped_mm`.",
        "- torchvision: every name in `torchvision.models.list_models()`, `weights=None` "
        "(quantized models with `quantize=True`): classification at 224 (inception 299, ViT at "
        "its `image_size`), detection at 800x800 (the models resize to 800 themselves), "
        "segmentation at 224 (not the weights' 520: the run is on one thread), video 16 frames "
        "at 112 (ResNet-3D family) or 224, optical flow two 224x224 frames.",
        "- The oracle: FlopCounterMode / 2 on one real forward under `torch.no_grad()` and "
        "`sdpa_kernel(SDPBackend.MATH)`, with `nn.MultiheadAttention`'s fused inference path "
        "off (FlopCounterMode counts `_native_multi_head_attention` as 0). Where the forward ran "
        "a contraction FlopCounterMode has no formula for (RNNs and `mkldnn_rnn_layer`, "
        "`_grouped_mm`, `mv`, FFT, quantized ops), the oracle cannot judge and the model is not "
        "counted as a match or a mismatch. A model with a data-dependent size (CM009: detection "
        "proposals) is an upper bound when costmodel's count is above the oracle's.",
        "- Timing: `analyze()` once (the first call for that model, as a user sees it) against "
        "one real forward after a warm-up forward, `torch.set_num_threads(1)`, `taskset -c 0`.",
        "", "## Remaining failures, by cause", ""]
    lines += failures(s["corpus"]) or ["None."]
    lines += ["", "## How to run it", "", "```bash",
              "taskset -c 0 python benchmarks/zoo.py                 # the whole corpus",
              "taskset -c 0 python benchmarks/zoo.py --suite hf --only 'llama|mixtral'",
              "```", ""]
    return "\n".join(lines)
