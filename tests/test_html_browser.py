"""The HTML report as a person sees it: ShuffleNet V2 1x opened in headless Chromium.

Skipped when Playwright or a Chromium binary is missing (`.ci/run` installs the system Chromium;
no browser is downloaded). COSTMODEL_UPDATE_SCREENSHOTS=1 also copies the screenshots to
docs/screenshots/ for the README.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("plotly")
sync_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser"), shutil.which("google-chrome"))
                 if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install "
                                                         "chromium, or set CHROMIUM=path)")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: errors.append(f"fetched {r.url}")
            if not r.url.startswith(("file:", "data:", "blob:")) else None)
    page.goto(path.as_uri())
    page.wait_for_function("document.body.dataset.rendered", timeout=60_000)
    assert page.get_attribute("body", "data-rendered") == "true"
    return page, errors


@pytest.fixture(scope="module")
def shufflenet(tmp_path_factory):
    from costmodel.cli.gate import analyze_spec
    from costmodel.render import page

    report = analyze_spec(str(ROOT / "examples/shufflenet_v2.py"), [], {}, None)
    path = tmp_path_factory.mktemp("html") / "shufflenet_v2.html"
    path.write_text(page.render(report), encoding="utf-8")
    return report, path


def _numbers(page, col: int) -> list[float]:
    return page.eval_on_selector_all(
        "#layer-table tbody tr:not([hidden])",
        f"rows => rows.map(r => parseFloat(r.cells[{col}].dataset.v))")


def test_shufflenet_report_in_chromium(browser, shufflenet, tmp_path):
    report, path = shufflenet
    page, errors = _open(browser, path)
    assert errors == []                                           # no console error, no fetch
    # the charts and the graph are drawn
    for name in ("layers", "modules", "operators", "roofline", "graph"):
        assert page.locator(f"#fig-{name} .main-svg").count() >= 1, name
    assert page.locator("#fig-layers .bars .point").count() == len(report.layers)
    assert page.locator("#fig-modules .treemaplayer .slice").count() > 5
    from costmodel.render import layout
    drawn = layout.full_view(report.graph).number_of_nodes()
    assert page.locator("#fig-graph .scatterlayer .trace:nth-child(2) .point").count() >= drawn
    assert "stages.0.0" in page.inner_text("#fig-graph")          # the first unit, labelled
    assert page.locator("#fig-roofline .scatterlayer .point").count() > 50
    assert page.inner_text(".card .value[data-metric='MAdds']") == "144.9M"
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    shots = {"report.png": tmp_path / "report.png"}
    for section in ("summary", "graph-section"):
        shots[f"{section}.png"] = tmp_path / f"{section}.png"
        page.locator(f"#{section}").screenshot(path=str(shots[f"{section}.png"]))

    # sort by MAC (descending, then ascending), by layer name (text)
    mac_col = 9
    header = page.locator("#layer-table th", has_text="MAC").first
    header.click()
    macs = _numbers(page, mac_col)
    assert len(macs) == len(report.layers) and macs == sorted(macs, reverse=True)
    assert macs[0] == max(layer.mac for layer in report.layers)
    assert header.get_attribute("aria-sort") == "descending"
    header.click()
    assert _numbers(page, mac_col) == sorted(macs)
    page.locator("#layer-table th", has_text="layer").first.click()
    names = page.eval_on_selector_all("#layer-table tbody tr",
                                      "rows => rows.map(r => r.cells[1].textContent)")
    assert names == sorted(names, key=str.lower)

    # filter by text, then by category
    page.fill("#filter", "stages.1.0")
    shown = page.eval_on_selector_all("#layer-table tbody tr:not([hidden])",
                                      "rows => rows.map(r => r.cells[2].textContent)")
    expected = [layer for layer in report.layers if "stages.1.0" in layer.module]
    assert len(shown) == len(expected) > 0 and all("stages.1.0" in m for m in shown)
    assert page.inner_text("#count") == f"{len(expected)} of {len(report.layers)} layers"
    page.fill("#filter", "")
    page.select_option("#category", "depthwise conv")
    cats = page.eval_on_selector_all("#layer-table tbody tr:not([hidden])",
                                     "rows => rows.map(r => r.cells[4].textContent)")
    assert cats and set(cats) == {"depthwise conv"}
    page.locator("#layers").screenshot(path=str(tmp_path / "table.png"))
    shots["table.png"] = tmp_path / "table.png"
    assert errors == []

    if os.environ.get("COSTMODEL_UPDATE_SCREENSHOTS"):
        target = ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        for name, shot in shots.items():
            shutil.copy(shot, target / f"shufflenet_v2_{name}")


def test_hostile_names_stay_text_in_the_browser(browser, tmp_path):
    import costmodel
    from costmodel.render import page

    from test_render_html import EVIL, EVIL_CLASS, EvilNet

    report = costmodel.analyze(EvilNet(), "1x3x16x16")
    path = tmp_path / "evil.html"
    path.write_text(page.render(report), encoding="utf-8")
    p, errors = _open(browser, path)
    assert errors == []
    assert p.evaluate("window.window_pwned") is None               # no injected handler ran
    assert p.locator("img").count() == 0
    assert p.inner_text("header h1") == EVIL_CLASS
    assert p.title() == f"costmodel: {EVIL_CLASS}"
    modules = p.eval_on_selector_all("#layer-table tbody tr",
                                     "rows => rows.map(r => r.dataset.module)")
    assert EVIL in modules
    # a guideline finding (G1: the hostile-named 1x1 conv maps 8 -> 32 channels; the 3-channel
    # stem is not a finding, its width is the image's) links to its layer's row
    assert [d.module for d in report.guidelines if d.code == "G101"] == [EVIL]
    link = p.locator("a.to-layer").first
    link.click()
    hit = p.locator("#layer-table tr.hit")
    assert hit.count() == 1 and hit.get_attribute("id") == link.get_attribute("href")[1:]
