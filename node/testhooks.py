"""Test-only pause points, used by the hazard tests (kill -9 at a named step).

With ``AOFNODE_TEST_PAUSE_AT=<step>`` in the environment, the process reaching ``<step>``
creates ``<data dir>/paused-at-<step>`` holding its pid, then waits until a test removes the
file (or kills the process). ``make_pause`` reads the environment once, when an actor starts,
and returns the callable the actor passes to its parts: without the variable it does nothing.
The steps are listed in node/aof/rewrite.py.
"""
from __future__ import annotations

import os
import time
from typing import Callable

__all__ = ["make_pause", "pause_point"]

Pause = Callable[[str], None]


def _no_pause(_step: str) -> None:
    pass


def make_pause(data_dir: str) -> Pause:
    wanted = os.environ.get("AOFNODE_TEST_PAUSE_AT")
    if not wanted:
        return _no_pause

    def pause(step: str) -> None:
        if step != wanted:
            return
        marker = os.path.join(data_dir, f"paused-at-{step}")
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        while os.path.exists(marker):
            time.sleep(0.01)  # a test hook: the test removes the marker (bounded by its timeout)

    return pause


def pause_point(step: str, data_dir: str) -> None:
    """Deprecated form of ``make_pause(data_dir)(step)``, kept while callers move over."""
    make_pause(data_dir)(step)
