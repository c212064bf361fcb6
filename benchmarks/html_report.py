"""Size and load time of the HTML report in headless Chromium: ShuffleNet V2 1x (272 layers)
against a 1,000-layer model (torchvision efficientnet_v2_l at 480x480, built on meta), measured in
the same run.

    python benchmarks/html_report.py [--repeat 3] [--chromium /usr/bin/chromium] [--keep DIR]

"sort ms" is one click on the MAC column of the layer table (sort and re-append every row).
"render complete" is the time from navigation start until every plotly figure has drawn and the
table is wired (the page sets `document.body.dataset.rendered`); the best of `--repeat` fresh
pages. Needs plotly, playwright and a Chromium binary (no browser download).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def reports():
    import torch
    import torchvision

    import costmodel
    from costmodel.check import analyze_spec

    yield "shufflenet_v2 1x", analyze_spec(str(ROOT / "examples/shufflenet_v2.py"), [], {}, None)
    with torch.device("meta"):
        model = torchvision.models.efficientnet_v2_l().eval()
    yield "efficientnet_v2_l", costmodel.analyze(model, "1x3x480x480")


def load_ms(browser, path: Path) -> tuple[float, float, float]:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    start = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_function("document.body.dataset.rendered", timeout=120_000)
    wall = (time.perf_counter() - start) * 1e3
    rendered = page.evaluate("window.costmodelRenderMs")
    sort = page.evaluate("""() => { const th = document.querySelectorAll('#layer-table th')[9];
        const t = performance.now(); th.click(); return performance.now() - t; }""")
    page.close()
    if errors:
        raise RuntimeError(f"{path.name}: {errors[:3]}")
    return rendered, wall, sort


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chromium",
                    default=shutil.which("chromium") or shutil.which("chromium-browser"))
    ap.add_argument("--keep", help="write the HTML files here (default: a temporary folder)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from costmodel.render import layout, page

    out = Path(args.keep or tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        for name, report in reports():
            t = time.perf_counter()
            text = page.render(report)
            build = time.perf_counter() - t
            path = out / f"{name.split()[0]}.html"
            path.write_text(text, encoding="utf-8")
            view = layout.graph_view(report.graph)
            runs = [load_ms(browser, path) for _ in range(args.repeat)]
            rendered, wall, _ = min(runs)
            sort = min(r[2] for r in runs)
            rows.append((name, len(report.layers), view.dag.number_of_nodes(),
                         "full" if view.depth is None else f"depth {view.depth}",
                         len(text.encode()) / 2**20, build, rendered, wall, sort))
        browser.close()
    print(f"{'model':<20}{'layers':>7}{'graph nodes':>12}{'graph':>8}{'size MiB':>10}"
          f"{'build s':>9}{'render ms':>11}{'load ms':>9}{'sort ms':>9}")
    for r in rows:
        print(f"{r[0]:<20}{r[1]:>7}{r[2]:>12}{r[3]:>8}{r[4]:>10.2f}{r[5]:>9.2f}{r[6]:>11.0f}"
              f"{r[7]:>9.0f}{r[8]:>9.1f}")
    base = rows[0]
    for r in rows[1:]:
        print(f"{r[0]} vs {base[0]}: {r[4] / base[4]:.2f}x size, {r[6] / base[6]:.2f}x render time")
    js = len(__import__("plotly.offline", fromlist=["x"]).get_plotlyjs().encode()) / 2**20
    print(f"(of each file, {js:.2f} MiB is plotly.js; files in {out})")


if __name__ == "__main__":
    main()
