"""Human units: 4.09G, 25.6M, 98.0MiB."""
from __future__ import annotations


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


def percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"
