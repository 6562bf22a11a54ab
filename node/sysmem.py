"""What memory this machine (or this cgroup) has, and what a process uses: from /proc and /sys.

Used for the default ``--maxmemory``, for INFO's ``used_memory_rss``, and by the rewrite to refuse
a fork whose copy-on-write would not fit (node/aof/rewrite.py). Every reader returns 0 when it
cannot tell (another OS, a hidden /proc), and callers treat 0 as "unknown", never as "none".
"""
from __future__ import annotations

import os

__all__ = ["total_memory", "available_memory", "process_rss", "default_maxmemory", "MAXMEMORY_SHARE"]

# The default maxmemory is this share of the machine's (or the cgroup's) memory. Why 40%: the
# keyspace estimate (``used_memory``) leaves out allocator slack (RSS grows 1.04-1.19x as much),
# the front's and the channel's bounded buffers come on top (--client-output-limit per client,
# --channel-output-limit), and a rewrite child's copy-on-write can, under a write-heavy load,
# approach the parent's size (measured up to ~84% of RSS with a slow child): 40% leaves that room.
MAXMEMORY_SHARE = 0.40


def _meminfo(field: str) -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cgroup_limit() -> tuple[int, int]:
    """(limit, usage) of this process's cgroup v2, or (0, 0) when unlimited or unknown."""
    path = None
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):  # the cgroup v2 line
                    path = line[3:].strip()
    except OSError:
        pass
    if path is None:
        return 0, 0
    base = os.path.join("/sys/fs/cgroup", path.lstrip("/"))
    try:
        with open(os.path.join(base, "memory.max")) as f:
            raw = f.read().strip()
        with open(os.path.join(base, "memory.current")) as f:
            usage = int(f.read().strip())
    except (OSError, ValueError):
        return 0, 0
    return (0, 0) if raw == "max" else (int(raw), usage)


def total_memory() -> int:
    physical = _meminfo("MemTotal")
    limit, _ = _cgroup_limit()
    return min(physical, limit) if limit and physical else (limit or physical)


def available_memory() -> int:
    available = _meminfo("MemAvailable")
    limit, usage = _cgroup_limit()
    if limit:
        room = max(0, limit - usage)
        return min(available, room) if available else room
    return available


def process_rss(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def default_maxmemory() -> int:
    """``MAXMEMORY_SHARE`` of the memory there is; 0 (no limit) if it cannot be told."""
    return int(total_memory() * MAXMEMORY_SHARE)
