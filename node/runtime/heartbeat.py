"""A heartbeat file: an actor says "my loop still turns", its supervisor reads it.

Design (without it, a log actor stopped for 10 s leaves no trace in any log):
- ``<dir>/run/heartbeat-<role>``, 0600 in the private run directory, holds one float: the
  CLOCK_MONOTONIC time (system-wide, so comparable between processes) of the actor's last tick.
  The actor writes it from its tick (every 100 ms for the log actor), never per request: one
  8-byte store into a shared mapping, no system call.
- A tick runs between turns, so a turn that runs for seconds (a pathological command, a stuck
  disk) or a stopped process (SIGSTOP) stops the heartbeat. The supervisor's watchdog reads the
  value and reports, or kills, an actor whose heartbeat is older than ``--watchdog-timeout``.
- A value of 0 means "not started yet": loading an AOF is not judged (a large one takes
  minutes), only the serving loop is.
"""
from __future__ import annotations

import mmap
import os
import struct

__all__ = ["Heartbeat", "read_heartbeat", "heartbeat_path"]

_VALUE = struct.Struct("d")


def heartbeat_path(run_dir: str, role: str) -> str:
    return os.path.join(run_dir, f"heartbeat-{role}")


class Heartbeat:
    """The actor's side: ``beat(now)`` from its tick."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, _VALUE.size)
            self._map = mmap.mmap(fd, _VALUE.size)
        finally:
            os.close(fd)

    def beat(self, now: float) -> None:
        _VALUE.pack_into(self._map, 0, now)

    def close(self) -> None:
        _VALUE.pack_into(self._map, 0, 0.0)  # stopped on purpose: nothing to judge
        self._map.close()


def read_heartbeat(path: str) -> float:
    """The last beat (monotonic seconds), or 0.0 if none yet (or no file)."""
    try:
        with open(path, "rb") as f:
            data = f.read(_VALUE.size)
    except OSError:
        return 0.0
    return _VALUE.unpack(data)[0] if len(data) == _VALUE.size else 0.0
