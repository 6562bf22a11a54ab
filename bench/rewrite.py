"""``--bgrewrite-at S``: trigger an AOF rewrite during the load and time its window.

Design
------
A thread of the parent process, on its own control connection (never one of the measured
clients):

1. waits until second ``S`` of the run (an Event wait: the run's end or Ctrl-C cuts it short);
2. sends BGREWRITEAOF; an error reply (BUSY if a rewrite already runs, ERR if the server could
   not fork) is recorded as the status and the thread ends; "scheduled" counts as started;
3. polls ``INFO persistence`` every 50 ms until neither ``aof_rewrite_in_progress`` nor
   ``aof_rewrite_scheduled`` is set, and records the end second.

The result is ``{"start_s", "end_s", "status"}`` in seconds since the start of the run (the same
clock as the timeline); ``end_s`` is None if the rewrite did not end while we watched.
"""
from __future__ import annotations

import threading
import time

from aofnode.bench.targets import Control, TargetSpec

__all__ = ["RewriteWatcher"]

POLL_INTERVAL_S = 0.05
# After the load ends we keep watching a running rewrite this long at most.
MAX_WATCH_AFTER_END_S = 60.0


class RewriteWatcher:
    def __init__(self, spec: TargetSpec, at_s: float, t0: float) -> None:
        self.spec = spec
        self.at_s = at_s
        self.t0 = t0
        self.result: dict | None = None
        self._cancel = threading.Event()
        self._load_over_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="bgrewrite", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self, timeout: float = MAX_WATCH_AFTER_END_S) -> dict | None:
        """Called when the load is over: stop waiting to start, bound the watch, join."""
        self._load_over_at = time.monotonic()
        self._cancel.set()
        self._thread.join(timeout + 5)
        return self.result

    def _now_s(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    def _run(self) -> None:
        if self._cancel.wait(max(0.0, self.t0 + self.at_s - time.monotonic())):  # step 1
            self.result = {"start_s": None, "end_s": None, "status": "not started: load over"}
            return
        try:
            control = Control(self.spec)
        except Exception as exc:
            self.result = {"start_s": None, "end_s": None, "status": f"error: {exc}"}
            return
        try:
            start = self._now_s()
            reply = control.execute("BGREWRITEAOF")  # step 2
            if isinstance(reply, tuple):
                self.result = {"start_s": start, "end_s": None,
                               "status": f"error: {reply[0]} {reply[1]}"}
                return
            self.result = {"start_s": start, "end_s": None, "status": "running"}
            while True:  # step 3
                if not control.rewrite_in_progress():
                    self.result = {"start_s": start, "end_s": self._now_s(), "status": "ok"}
                    return
                over = self._load_over_at
                if over is not None and time.monotonic() - over > MAX_WATCH_AFTER_END_S:
                    self.result["status"] = "still running when the watch ended"
                    return
                time.sleep(POLL_INTERVAL_S)
        except Exception as exc:
            self.result = {**(self.result or {"start_s": None, "end_s": None}),
                           "status": f"error: {type(exc).__name__}: {exc}"}
        finally:
            control.close()
