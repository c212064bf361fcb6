"""Human units (4.09G, 25.6M, 98.0MiB, 1.2 ms) and HTML escaping: the one copy of each formatting
helper the renderers and the CLI share."""
from __future__ import annotations

import html
import textwrap
from typing import Any


def human(n: int | float, *, binary: bool = False, digits: int = 3) -> str:
    """1234567 -> '1.23M'; with binary=True, bytes -> '1.18MiB'. `digits` significant digits."""
    step, units = (1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB")) if binary else (
        1000.0, ("", "K", "M", "G", "T", "P"))
    value = float(n)
    for i, unit in enumerate(units):
        last = i == len(units) - 1
        if unit in ("", "B") and abs(value) < step:
            return f"{int(value)}{unit}"
        if abs(value) < step or last:
            text = f"{value:.1f}" if digits == 3 and abs(value) >= 100 else _sig(value, digits)
            if abs(float(text)) < step or last:   # 999.96K rounds to 1000.0K: say 1.00M instead
                return text + unit
        value /= step
    return str(n)


def _sig(value: float, digits: int) -> str:
    """`digits` significant digits, trailing zeros kept (1.20, 25.0, 9.00): equal precision reads
    as equal precision."""
    text = f"{value:#.{digits}g}"
    return text[:-1] if text.endswith(".") else text


def percent(part: float, whole: float, *, digits: int = 1) -> str:
    """part / whole as a percentage with `digits` decimals; '-' when whole is zero."""
    return f"{100.0 * part / whole:.{digits}f}%" if whole else "-"


def duration(seconds: float) -> str:
    """Seconds as milliseconds, or as microseconds below 0.1 ms: '1.23 ms', '45.6 us'."""
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-4 else f"{seconds * 1e6:.3g} us"


def escape(text: Any, *, quote: bool = True) -> str:
    """`str(text)` with HTML's special characters escaped; quote=False leaves quotes as they are
    (plotly label and hover text, which is not an attribute)."""
    return html.escape(str(text), quote=quote)


_CONTROL = {i: f"\\x{i:02x}" for i in range(32)} | {127: "\\x7f", 10: "\\n", 13: "\\r", 9: "\\t"}


def clean(text: str) -> str:
    """A name as one printable line: control characters and newlines escaped (`\\n`, `\\x1b`), so
    a module or class name cannot break a text, markdown or csv row or drive the terminal."""
    return str(text).translate(_CONTROL)


def clean_md(text: str) -> str:
    """clean(), and `|` escaped: a markdown table cell."""
    return clean(text).replace("|", "\\|")


def middle(text: str, width: int) -> str:
    """`text` cut to `width` characters in the middle with an ellipsis: both the start of a
    module path and its last layer stay readable."""
    if len(text) <= width or width < 5:
        return text
    keep = width - 1
    return text[:(keep + 1) // 2] + "…" + text[len(text) - keep // 2:]


def wrap(line: str, width: int | None) -> str:
    """A prose line folded to `width` columns (None: as it is), continuation lines indented two
    spaces past the line's own indent; words, paths and names are never split."""
    if width is None or len(line) <= width:
        return line
    indent = line[:len(line) - len(line.lstrip())]
    return textwrap.fill(line, width, subsequent_indent=indent + "  ", break_long_words=False,
                         break_on_hyphens=False)
