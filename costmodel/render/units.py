"""Human units: 4.09G, 25.6M, 98.0MiB."""
from __future__ import annotations


def human(n: int | float, *, binary: bool = False) -> str:
    """1234567 -> '1.23M'; with binary=True, bytes -> '1.18MiB'."""
    step, units = (1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB")) if binary else (
        1000.0, ("", "K", "M", "G", "T", "P"))
    value = float(n)
    for unit in units:
        if abs(value) < step or unit == units[-1]:
            if unit in ("", "B"):
                return f"{int(value)}{unit}"
            return f"{value:.3g}{unit}" if abs(value) < 100 else f"{value:.1f}{unit}"
        value /= step
    return str(n)


def percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"
