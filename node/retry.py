"""Exponential backoff, one rule for the node: actor restarts and automatic rewrite retries."""
from __future__ import annotations

__all__ = ["backoff_delay"]


def backoff_delay(base: float, failures: int, cap: float) -> float:
    """``base`` for the first failure, doubled for each one after it, never above ``cap``."""
    return min(base * 2 ** max(0, failures - 1), cap)
