"""docs/coverage.md is generated from the registries (STYLE: what is covered fits on one screen):
this test fails when a binding, formula or backward rule changes and the page was not
regenerated with `python -m pytest tests/test_docs_coverage.py --update-golden`."""
from __future__ import annotations

import difflib
import pathlib

from costmodel.formulas.registry import coverage
from costmodel.ops import bound_ops

PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "coverage.md"

HEADER = """# Op coverage

Generated from the registries by `tests/test_docs_coverage.py` (regenerate with
`python -m pytest tests/test_docs_coverage.py --update-golden`). One row per op: the family file
it lives in (the same name in `ops/`, `formulas/forward/` and `formulas/backward/`), its
category, how many torch callables (and custom operators) are bound to it, and whether its
backward pass is costed. A torch call that is bound to nothing is reported as unsupported
(`CM001`), never counted as zero. To add an op, follow the recipe on the
[architecture page](architecture.md).

| op | family | category | callables | backward |
|---|---|---|---|---|
"""


def render() -> str:
    rows = coverage(bound_ops())
    lines = [f"| `{r.op}` | {r.family} | {r.category} | {r.callables} | "
             f"{'yes' if r.backward else 'no: ' + r.no_backward} |" for r in rows]
    ops, bound = len(rows), sum(r.callables for r in rows)
    return HEADER + "\n".join(lines) + f"\n\n{ops} ops, {bound} bound callables.\n"


def test_coverage_page_is_generated_from_the_registries(update_golden):
    text = render()
    if update_golden:
        PAGE.write_text(text, encoding="utf-8")
    current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    diff = "".join(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                        "docs/coverage.md", "from the registries"))
    assert current == text, f"regenerate with --update-golden:\n{diff}"


def test_every_op_is_on_the_page():
    text = render()
    assert all(f"| `{r.op}` |" in text for r in coverage(bound_ops()))
    assert "| `rrelu` | pointwise | activation |" in text
