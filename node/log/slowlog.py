"""SLOWLOG and LATENCY: the log actor's record of slow commands and latency spikes.

Design:
- ``SlowLog`` keeps the last ``max_len`` commands that took ``slower_than_us`` or more (Redis's
  ``slowlog-log-slower-than``, 10000 us, and ``slowlog-max-len``, 128; a negative threshold
  turns it off, 0 logs every command). The time is the command's execution in the log actor,
  as Redis's is its execution in the main thread: the wait in the queue, the AOF write and the
  fsync are not in it. Arguments are kept as Redis keeps them (at most 32, each cut to 128
  bytes with a note), so one huge SET cannot fill memory through the log. aofnode's log actor
  does not know a client's address or name: both fields are empty.
- ``LatencyMonitor`` is Redis's latency monitor for the one event the log actor can time
  apart, ``command`` (a command that took ``latency-monitor-threshold`` ms or more; 0, the
  default, turns it off). Per event: a sample per second (the worst of that second), the last
  160, and the worst ever, as LATENCY LATEST and HISTORY give them.
"""
from __future__ import annotations

import collections
import time

from aofnode.protocol.errors import ERR, Error
from aofnode.store.objects import sub_error

__all__ = ["SlowLog", "LatencyMonitor", "slowlog_command", "latency_command"]

SLOWLOG_ENTRY_MAX_ARGC = 32
SLOWLOG_ENTRY_MAX_STRING = 128
LATENCY_TS_LEN = 160

_SLOWLOG_HELP = [
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
]
_LATENCY_HELP = [
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HELP",
    "    Prints this help.",
]


def _entry_args(name: str, args) -> list[bytes]:
    argv = [name.lower().encode(), *args]
    shown = argv[:SLOWLOG_ENTRY_MAX_ARGC]
    if len(argv) > SLOWLOG_ENTRY_MAX_ARGC:
        more = len(argv) - SLOWLOG_ENTRY_MAX_ARGC + 1
        shown[-1] = b"... (%d more arguments)" % more
    out = []
    for arg in shown:
        if len(arg) > SLOWLOG_ENTRY_MAX_STRING:
            arg = arg[:SLOWLOG_ENTRY_MAX_STRING] + b"... (%d more bytes)" % (
                len(arg) - SLOWLOG_ENTRY_MAX_STRING)
        out.append(arg)
    return out


class SlowLog:
    def __init__(self, slower_than_us: int = 10000, max_len: int = 128) -> None:
        self.slower_than_us = slower_than_us
        self.max_len = max_len
        self.entries: collections.deque = collections.deque()  # newest first
        self.next_id = 0

    def note(self, name: str, args, usec: int) -> None:
        """Called for every command: logs it if it was slow enough."""
        if self.slower_than_us < 0 or usec < self.slower_than_us:
            return
        self.entries.appendleft([self.next_id, int(time.time()), usec, _entry_args(name, args),
                                 b"", b""])
        self.next_id += 1
        self.trim()

    def trim(self) -> None:
        while len(self.entries) > self.max_len:
            self.entries.pop()


class LatencyMonitor:
    def __init__(self, threshold_ms: int = 0) -> None:
        self.threshold_ms = threshold_ms
        self.events: dict[str, dict] = {}

    def note(self, event: str, ms: int) -> None:
        if not self.threshold_ms or ms < self.threshold_ms:
            return
        now = int(time.time())
        e = self.events.get(event)
        if e is None:
            e = self.events[event] = {"samples": collections.deque(maxlen=LATENCY_TS_LEN), "max": 0}
        samples = e["samples"]
        if samples and samples[-1][0] == now:
            samples[-1][1] = max(samples[-1][1], ms)
        else:
            samples.append([now, ms])
        e["max"] = max(e["max"], ms)


def _count(raw: bytes) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None


def slowlog_command(log: SlowLog, args) -> object:
    sub = args[0].upper()
    n = len(args)
    if sub == b"GET" and n <= 2:
        count = 10 if n == 1 else _count(args[1])
        if count is None:
            return Error(ERR, "value is not an integer or out of range")
        if count < -1:
            return Error(ERR, "count should be greater than or equal to -1")
        entries = list(log.entries) if count == -1 else list(log.entries)[:count]
        return [list(e) for e in entries]
    if sub == b"LEN" and n == 1:
        return len(log.entries)
    if sub == b"RESET" and n == 1:
        log.entries.clear()
        return "OK"
    if sub == b"HELP" and n == 1:
        return list(_SLOWLOG_HELP)
    return sub_error("SLOWLOG", args[0], (b"GET", b"LEN", b"RESET", b"HELP"))


def latency_command(mon: LatencyMonitor, args) -> object:
    sub = args[0].upper()
    n = len(args)
    if sub == b"LATEST" and n == 1:
        return [[name.encode(), e["samples"][-1][0], e["samples"][-1][1], e["max"]]
                for name, e in mon.events.items() if e["samples"]]
    if sub == b"HISTORY" and n == 2:
        e = mon.events.get(args[1].decode("utf-8", "replace"))
        return [list(s) for s in e["samples"]] if e else []
    if sub == b"RESET":
        names = [a.decode("utf-8", "replace") for a in args[1:]] or list(mon.events)
        return sum(1 for name in names if mon.events.pop(name, None) is not None)
    if sub == b"DOCTOR" and n == 1:
        return _doctor(mon)
    if sub == b"HELP" and n == 1:
        return list(_LATENCY_HELP)
    return sub_error("LATENCY", args[0], (b"LATEST", b"HISTORY", b"RESET", b"DOCTOR", b"HELP"))


def _doctor(mon: LatencyMonitor) -> bytes:
    if not mon.threshold_ms:
        return (b"I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this "
                b"aofnode instance. You may use \"CONFIG SET latency-monitor-threshold "
                b"<milliseconds>.\" in order to enable it.\n")
    if not mon.events:
        return (b"Dave, no latency spike was observed during the lifetime of this aofnode instance, "
                b"not in the slightest bit.\n")
    lines = [f"{name}: {len(e['samples'])} latency spikes (worst {e['max']} ms)."
             for name, e in mon.events.items()]
    return ("\n".join(lines) + "\n").encode()

