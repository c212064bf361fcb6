"""How close is costmodel's latency estimate to measured CPU latency, and does it rank models?

One process, one command, every figure of issue 15 for each (threads, batch) setting asked for:

1. calibrate this machine (`costmodel calibrate`, the same code) at that thread count; the
   calibration sees only micro-benchmarks of single ops and small synthetic blocks that costmodel
   generates itself, never the models below, and nothing here is fitted to them;
2. for every model of the validation set (the 80 torchvision classification models, random
   init, no download, at 224x224; the example nets in examples/; the paper's G1-G4 nets in
   examples/guidelines.py at 56x56), measure the latency of a forward pass (eval, no_grad):
   warm-up, then several rounds interleaved over a group of models (drift hits every model of
   the group alike); in each round a model is called at least twice in a row and the fastest
   call after the first is kept (steady state: the first call runs in the heap the model before
   it left, and is reported apart, not scored); the measured latency is the fastest round
   ("fastest", as calibration measures) and the median round is reported too;
3. estimate each model with the calibrated profile, and print: the per-model table, the
   distribution of the error, the shares within 10 / 15 / 30%, Spearman rank correlation with the
   measured latency for the estimate, MAdds and MAC, the share of equal-MAdds pairs (MAdds within
   30%) each orders correctly, the interval coverage, the worst ten models, and for the G1-G4
   nets the paper's order, the measured order and the estimate's order side by side.

Drift: a fixed sentinel (a 3x3 and a 1x1 conv of 64 channels on a 56x56 map, with a ReLU) is
timed right after calibration and again after each measured group, at the setting's thread count,
and the summary prints its time during the measurement against its time at calibration. It
changes no figure: it says how far the machine moved between calibrating and measuring (on a
shared VM, 10% or more between periods), which no estimate can follow.

Results go to benchmarks/results/latency_validation.{json,md} (machine, torch version, date,
load average). Development runs: `--quick` (a dozen models, fewer rounds).

    python benchmarks/latency_validation.py --threads 1 2 --batch 1          # the full run
    python benchmarks/latency_validation.py --threads 2 --batch 8 --skip-largest
    python benchmarks/latency_validation.py --estimate-only --threads 2 --batch 8  # time needed
    python benchmarks/latency_validation.py --quick --threads 2
    python benchmarks/latency_validation.py --models resnet18 mobilenet_v3_small g1 examples
    python benchmarks/latency_validation.py --execution fused --threads 1 --batch 1

`--execution fused` scores the deployed view (costmodel/analysis/fusion.py) against ONNX Runtime:
the calibration adds its ONNX Runtime section (calibrate_fused.py: tiny nets and synthetic blocks
only), every model is exported once with torch.onnx.export to a temporary directory and timed in
an onnxruntime CPU session (intra_op_num_threads = threads) the same way, and the estimate is
`latency.estimate(report, profile, execution="fused")`. A model the exporter cannot export is
listed as not measured and left out of the figures. Results then go to
latency_validation_fused.{json,md} when fused is the only execution asked for.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torchvision

import costmodel
from costmodel import latency
from costmodel.analysis import fusion as _fusion
from costmodel.analysis.calibrate import calibrate, describe
from costmodel.analysis.calibrate_fused import calibrate_fused, describe_fused

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: --heap kept: the heap maps nothing per call and never returns its pages
KEPT = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4000000000"
EXTRA = {"googlenet": {"aux_logits": False, "init_weights": False},
         "inception_v3": {"aux_logits": False, "init_weights": False}}
#: file -> build kwargs of the example nets (examples/README.md lists them with the papers)
EXAMPLES = {"mobilenet_v1": [{}, {"width_mult": 0.5}], "mobilenet_v2": [{}],
            "shufflenet_v1": [{}, {"groups": 8}],
            "shufflenet_v2": [{"width_mult": 0.5}, {}, {"width_mult": 1.5}, {"width_mult": 2.0}],
            "squeezenet": [{}, {"version": "1_1"}]}
QUICK = ("mobilenet_v3_small", "shufflenet_v2_x1_0", "resnet18", "mobilenet_v2",
         "efficientnet_b0", "regnet_y_400mf", "squeezenet1_1", "resnet50", "densenet121",
         "ex:mobilenet_v1", "g1", "g2")
#: the six torchvision models that take the longest (about half of a batch-8 run);
#: --skip-largest leaves them out
LARGEST = ("vit_h_14", "regnet_y_128gf", "vit_l_16", "convnext_large", "regnet_x_32gf",
           "regnet_y_32gf")
#: the paper's tables, fastest first by the paper's GPU speeds (examples/guidelines.py)
GUIDE_KEYS = ("g1", "g2", "g3", "g4")
#: where --execution fused writes its ONNX files (a temporary directory, removed at exit)
TMP = ""


# ---- statistics ------------------------------------------------------------------------------

def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties get the average of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float:
    """Pearson correlation of the ranks (correct with ties)."""
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else float("nan")


def pair_accuracy(rows: list[dict], key: str, within: float = 1.3) -> tuple[float, int]:
    """Share of pairs of models whose MAdds are within `within`x of each other (and whose
    measured latencies differ by more than 5%, so that the order is not noise) that `key`
    orders like the measured latency; and the number of such pairs."""
    right = total = 0
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            lo, hi = sorted((a["madds"], b["madds"]))
            if lo <= 0 or hi / lo > within:
                continue
            ma, mb = a["measured"], b["measured"]
            if max(ma, mb) / min(ma, mb) < 1.05:
                continue
            total += 1
            right += (a[key] < b[key]) == (ma < mb)
    return (right / total if total else float("nan")), total


def summary(rows: list[dict], measured_key: str = "measured") -> dict:
    errors = [r["estimate"] / r[measured_key] - 1 for r in rows]
    absolute = sorted(abs(e) for e in errors)
    n = len(rows)
    q = statistics.quantiles(errors, n=10) if n >= 2 else [errors[0]] * 9
    measured = [r[measured_key] for r in rows]
    out = {"models": n, "median_abs_error": statistics.median(absolute),
           "mean_abs_error": statistics.fmean(absolute),
           "within_10": sum(a <= 0.10 for a in absolute) / n,
           "within_15": sum(a <= 0.15 for a in absolute) / n,
           "within_30": sum(a <= 0.30 for a in absolute) / n,
           "signed_error_p10_p50_p90": [q[0], statistics.median(errors), q[-1]],
           "signed_error_min_max": [min(errors), max(errors)],
           "coverage": sum(r["low"] <= r[measured_key] <= r["high"] for r in rows) / n,
           "spearman": {k: spearman([r[k] for r in rows], measured)
                        for k in ("estimate", "madds", "mac", "mac_deployed") if k in rows[0]}}
    swap = [{**r, "measured": r[measured_key]} for r in rows]
    out["equal_madds_pairs"] = {k: pair_accuracy(swap, k)[0] for k in ("estimate", "madds", "mac")}
    out["equal_madds_pairs"]["pairs"] = pair_accuracy(swap, "estimate")[1]
    return out


# ---- the validation set ----------------------------------------------------------------------

def load_example(name: str):
    path = ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"cm_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def validation_set(selection: list[str]) -> list[dict]:
    """Entries {name, group, build, shape} for the names / groups in `selection`:
    "torchvision", "examples", "guidelines" (G1-G4), "g1".."g4", "ex:FILE", or a torchvision
    model name."""
    tv = torchvision.models.list_models(module=torchvision.models)
    guide = load_example("guidelines")
    out: list[dict] = []

    def add_tv(name):
        out.append({"name": name, "group": "torchvision", "shape": "1x3x224x224",
                    "build": lambda: torchvision.models.get_model(name, **EXTRA.get(name, {}))})

    def add_example(file):
        module = load_example(file)
        for kwargs in EXAMPLES[file]:
            label = file + "".join(f" {k}={v}" for k, v in kwargs.items())

            def build(module=module, kwargs=kwargs):
                return module.build(**kwargs)
            shape = getattr(build(), "input_shape", module.INPUT)
            out.append({"name": label, "group": "examples", "shape": shape, "build": build})

    def add_guide(key):
        for row in guide.PAPER_TABLES[key]["rows"]:
            def build(key=key, kwargs=row["kwargs"]):
                return guide.build(key, **kwargs)
            out.append({"name": f"{key}:{row['label']}", "group": key, "paper": row["speed"],
                        "label": row["label"], "shape": build().input_shape, "build": build})

    for item in selection:
        if item == "torchvision":
            for name in tv:
                add_tv(name)
        elif item == "examples":
            for file in EXAMPLES:
                add_example(file)
        elif item == "guidelines":
            for key in GUIDE_KEYS:
                add_guide(key)
        elif item in GUIDE_KEYS:
            add_guide(item)
        elif item.startswith("ex:") and item[3:] in EXAMPLES:
            add_example(item[3:])
        elif item in tv:
            add_tv(item)
        else:
            raise SystemExit(f"unknown model or group {item!r}: use a torchvision model name, "
                             f"torchvision, examples, ex:FILE ({', '.join(EXAMPLES)}), "
                             f"guidelines or g1..g4")
    seen, unique = set(), []
    for entry in out:
        if entry["name"] not in seen:
            seen.add(entry["name"])
            unique.append(entry)
    return unique


# ---- measuring -------------------------------------------------------------------------------

def with_batch(shape: str, batch: int) -> str:
    return "x".join([str(batch)] + shape.split("x")[1:])


def one_call(model, x) -> float:
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def sentinel() -> tuple[torch.nn.Module, torch.Tensor]:
    """The drift sentinel: a fixed block, the same in every run (see the module docstring)."""
    torch.manual_seed(0)
    block = torch.nn.Sequential(torch.nn.Conv2d(64, 64, 3, padding=1, bias=False),
                                torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 1, bias=False)).eval()
    return block, torch.randn(1, 64, 56, 56)


def sentinel_seconds(block: torch.nn.Module, x: torch.Tensor, calls: int = 10) -> float:
    """The fastest of `calls` sentinel calls after one warm-up (as the models are measured)."""
    with torch.no_grad():
        block(x)
        return min(one_call(block, x) for _ in range(calls))


def drift(times: dict) -> dict | None:
    """The sentinel's times during the measurement as multiples of its time at calibration."""
    during = times.get("during") or []
    if not times.get("calibration") or not during:
        return None
    ratios = [t / times["calibration"] for t in during]
    return {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios),
            "n": len(ratios)}


def measure_group(models: list, xs: list, seconds: float, rounds: tuple[int, int]
                  ) -> tuple[list[list[float]], list[list[float]]]:
    """Per model, (the fastest of the calls after the first in each round, the first call of
    each round); rounds interleaved over the group. Every round calls a model at least twice
    in a row: its first call runs in the heap the model before it left (glibc's free lists and
    trimmed top, see benchmarks/results/allocator_faults.md), the later ones in its own, as a
    model served in a loop runs and as the estimate assumes (a settled heap). The first calls
    are kept apart (the summary's "first call after another model")."""
    once = []
    for model, x in zip(models, xs):
        model(x)                                   # warm-up: allocator, oneDNN kernel selection
        once.append(one_call(model, x))
    lo, hi = rounds
    n_rounds = max(lo, min(hi, int(seconds / max(sum(once), 1e-6))))
    reps = [max(2, min(5, int(0.02 / t))) for t in once]   # calls of under 20 ms: a few a round
    times: list[list[float]] = [[] for _ in models]
    firsts: list[list[float]] = [[] for _ in models]
    for _ in range(n_rounds):
        for i, (model, x) in enumerate(zip(models, xs)):
            firsts[i].append(one_call(model, x))
            times[i].append(min(one_call(model, x) for _ in range(reps[i] - 1)))
    return times, firsts


def deployed(group: list[dict], models: list, xs: list, threads: int
             ) -> tuple[list[dict], list, list]:
    """The group's models exported to ONNX and loaded in ONNX Runtime: (rows, callables, inputs)
    with a callable per model that runs one inference (its input is made by the runner). A
    model the exporter refuses gets r["failed"] and is left out."""
    from costmodel.analysis.calibrate_fused import ort_runner
    out_rows, runners = [], []
    for r, model, x in zip(group, models, xs):
        try:
            run = ort_runner(model, tuple(x.shape), threads, TMP)
        except Exception as exc:  # noqa: BLE001 - exporter or runtime failure: one line
            r["failed"] = str(exc).splitlines()[0][:160]
            continue
        out_rows.append(r)
        runners.append(lambda _x, run=run: run())
    return out_rows, runners, [None] * len(runners)


def build_meta(build):
    """The model on the meta device when its constructor allows (no weights initialised: fast
    for the estimate), else on the CPU."""
    try:
        with torch.device("meta"):
            return build().eval()
    except Exception:  # noqa: BLE001 - some constructors compute on tensors (regnet)
        return build().eval()


def planned_seconds(estimate: float, args) -> float:
    """What measuring one model takes, from its estimate: 3 warm-up / probe calls, then the
    rounds (as measure_group picks them), each of 2 calls, up to 5 for short models."""
    rounds = max(args.rounds[0], min(args.rounds[1], int(args.seconds / max(estimate, 1e-6))))
    reps = max(2, min(5, int(0.02 / max(estimate, 1e-9))))
    return estimate * (3 + rounds * reps)


def groups_by_memory(entries: list[dict], limit_bytes: float, size: int) -> list[list[dict]]:
    out, current, used = [], [], 0.0
    for entry in entries:
        if current and (used + entry["param_bytes"] > limit_bytes or len(current) >= size):
            out.append(current)
            current, used = [], 0.0
        current.append(entry)
        used += entry["param_bytes"]
    return out + ([current] if current else [])


def run_setting(entries: list[dict], threads: int, batch: int, profile, calib_s: float,
                args, execution: str = "eager") -> dict:
    torch.set_num_threads(threads)
    print(f"\n## {threads} thread(s), batch {batch}, {execution}\n")
    print(f"calibration: {calib_s:.0f} s\n```\n{describe(profile)}\n```\n")
    rows = []
    for entry in entries:                          # estimate first: cheap, and gives the order
        model = build_meta(entry["build"])
        shape = with_batch(entry["shape"], batch)
        report = costmodel.analyze(model, shape)
        est = latency.estimate(report, profile, execution)
        low, high = est.interval() if hasattr(est, "interval") else (est.total_s, est.total_s)
        rows.append({"name": entry["name"], "group": entry["group"], "shape": shape,
                     "paper": entry.get("paper"), "label": entry.get("label"),
                     "madds": report.totals.madds, "mac": report.totals.mac,
                     "mac_deployed": _fusion.totals(_fusion.fused(report))["mac"],
                     "params": report.totals.params, "kernels": sum(o.kernels for o in est.ops),
                     "estimate": est.total_s, "low": low, "high": high,
                     "terms": est.terms() if hasattr(est, "terms") else {},
                     "param_bytes": 4 * report.totals.params, "build": entry["build"]})
        del model, report, est
    order = sorted(rows, key=lambda r: r["estimate"])
    expected = sum(planned_seconds(r["estimate"], args) for r in rows)
    print(f"expected measuring time from the estimates: {expected:.0f} s (plus building the "
          f"models)", file=sys.stderr)
    if args.estimate_only:
        return {"threads": threads, "batch": batch, "expected_s": expected,
                "rows": [{k: v for k, v in r.items() if k not in ("build", "param_bytes")}
                         for r in rows]}
    block, block_x = sentinel()
    sentinel_times = {"calibration": sentinel_seconds(block, block_x), "during": []}
    measure_start = time.perf_counter()
    for group in groups_by_memory(order, args.group_bytes, args.group_size):
        models = [r["build"]().eval() for r in group]
        xs = [torch.randn(*(int(d) for d in r["shape"].split("x"))) for r in group]
        if execution == "fused":
            group, models, xs = deployed(group, models, xs, threads)
        with torch.no_grad():
            times, firsts = measure_group(models, xs, args.seconds * len(group), args.rounds)
        for r, t, f in zip(group, times, firsts):
            r["measured"], r["median"], r["rounds"] = min(t), statistics.median(t), len(t)
            r["first_call"] = min(f)
        del models, xs
        sentinel_times["during"].append(sentinel_seconds(block, block_x))
        done = sum("measured" in r for r in rows)
        print(f"  measured {done}/{len(rows)} models ({time.perf_counter() - measure_start:.0f} s)",
              file=sys.stderr)
    failed = [r for r in rows if "measured" not in r]
    rows = [r for r in rows if "measured" in r]
    for r in rows + failed:
        r.pop("build")
        r.pop("param_bytes")
    if failed:
        print("not measured: " + "; ".join(f"{r['name']} ({r.get('failed', '?')})"
                                           for r in failed))
    result = {"threads": threads, "batch": batch, "execution": execution,
              "not_measured": failed, "profile": profile.to_dict(),
              "calibration_s": calib_s, "measure_s": time.perf_counter() - measure_start,
              "sentinel": sentinel_times, "drift": drift(sentinel_times), "rows": rows,
              "summary": summary(rows), "summary_vs_median": summary(rows, "median")}
    print_setting(result)
    return result


# ---- printing --------------------------------------------------------------------------------

def pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def setting_lines(result: dict) -> list[str]:
    rows = result["rows"]
    s, sm = result["summary"], result["summary_vs_median"]
    lines = ["| model | group | MAdds | MAC | kernels | measured (ms) | median round (ms) | "
             "estimate (ms) | interval (ms) | estimate / measured |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["measured"]):
        lines.append(f"| {r['name']} | {r['group']} | {r['madds'] / 1e6:.0f}M | "
                     f"{r['mac'] / 1e6:.1f}M | {r['kernels']} | {r['measured'] * 1e3:.2f} | "
                     f"{r['median'] * 1e3:.2f} | {r['estimate'] * 1e3:.2f} | "
                     f"{r['low'] * 1e3:.2f}-{r['high'] * 1e3:.2f} | "
                     f"{r['estimate'] / r['measured']:.2f} |")
    lines += ["", f"### Summary: {result.get('execution', 'eager')}, {result['threads']} "
              f"thread(s), batch {result['batch']}, "
              f"{s['models']} models (against the fastest round; against the median round in "
              f"brackets)", ""]
    lines += [
        f"- median absolute error: {s['median_abs_error'] * 100:.1f}% "
        f"({sm['median_abs_error'] * 100:.1f}%); mean {s['mean_abs_error'] * 100:.1f}%",
        f"- within 10% / 15% / 30%: {s['within_10'] * 100:.0f}% / {s['within_15'] * 100:.0f}% / "
        f"{s['within_30'] * 100:.0f}% ({sm['within_10'] * 100:.0f}% / "
        f"{sm['within_15'] * 100:.0f}% / {sm['within_30'] * 100:.0f}%)",
        "- signed error (estimate / measured - 1): p10 {} median {} p90 {}; min {} max {}".format(
            *map(pct, s["signed_error_p10_p50_p90"] + s["signed_error_min_max"])),
        f"- interval coverage: {s['coverage'] * 100:.0f}% ({sm['coverage'] * 100:.0f}%) of "
        f"measured latencies inside the estimate's interval",
        "- Spearman with measured latency: estimate {:.3f}, MAdds {:.3f}, MAC {:.3f}".format(
            *(s["spearman"][k] for k in ("estimate", "madds", "mac")))
        + (", MAC as deployed {:.3f}".format(s["spearman"]["mac_deployed"])
           if "mac_deployed" in s["spearman"] else ""),
        "- equal-MAdds pairs (MAdds within 30%, latencies >5% apart; {} pairs) ordered right: "
        "estimate {:.0f}%, MAdds {:.0f}%, MAC {:.0f}%".format(
            s["equal_madds_pairs"]["pairs"],
            *(s["equal_madds_pairs"][k] * 100 for k in ("estimate", "madds", "mac"))),
        f"- time: calibration {result['calibration_s']:.0f} s, measuring "
        f"{result['measure_s']:.0f} s"]
    d = result.get("drift")
    if d:
        lines.append(
            f"- machine drift: the sentinel ran at x{d['min']:.2f} / x{d['median']:.2f} / "
            f"x{d['max']:.2f} (min / median / max over {d['n']} checks) of its time right after "
            f"calibration ({result['sentinel']['calibration'] * 1e3:.2f} ms); above 1: slower")
    first = [r["first_call"] / r["measured"] for r in rows if "first_call" in r]
    if first:
        q = statistics.quantiles(first, n=10) if len(first) >= 2 else first * 9
        lines.append(
            f"- first call after another model (its heap left by that model): x{q[0]:.2f} / "
            f"x{statistics.median(first):.2f} / x{q[-1]:.2f} (p10 / median / p90) of the "
            f"measured (steady) time; not scored")
    lines.append("")
    worst = sorted(rows, key=lambda r: -abs(r["estimate"] / r["measured"] - 1))[:10]
    lines += ["Worst ten: " + ", ".join(
        f"{r['name']} {pct(r['estimate'] / r['measured'] - 1)}" for r in worst), ""]
    for key in GUIDE_KEYS:
        table = [r for r in rows if r["group"] == key]
        if not table:
            continue

        def order(rs, k, reverse=False):
            return " > ".join(r["label"] for r in sorted(rs, key=lambda r: r[k], reverse=reverse))
        lines += [f"{key.upper()} (fastest first): paper {order(table, 'paper', True)} | "
                  f"measured {order(table, 'measured')} | estimate {order(table, 'estimate')} | "
                  f"MAC {order(table, 'mac')}"]
    return lines


def print_setting(result: dict) -> None:
    print("\n".join(setting_lines(result)))
    sys.stdout.flush()


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "costmodel": costmodel.__version__,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "load_average_start": os.getloadavg()}


def write_results(meta: dict, results: list[dict], out: Path, stem: str = "latency_validation"
                  ) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(
        {"machine": meta, "settings": results}, indent=1, default=float) + "\n")
    lines = ["# Latency validation", "",
             f"`{meta['command']}`", "",
             f"{meta['date']}; {meta['cpu']}, {meta['cores']} cores; Python {meta['python']}, "
             f"torch {meta['torch']}, torchvision {meta['torchvision']}, costmodel "
             f"{meta['costmodel']}; load average at start {meta['load_average_start']}, at end "
             f"{meta['load_average_end']}; {meta['total_s']:.0f} s in all; heap: "
             f"{meta.get('heap', 'glibc defaults')}.", ""]
    for result in results:
        lines += [f"## {result['threads']} thread(s), batch {result['batch']}, "
                  f"{result.get('execution', 'eager')}", "",
                  "```", describe(latency.DeviceProfile.from_dict(result["profile"])), "```", ""]
        lines += setting_lines(result) + [""]
    (out / f"{stem}.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["torchvision", "examples", "guidelines"],
                        help="torchvision model names or groups: torchvision, examples, ex:FILE, "
                             "guidelines, g1..g4 (default: all three groups)")
    parser.add_argument("--exclude", nargs="*", default=[], help="model names to leave out")
    parser.add_argument("--skip-largest", action="store_true",
                        help=f"leave out {', '.join(LARGEST)} (for batch 8 in under 10 minutes)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--quick", action="store_true",
                        help="a dozen models, 3 rounds, short calibration (development runs)")
    parser.add_argument("--calibrate", type=float, default=20.0,
                        help="calibration seconds per thread count (at most 90)")
    parser.add_argument("--seconds", type=float, default=0.5,
                        help="timed seconds per model (spread over the rounds)")
    parser.add_argument("--rounds", type=int, nargs=2, default=(5, 9), metavar=("MIN", "MAX"))
    parser.add_argument("--group-size", type=int, default=12)
    parser.add_argument("--group-bytes", type=float, default=1.5e9,
                        help="parameter bytes held at once while interleaving")
    parser.add_argument("--profile", type=Path,
                        help="a calibrated profile JSON to use instead of calibrating (one "
                             "thread count; development runs)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--execution", nargs="+", choices=("eager", "fused"), default=["eager"],
                        help="execution models to score: eager (PyTorch, op by op) and/or fused "
                             "(the deployed view, measured in ONNX Runtime)")
    parser.add_argument("--calibrate-fused", type=float, default=30.0,
                        help="seconds of the ONNX Runtime calibration (--execution fused)")
    parser.add_argument("--heap", choices=("default", "kept"), default="default",
                        help="glibc's heap: its defaults (thresholds that move with what the "
                             "process ran before; trimmed pages fault in again), or kept: the "
                             "heap keeps its pages (trim threshold 4 GB) and tensors over 32 MiB "
                             "are mapped anew per call (mmap threshold 32 MiB), as the estimate "
                             "assumes; set with GLIBC_TUNABLES in a re-executed process")
    parser.add_argument("--estimate-only", action="store_true",
                        help="calibrate and estimate, print the expected measuring time, stop")
    args = parser.parse_args(argv)
    if args.heap == "kept" and os.environ.get("GLIBC_TUNABLES") != KEPT:
        command = sys.argv[1:] if argv is None else argv
        os.execve(sys.executable, [sys.executable, __file__, *command],
                  {**os.environ, "GLIBC_TUNABLES": KEPT})
    if args.quick:
        args.models = list(QUICK) if args.models == parser.get_default("models") else args.models
        args.calibrate = min(args.calibrate, 12.0)
        args.rounds = (3, 3)
        args.seconds = min(args.seconds, 0.2)
    args.calibrate = min(args.calibrate, 90.0)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    global TMP
    tmp = tempfile.TemporaryDirectory(prefix="costmodel-validation-")
    TMP = tmp.name
    start = time.perf_counter()
    meta = machine()
    meta["command"] = "python benchmarks/latency_validation.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    meta["heap"] = (f"glibc heap kept (GLIBC_TUNABLES={KEPT})" if args.heap == "kept" else
                    "glibc defaults")
    print(f"{meta['cpu']}, torch {meta['torch']}, torchvision {meta['torchvision']}, "
          f"load average {meta['load_average_start']}")
    exclude = set(args.exclude) | (set(LARGEST) if args.skip_largest else set())
    entries = [e for e in validation_set(args.models) if e["name"] not in exclude]
    results = []
    with torch.no_grad():
        for threads in args.threads:
            calib = time.perf_counter()
            profile = (latency.load_profile(args.profile) if args.profile else
                       calibrate(args.calibrate, name=f"validation-{threads}t", threads=threads,
                                 analyze=costmodel.analyze))
            if "fused" in args.execution and not profile.fused:
                profile = calibrate_fused(profile, args.calibrate_fused, threads,
                                          costmodel.analyze)
                print(describe_fused(profile))
            calib_s = time.perf_counter() - calib
            for batch in args.batch:
                for execution in args.execution:
                    results.append(run_setting(entries, threads, batch, profile, calib_s, args,
                                               execution))
    if args.estimate_only:
        for r in results:
            print(f"{r['threads']} thread(s), batch {r['batch']}: expected measuring time "
                  f"{r['expected_s']:.0f} s for {len(r['rows'])} models; the largest: " + ", ".join(
                      f"{row['name']} {planned_seconds(row['estimate'], args):.0f} s"
                      for row in sorted(r["rows"], key=lambda row: -row["estimate"])[:12]))
        return 0
    meta["load_average_end"] = os.getloadavg()
    meta["total_s"] = time.perf_counter() - start
    write_results(meta, results, args.out, "latency_validation_fused"
                  if args.execution == ["fused"] else "latency_validation")
    print(f"\ntotal time {meta['total_s']:.0f} s; load average {meta['load_average_end']}; "
          f"results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
