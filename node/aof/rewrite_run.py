"""One background rewrite's state, from the fork (step 1) to the switch (4.5) or a failure (5).

Design: ``Rewriter`` (node/aof/rewrite.py) creates a ``RewriteRun`` at the fork and drops it at
the end, so no run can see another's temp path, child, times or diff. The run owns the diff
queue (the same record bytes written to the live AOF while the child works) and the catch-up
state: the temp fd, slice statistics, the bytes no fdatasync covered yet and the future of the
background catch-up fdatasync, whose error fails the rewrite.
"""
from __future__ import annotations

import collections
import os
import time
from concurrent.futures import Future

__all__ = ["RewriteRun", "TEMP_PREFIX", "temp_path_for", "fdatasync_and_close", "SLICE_BYTES",
           "CATCHUP_FSYNC_BYTES", "FINAL_BYTES"]

TEMP_PREFIX = "temp-rewriteaof-"
# One catch-up slice writes at most 1 MiB to the page cache: ~0.5-1 ms here.
SLICE_BYTES = 1 << 20
# Background fdatasync of the temp file after this much catch-up, so the final one is small.
CATCHUP_FSYNC_BYTES = 4 << 20
# Finish (4.2-4.5) once this little is left: one write and one small fdatasync.
FINAL_BYTES = 256 << 10

def temp_path_for(data_dir: str, pid: int) -> str:
    return os.path.join(data_dir, f"{TEMP_PREFIX}bg-{pid}.aof")


def fdatasync_and_close(fd: int) -> None:
    """The catch-up fdatasync, on a worker thread, on its own dup of the temp fd: the log actor
    may close its fd (a failed run) while this runs. The dup shares the open file, so an error
    reported here is not reported again on the log actor's fd: the future carries it."""
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


class RewriteRun:
    """One rewrite, from the fork (step 1) to the switch (4.5) or a failure (5)."""

    __slots__ = ("trigger", "child_pid", "result_fd", "temp_path", "started_at", "phase",
                 "diff", "diff_bytes", "diff_total", "temp_fd", "slices", "longest_slice_s",
                 "unsynced", "sync", "child_result")

    def __init__(self, trigger: str, child_pid: int, result_fd: int, temp_path: str) -> None:
        self.trigger = trigger
        self.child_pid: int | None = child_pid
        self.result_fd: int | None = result_fd
        self.temp_path = temp_path
        self.started_at = time.monotonic()
        self.phase = "child"  # "child" (steps 2-3) | "catchup" (step 4)
        self.diff: collections.deque[bytes] = collections.deque()
        self.diff_bytes = 0  # queued, not yet in the temp file
        self.diff_total = 0
        self.temp_fd: int | None = None
        self.slices = 0
        self.longest_slice_s = 0.0
        self.unsynced = 0  # catch-up bytes no fdatasync has covered yet
        self.sync: Future | None = None
        self.child_result: dict = {}

    def queue(self, data: bytes) -> None:
        self.diff.append(data)
        self.diff_bytes += len(data)
        self.diff_total += len(data)

    def take_slice(self) -> bytes:
        """4.1: up to ``SLICE_BYTES`` of the diff, leaving at least ``FINAL_BYTES`` for 4.2."""
        chunks, size = [], 0
        while self.diff and size < SLICE_BYTES and self.diff_bytes - size > FINAL_BYTES:
            chunk = self.diff.popleft()
            chunks.append(chunk)
            size += len(chunk)
        self.diff_bytes -= size
        return b"".join(chunks)

    def take_rest(self) -> bytes:
        rest = b"".join(self.diff)
        self.diff.clear()
        self.diff_bytes = 0
        return rest

    def note_slice(self, seconds: float) -> None:
        self.slices += 1
        self.longest_slice_s = max(self.longest_slice_s, seconds)

    def take_sync_error(self) -> OSError | None:
        """The error of a finished catch-up fdatasync, once; None if it succeeded or runs.
        ``sync`` stays set until its result was read here: no second sync can hide it."""
        if self.sync is None or not self.sync.done():
            return None
        future, self.sync = self.sync, None
        return future.exception()

    def close_files(self) -> None:
        for name in ("result_fd", "temp_fd"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)
