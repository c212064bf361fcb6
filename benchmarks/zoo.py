"""The model zoo, run as users would: timm, Hugging Face (small configs) and torchvision models,
each analysed by costmodel and checked against a real forward of the same model and inputs.

    taskset -c 0 python benchmarks/zoo.py [--suite timm|hf|torchvision] [--only REGEX]
        [--limit N] [--timeout S] [--workers N] [--out DIR] [--fresh] [--report-only]

For each model: captured or not (and the one-line reason), complete or partial (and which ops),
MAdds against FlopCounterMode / 2 on a real forward (under the MATH SDPA backend, one thread),
params against sum(p.numel()), and the time of analyze() against one real forward.

Worker processes ('spawn') import torch, timm, transformers, torchvision and costmodel once and take
models one at a time; a worker that passes the timeout or dies is killed and replaced, and the
model is recorded with the stage it reached. Results are merged by model into DIR/zoo.json after
every model (a partial run is usable; rerunning a subset replaces those rows), and DIR/zoo.md is
written from the JSON at the end (--report-only rewrites it without running anything).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import platform
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import zoo_report  # noqa: E402

SUITES = ("timm", "hf", "torchvision")
# ------------------------------------------------------------------------------------ worker

def _params_true(model) -> int:
    """sum(p.numel()) over parameters(), plus the packed weights and biases of quantized modules
    (their `weight()` / `bias()` methods: parameters() sees none of them)."""
    total = sum(p.numel() for p in model.parameters())
    for mod in model.modules():
        weight, bias = getattr(mod, "weight", None), getattr(mod, "bias", None)
        if callable(weight) and callable(bias):
            total += weight().numel() + (0 if bias() is None else bias().numel())
    return total


def _worker(conn) -> None:
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import timm  # noqa: F401 - imported once per worker
    import torch
    import torchvision  # noqa: F401
    import transformers  # noqa: F401

    import costmodel

    torch.set_num_threads(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)          # what models print must not mix into the driver's output
    costmodel.analyze(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()),
                      "1x3x8x8")       # warm-up of costmodel's own first-call work
    conn.send(("ready", {}))
    while True:
        job = conn.recv()
        if job is None:
            return
        try:
            _run(job, conn)
        except BaseException as exc:  # noqa: BLE001 - a model must not end the worker
            conn.send(("done", {"stage": "crashed", "error": _one_line(exc)}))


def _one_line(exc: BaseException) -> str:
    from zoo_corpus import one_line
    return one_line(exc)


def _run(job: dict, conn) -> None:
    from zoo_corpus import BUILDERS

    import costmodel

    rec: dict = {"stage": "building"}
    conn.send(("stage", rec))
    start = time.perf_counter()
    try:
        built = BUILDERS[job["suite"]](job["name"])
    except Exception as exc:  # noqa: BLE001 - the harness could not build it: recorded, not run
        conn.send(("done", {"stage": "not built", "error": _one_line(exc)}))
        return
    model = built.model
    rec.update(stage="analysing", build_s=time.perf_counter() - start, input=built.input,
               note=built.note, params_true=_params_true(model))
    conn.send(("stage", dict(rec)))
    start = time.perf_counter()
    try:
        report = costmodel.analyze(model, *built.specs, kwargs=built.kwspecs)
    except Exception as exc:  # noqa: BLE001 - the reason is the result
        rec.update(captured=False, error=_one_line(exc), analyze_s=time.perf_counter() - start)
    else:
        totals = report.totals
        rec.update(captured=True, analyze_s=time.perf_counter() - start, capture=report.capture,
                   status=str(totals.status), unsupported=list(totals.unsupported),
                   madds=totals.madds, params=totals.params,
                   data_dependent=any(d.code == "CM009" for d in report.diagnostics))
    rec["stage"] = "oracle"
    conn.send(("stage", dict(rec)))
    rec.update(_oracle(model, built))
    rec["stage"] = "done"
    conn.send(("done", rec))


def _oracle(model, built) -> dict:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class Seen(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: set = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.add(func.overloadpacket)
            return func(*args, **(kwargs or {}))

    for p in model.parameters():
        p.requires_grad_(False)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
            # nn.MultiheadAttention's fused inference path is one op FlopCounterMode counts 0
            torch.backends.mha.set_fastpath_enabled(False)
            try:
                with FlopCounterMode(display=False) as counter, Seen() as seen:
                    model(*built.args, **built.kwargs)
            finally:
                torch.backends.mha.set_fastpath_enabled(fastpath)
            start = time.perf_counter()
            model(*built.args, **built.kwargs)
            forward_s = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - the real forward itself fails
        return {"oracle": "failed", "oracle_error": _one_line(exc)}
    registry = counter.flop_registry
    blind = sorted(str(op) for op in seen.ops if op not in registry and zoo_report.blind(op))
    return {"oracle": "ok", "oracle_madds": counter.get_total_flops() // 2,
            "forward_s": forward_s, "oracle_blind": blind}


# ------------------------------------------------------------------------------------ driver
class Pool:
    def __init__(self, size: int, timeout: float) -> None:
        self.ctx = mp.get_context("spawn")
        self.timeout = timeout
        self.workers = [self._start() for _ in range(size)]

    def _start(self):
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(child,), daemon=True)
        proc.start()
        child.close()
        kind, _ = parent.recv()
        assert kind == "ready"
        return {"proc": proc, "conn": parent, "job": None, "rec": {}, "since": 0.0}

    def _replace(self, worker: dict) -> dict:
        worker["proc"].kill()
        worker["proc"].join()
        worker["conn"].close()
        return self._start()

    def run(self, jobs: list[dict], on_result) -> None:
        from multiprocessing.connection import wait

        queue = list(jobs)
        while queue or any(w["job"] for w in self.workers):
            for w in self.workers:
                if w["job"] is None and queue:
                    w.update(job=queue.pop(0), rec={}, since=time.monotonic())
                    w["job"]["started"] = time.monotonic()
                    w["conn"].send(w["job"])
            busy = [w for w in self.workers if w["job"]]
            deadline = min(w["since"] for w in busy) + self.timeout
            ready = wait([w["conn"] for w in busy], max(0.0, deadline - time.monotonic()))
            for i, w in enumerate(self.workers):
                if not w["job"]:
                    continue
                if w["conn"] in ready:
                    try:
                        kind, rec = w["conn"].recv()
                    except (EOFError, OSError):
                        rec = {**w["rec"], "stage": "crashed", "timeout_stage": w["rec"].get(
                            "stage"), "error": "the worker process died (crash or out of memory)"}
                        on_result(w["job"], rec)
                        self.workers[i] = self._replace(w)
                        continue
                    w["rec"] = rec
                    if kind == "done":
                        on_result(w["job"], rec)
                        w["job"] = None
                elif time.monotonic() - w["since"] >= self.timeout:
                    rec = {**w["rec"], "timeout_stage": w["rec"].get("stage", "starting"),
                           "stage": "timed out"}
                    if rec["timeout_stage"] == "oracle":
                        rec["oracle"] = "timed out"
                    on_result(w["job"], rec)
                    self.workers[i] = self._replace(w)

    def close(self) -> None:
        for w in self.workers:
            try:
                w["conn"].send(None)
            except OSError:
                pass
            w["proc"].join(5)
            if w["proc"].is_alive():
                w["proc"].kill()


def _jobs(args) -> tuple[list[dict], dict]:
    import zoo_corpus

    jobs, skipped = [], {}
    for suite in args.suite or SUITES:
        if suite == "timm":
            names = zoo_corpus.timm_names()
        elif suite == "torchvision":
            names = zoo_corpus.torchvision_names()
        else:
            names, skipped_hf = zoo_corpus.hf_names(args.only)
            skipped.update({f"hf:{k}": v for k, v in skipped_hf.items()})
        names = [n for n in names if not args.only or re.search(args.only, n)]
        if suite != "timm":      # a stable shuffle: a partial run is a sample of the whole suite
            names.sort(key=lambda n: hashlib.md5(n.encode()).hexdigest())
        jobs += [{"suite": suite, "name": n} for n in names[:args.limit or None]]
        if not args.only and not args.limit:
            skipped[f"planned:{suite}"] = len(names)
    return jobs, skipped


def _machine() -> dict:
    import timm
    import torch
    import torchvision
    import transformers

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    return {"host": platform.node(), "cpu": cpu, "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.__version__, "transformers": transformers.__version__,
            "threads": 1, "affinity": sorted(os.sched_getaffinity(0)),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", choices=SUITES)
    parser.add_argument("--only", help="run the models whose name matches this regex")
    parser.add_argument("--limit", type=int, help="at most N models per suite")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per model")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--fresh", action="store_true", help="drop earlier rows in OUT/zoo.json")
    parser.add_argument("--resume", action="store_true",
                        help="skip the models OUT/zoo.json already has a row for")
    parser.add_argument("--report-only", action="store_true", help="rewrite zoo.md from zoo.json")
    parser.add_argument("--docs", type=Path, help="also write the docs page here")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="merge these zoo.json files (runs in other OUT dirs) into OUT's")
    args = parser.parse_args()
    try:
        re.compile(args.only or "")
    except re.error as exc:
        parser.error(f"--only {args.only!r} is not a regular expression: {exc}")
    if args.timeout <= 0 or args.workers < 1:
        parser.error("--timeout must be positive and --workers at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "zoo.json"
    data = {"results": {}, "skipped": {}} if args.fresh or not path.exists() else \
        json.loads(path.read_text())
    for other in args.merge:
        more = json.loads(other.read_text())
        data["results"].update(more["results"])
        data["skipped"].update(more.get("skipped", {}))
        data.setdefault("planned", {}).update(more.get("planned", {}))
        data["commands"] = data.get("commands", []) + more.get("commands", [])
        data.setdefault("machine", more.get("machine"))
    if args.merge:
        path.write_text(json.dumps(data, indent=1, sort_keys=True))
    if not args.report_only:
        jobs, skipped = _jobs(args)
        data.setdefault("planned", {}).update(
            {k.split(":", 1)[1]: skipped.pop(k) for k in list(skipped) if k.startswith("planned:")})
        if args.resume:
            jobs = [j for j in jobs if f"{j['suite']}:{j['name']}" not in data["results"]]
        data["skipped"].update(skipped)
        data["machine"] = _machine()
        pinned = sorted(os.sched_getaffinity(0))
        command = (f"taskset -c {','.join(map(str, pinned))} " if len(pinned) < (os.cpu_count()
                   or 1) else "") + "python benchmarks/zoo.py " + " ".join(sys.argv[1:])
        data["commands"] = data.get("commands", []) + [command]
        print(f"{len(jobs)} models, timeout {args.timeout:.0f} s, {args.workers} worker(s)",
              flush=True)

        def on_result(job: dict, rec: dict) -> None:
            key = f"{job['suite']}:{job['name']}"
            data["results"][key] = {"suite": job["suite"], "name": job["name"], **rec,
                                    "wall_s": round(time.monotonic() - job["started"], 2)}
            print(zoo_report.line(data["results"][key]), flush=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(path)

        pool = Pool(args.workers, args.timeout)
        try:
            pool.run(jobs, on_result)
        finally:
            pool.close()
    text = zoo_report.markdown(data)
    (args.out / "zoo.md").write_text(text)
    if args.docs:
        args.docs.write_text(zoo_report.docs_page(data))
    print(zoo_report.summary_block(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
