"""Figures for people: SI-prefixed rates and durations with their units, one style for
pouw-miner's status line, the node's progress lines and the devnet view."""
from __future__ import annotations

import math

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def _num(x: float) -> str:
    """About three significant digits, never in exponent notation."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def si(value: float, unit: str) -> str:
    """``si(840_000, "MAC/s")`` → ``'840 kMAC/s'``, ``si(4.2e6, "MAC")`` → ``'4.20 MMAC'``."""
    if not math.isfinite(value):
        return f"∞ {unit}"
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{_num(value / scale)} {prefix}{unit}"
    return f"{_num(value)} {unit}"


def duration(seconds: float) -> str:
    """``0.0042`` → ``'4.20 ms'``, ``75`` → ``'1.25 min'``, ``9000`` → ``'2.50 h'``, ``3e5`` → ``'3.47 d'``."""
    if not math.isfinite(seconds):
        return "never"
    if seconds < 1:
        return f"{_num(seconds * 1000)} ms"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{_num(seconds / size)} {unit}"
    return f"{_num(seconds)} s"
