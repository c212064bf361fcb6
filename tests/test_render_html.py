"""The HTML report, the notebook view, report.plot(), to_dataframe() and the DOT/SVG export,
without a browser (tests/test_html_browser.py opens the page in Chromium)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import torch
from torch import nn

import costmodel
from costmodel.cli import main
from costmodel.render import dot, figures, formats, layout, page
from costmodel.render import html as notebook

plotly = pytest.importorskip("plotly")

# A module name and a class name full of HTML: nothing of it may reach the page as markup.
EVIL = "x<img src=1 onerror=\"window_pwned=1\">&'</script>"
EVIL_CLASS = "Net<b>&\"'</title>"


def _init(self):
    nn.Module.__init__(self)
    self.stem = nn.Conv2d(3, 16, 3, padding=1)
    self.add_module(EVIL, nn.Conv2d(8, 32, 1))   # 1:4, a G1 finding on the hostile name
    self.dw = nn.Conv2d(32, 32, 3, padding=1, groups=32)
    self.relu = nn.ReLU()
    self.fc = nn.Linear(40, 10)


def _forward(self, x):
    x = self.stem(x)
    a, b = x.chunk(2, dim=1)                 # a ShuffleNet-like split: one branch, one shortcut
    b = self.relu(self.dw(getattr(self, EVIL)(b)))
    x = torch.cat([a, b], 1)
    return self.fc(x.mean((2, 3)))


EvilNet = type(EVIL_CLASS, (nn.Module,), {"__init__": _init, "forward": _forward})


@pytest.fixture(scope="module")
def report():
    return costmodel.analyze(EvilNet(), "1x3x16x16")


@pytest.fixture(scope="module")
def page_html(report):
    return page.render(report)


def _figs(text: str) -> dict:
    data = re.search(r"<script>const FIGS = (.*?);</script>", text, re.S).group(1)
    return json.loads(data)


def test_page_is_self_contained(page_html):
    assert page_html.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]+src=", page_html)       # plotly.js is inline
    assert not re.search(r"<link[^>]+href=", page_html)
    assert "plotly.js v" in page_html                            # the library itself is in it
    figs = _figs(page_html)
    assert set(figs) == {"layers", "modules", "operators", "roofline", "graph"}


def test_everything_user_controlled_is_escaped(page_html):
    assert EVIL not in page_html and EVIL_CLASS not in page_html
    assert "onerror=\"window_pwned" not in page_html
    assert "<img" not in page_html and "<b>&" not in page_html
    assert "x&lt;img src=1 onerror=&quot;window_pwned=1&quot;&gt;&amp;&#x27;&lt;/script&gt;" \
        in page_html                                            # shown, as text
    assert "<title>costmodel: Net&lt;b&gt;&amp;&quot;&#x27;&lt;/title&gt;</title>" in page_html
    # `</script>` appears only where a script element really ends
    assert page_html.count("</script>") == page_html.count("<script>")
    # in the figures (which plotly renders as a subset of HTML) the names are escaped too
    figs = json.dumps(_figs(page_html))
    assert "<img" not in figs and "&lt;img src=1" in figs


def test_table_rows_and_links(report, page_html):
    rows = re.findall(r"<tr id='layer-(\d+)' data-name='([^']*)'", page_html)
    assert [int(i) for i, _ in rows] == list(range(len(report.layers)))
    assert rows[0][1] == report.layers[0].name
    cells = re.findall(r"<td data-v='(\d+)'>", page_html)   # integer metrics are exact
    assert str(report.layers[0].mac) in cells


def test_guideline_findings_link_to_their_layers():
    g1_net = nn.Sequential(nn.Conv2d(32, 256, 1), nn.ReLU(), nn.Conv2d(256, 32, 1))  # 1:8, 8:1
    rep = costmodel.analyze(g1_net, "1x32x28x28")
    findings = rep.guidelines
    assert findings, "the unbalanced 1x1 conv should be a G1 finding"
    text = page.render(rep)
    index = {layer.name: i for i, layer in enumerate(rep.layers)}
    for d in findings:
        if d.node in index:
            assert f"href='#layer-{index[d.node]}'" in text
            assert f"id='layer-{index[d.node]}'" in text


def test_graph_layout_puts_branch_and_shortcut_in_lanes(report):
    view = layout.graph_view(report.graph)
    assert view.depth is None
    lay = layout.layered(view.dag)
    pos = lay.pos
    # the branch (1x1 conv) and the shortcut edge (getitem -> cat) run side by side
    branch = next(n for n in pos if view.dag.nodes[n]["module"] == EVIL)
    shortcut = next(line for line in lay.edges if len(line) > 2)  # through dummy points
    assert all(y != pos[branch][1] for x, y in shortcut if x == pos[branch][0])
    for u, v in view.dag.edges:
        assert pos[u][0] < pos[v][0]                          # left to right


def test_big_graphs_collapse_to_modules():
    net = nn.Sequential(*[nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8),
                                        nn.ReLU()) for _ in range(4)])
    report = costmodel.analyze(net, "1x8x8x8")
    assert layout.graph_view(report.graph, max_nodes=14).depth is None   # 12 layers + in, out
    view = layout.graph_view(report.graph, max_nodes=6)
    assert view.depth is not None and view.dag.number_of_nodes() <= 6
    covered = [m for n in view.dag for m in view.dag.nodes[n]["members"]]
    assert sorted(covered) == sorted(layout.full_view(report.graph))    # every node, once
    total = sum(view.dag.nodes[n]["cost"].mac for n in view.dag)
    assert total == report.totals.mac
    fig = figures.graph_figure(report, max_nodes=6)
    assert "collapsed to modules at depth" in fig.layout.title.text


def test_plot_returns_editable_figures(report):
    go = pytest.importorskip("plotly.graph_objects")
    for kind in figures.KINDS:
        fig = report.plot(kind)
        assert isinstance(fig, go.Figure) and fig.data
    fig = report.plot("layers")
    assert list(fig.data[0].x) == list(range(len(report.layers)))
    assert [y or 0 for y in fig.data[1].y] == [layer.mac for layer in report.layers]
    fig.update_layout(title="mine")                          # the user keeps editing it
    tree = report.plot("modules", metric="madds").data[0]
    assert tree.values[0] == report.totals.madds            # the root holds the whole model
    with pytest.raises(ValueError, match="unknown plot kind"):
        report.plot("pie")


def test_missing_plotly_is_one_clear_error(report, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(ImportError, match=r"pip install \"costmodel\[html\]\""):
        report.plot()
    with pytest.raises(ImportError, match="need plotly"):
        formats.render(report, "html")


def test_to_dataframe(report, monkeypatch):
    pd = pytest.importorskip("pandas")
    df = report.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == len(report.layers)
    for metric in ("madds", "flops", "mac", "mac_bytes"):
        assert int(df[metric].sum()) == getattr(report.totals, metric)
    assert EVIL in set(df["module"])
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"costmodel\[pandas\]"):
        report.to_dataframe()


def test_notebook_view_is_compact_escaped_and_script_free(report):
    text = report._repr_html_()
    assert text == notebook.render(report)
    assert "<script" not in text and "<img" not in text and EVIL_CLASS not in text
    assert "Net&lt;b&gt;" in text
    n = len(report.layers)
    assert f"top {min(10, n)} layers by MAC</b> of {n}" in text and "by op category" in text
    assert text.count("<tr>") == 2 + min(10, n) + len(report.by_operator())   # heads, layers, bars
    assert len(text) < 20_000


def test_import_costmodel_stays_light():
    code = ("import sys, costmodel, costmodel.core.report, costmodel.render.html; "
            "print(any(m.split('.')[0] in ('plotly', 'pandas') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- DOT and SVG -----------------------------------------------------------------------------

def test_dot_quotes_every_string():
    assert dot.quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_dot_export(report):
    text = dot.render(report)
    assert text.startswith("// costmodel") and text.rstrip().endswith("}")
    nodes = layout.full_view(report.graph)
    assert len(re.findall(r"^\s+\"[^\"]+\" \[label=", text, re.M)) == nodes.number_of_nodes()
    assert len(re.findall(r" -> ", text)) == nodes.number_of_edges()
    assert dot.quote(EVIL) in text                           # quoted, never raw
    mac = re.search(r'"stem" \[.*? mac="(\d+)"', text).group(1)
    assert int(mac) == next(layer.mac for layer in report.layers if layer.name == "stem")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_svg_export_is_valid_xml_with_the_names_as_text(report):
    svg = formats.render(report, "svg")
    root = ET.fromstring(svg.encode())
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert "stem" in texts and any(t and "Conv2d" in t for t in texts)


def test_svg_without_graphviz_is_a_clear_error(report, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs Graphviz's `dot` on PATH"):
        formats.render(report, "svg")


def test_cli_html_and_dot(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", "examples/squeezenet.py", "--format", "html", "-o", str(out)]) == 0
    text = out.read_text()
    assert "<div id='fig-graph'" in text and "SqueezeNet" in text
    assert main(["report", "examples/squeezenet.py", "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith("// costmodel")
