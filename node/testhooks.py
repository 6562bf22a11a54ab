"""Test-only pause points, used by the hazard tests (kill -9 at a named step).

With ``AOFNODE_TEST_PAUSE_AT=<step>`` in the environment, the process reaching ``<step>``
creates ``<data dir>/paused-at-<step>`` holding its pid, then waits until a test removes the
file (or kills the process). Without the variable a pause point costs one dict lookup. The
steps are listed in node/rewrite.py.
"""
from __future__ import annotations

import os
import time

__all__ = ["pause_point"]


def pause_point(step: str, data_dir: str) -> None:
    if os.environ.get("AOFNODE_TEST_PAUSE_AT") != step:
        return
    marker = os.path.join(data_dir, f"paused-at-{step}")
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    while os.path.exists(marker):
        time.sleep(0.01)
