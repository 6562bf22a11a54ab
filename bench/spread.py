"""Repeated measurements as a median with its spread, and the Markdown cells that show them.

Design
------
Pure functions, no I/O: ``summarize`` turns the figures of N repeats into
``{"median", "min", "max", "n"}`` and ``cell`` prints one as ``median (min-max)`` (just the
median for one repeat), so every table of the matrix reads the same way. With two repeats the
median is their mean: the spread beside it is what says how far to trust it.
"""
from __future__ import annotations

import statistics

__all__ = ["summarize", "cell", "markdown_table"]


def summarize(values) -> dict | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def _fmt(v: float, digits: int | None) -> str:
    if digits is None:  # by magnitude: 3 significant figures or a whole number
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        digits = 2 if abs(v) < 10 else 1 if abs(v) < 100 else 0
    return f"{v:,.{digits}f}"


def cell(s: dict | None, digits: int | None = None) -> str:
    """``median (min-max)``; ``-`` for no value."""
    if s is None:
        return "-"
    med = _fmt(s["median"], digits)
    if s["n"] < 2:
        return med
    return f"{med} ({_fmt(s['min'], digits)}-{_fmt(s['max'], digits)})"


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
