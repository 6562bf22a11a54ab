"""Server CPU time from /proc, per process of a server's process group.

Benches start every server in a session of its own (``start_new_session=True``, bench/servers.py),
so the process group of the server's first pid holds exactly the server: for aofnode the
supervisor and its actors (and a rewrite child while one runs), for redis-server itself. The
CPU of each is utime + stime from /proc/<pid>/stat; each process is named by its role
(``front``, ``log``, ``closer``, ``supervisor``, ``rewrite-child``) or its command name.
"""
from __future__ import annotations

import os

__all__ = ["group_cpu", "cpu_delta", "machine_cpu"]

_TICK = os.sysconf("SC_CLK_TCK")


def _name(pid: str, comm: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return comm
    for entry in (b"aofnode.roles", b"node.actors"):  # this layout, and trees before it
        if entry in argv:
            i = argv.index(entry)
            return argv[i + 1].decode() if i + 1 < len(argv) else comm
    if b"node.actor" in argv:  # the layout before the actor runtime (f97a387): -m node.actor ROLE
        i = argv.index(b"node.actor")
        return argv[i + 1].decode() if i + 1 < len(argv) else comm
    if b"serve" in argv:  # `aofnode serve ...`, or `python -c ... serve ...` for an older tree
        return "supervisor"
    return comm


def group_cpu(pgid: int) -> dict[str, float]:
    """CPU seconds so far of every live process in process group ``pgid``, by name."""
    procs: dict[str, tuple[str, str, float]] = {}  # pid -> (ppid, name, cpu seconds)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()
        if int(fields[2]) != pgid:  # field 5, pgrp
            continue
        cpu = (int(fields[11]) + int(fields[12])) / _TICK
        procs[pid] = (fields[1], _name(pid, head.split("(", 1)[1]), cpu)
    out: dict[str, float] = {}
    for ppid, name, cpu in procs.values():
        if ppid in procs and procs[ppid][1] in (name, "log"):
            # A fork of the log actor: the same command line as its parent, or none at all once
            # it has exited and waits to be reaped (a zombie's cmdline is empty).
            name = "rewrite-child"
        out[name] = out.get(name, 0.0) + cpu
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per-name CPU spent between two ``group_cpu`` readings (a process that died in between is
    lost with its time; one that started counts from zero)."""
    return {name: round(after[name] - before.get(name, 0.0), 3) for name in after}


def machine_cpu() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, summed over its cores, from the
    first line of /proc/stat (busy: everything but idle and iowait). Two readings around a run
    give how many cores were busy, and so, minus the run's own processes, the other load."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    idle = fields[3] + fields[4]
    return (total - idle) / _TICK, total / _TICK
