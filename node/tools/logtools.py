"""``aofnode logs summarize``: the ``Summarizer``, which reads a node's log and says what happened.

Design:
- Lines come from ``read_lines`` (node/tools/logevents.py); only the summary is kept.
- Nothing in a line can make it raise: a line that is not JSON, JSON that is not an object, an
  object without an ``event`` string, an event we do not know, a known event with a missing or
  wrongly typed field (``EVENTS``): each is counted in ``totals`` and the line (or field) is skipped.
- Rewrites are matched per log actor pid: ``rewrite_started`` opens a row, ``rewrite_child_done``
  and ``rewrite_diff_flushed`` fill it, ``rewrite_switched`` (ok) or ``rewrite_failed`` (err)
  close it. An ``actor_died``/``actor_exited`` of that log actor, or the end of the input,
  closes it as ``incomplete``. AOF loads are matched the same way (``aof_truncated`` and
  ``aof_load_progress`` come before the ``aof_loaded`` or ``aof_corrupt`` of the same pid).
  ``rewrite_pause_summary`` comes after the end and goes to the row it ended last.
- Memory is bounded by the number of rewrites and loads; distinct unknown names are capped at
  ``MAX_NAMES`` and the plot's markers are thinned past ``MAX_POINTS`` (see ``_Points``).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from typing import BinaryIO

from aofnode.tools.logevents import COMMON, EVENTS, SUMMED, Event, field_ok, iso_utc, parse_ts, read_lines

__all__ = ["Summarizer", "summarize"]

MAX_NAMES = 200           # distinct unknown/warning names kept; the rest count as "(other)"
MAX_POINTS = 20_000       # markers per kind kept for the plot (more are invisible at 100 dpi)
MIB = 1 << 20             # "MB" of copy-on-write, as Redis prints it
_PROBLEM_LEVELS = ("warning", "error", "critical")


def _secs(start: float | None, end: float | None) -> float | None:
    return round(end - start, 3) if start is not None and end is not None else None


class _Points:
    """Timeline markers with bounded memory: past ``MAX_POINTS`` keep every other one."""

    def __init__(self) -> None:
        self.items: list = []
        self.stride, self._seen = 1, 0

    def add(self, item) -> None:
        self._seen += 1
        if self._seen % self.stride:
            return
        self.items.append(item)
        if len(self.items) >= MAX_POINTS:
            self.items, self.stride = self.items[::2], self.stride * 2


class Summarizer:
    """Feed it raw lines (``feed``), then ask for ``result()``; ``timeline`` keeps plot points."""

    def __init__(self, timeline: bool = False) -> None:
        self.counts = Counter()  # lines, json_lines, non_json_lines, blank_lines, ...
        self.levels, self.unknown, self.malformed, self.problems = Counter(), Counter(), Counter(), Counter()
        self.first_t = self.last_t = None
        self.rewrites: list[dict] = []
        self.loads: list[dict] = []
        self._open_rewrites: dict[int | None, dict] = {}
        self._open_loads: dict[int | None, dict] = {}
        self._last_closed: dict[int | None, dict] = {}  # per pid, for rewrite_pause_summary
        self.fsync = {k: 0 for k in SUMMED} | {"log_summaries": 0, "slow_fsync_warnings": 0,
                                                "delayed_fsync_warnings": 0, "slowest_fsync_s": None}
        self.died, self.returncodes, self.scheduled = Counter(), Counter(), Counter()
        self.spawned = Counter()  # (supervisor pid, role) -> spawns
        self.node_starts = 0
        self.timeline = timeline
        self.summaries: list[tuple] = []  # (t, fsyncs, commands), for the plot
        self.markers = {k: _Points() for k in ("warning", "error", "restart", "load")}

    # -- lines --------------------------------------------------------------------------------

    def feed(self, line: bytes | None) -> None:
        """One raw line (None: a line too long to read). Never raises on the line's content."""
        c = self.counts
        c["lines"] += 1
        if line is None:
            c["non_json_lines"] += 1
            c["too_long_lines"] += 1
            return
        text = line.strip()
        if not text:
            c["blank_lines"] += 1
            return
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):  # bad JSON, bad UTF-8, "[[[[..." nested too deep
            c["non_json_lines"] += 1
            return
        c["json_lines"] += 1
        if type(obj) is not dict:
            c["not_objects"] += 1
            return
        name = obj.get("event")
        if type(name) is not str:
            c["without_event"] += 1
            return
        c["events"] += 1
        self._event(name, obj)

    @staticmethod
    def _bump(counter: Counter, key, other="(other)") -> None:
        """Count ``key``, or ``other`` once ``MAX_NAMES`` distinct keys are held (junk names)."""
        if key in counter or len(counter) < MAX_NAMES:
            counter[key] += 1
        else:
            counter[other] += 1

    def _event(self, name: str, obj: dict) -> None:
        t = parse_ts(obj.get("ts"))
        if t is not None:
            self.first_t = t if self.first_t is None else min(self.first_t, t)
            self.last_t = t if self.last_t is None else max(self.last_t, t)
        level = obj.get("level")
        if type(level) is str:
            self._bump(self.levels, level)
            if level in _PROBLEM_LEVELS:
                self._bump(self.problems, (level, name), (level, "(other)"))
                if self.timeline and t is not None:
                    self.markers["warning" if level == "warning" else "error"].add((t, name))
        spec = EVENTS.get(name)
        if spec is None:
            self.counts["unknown_events"] += 1
            self._bump(self.unknown, name)
            return
        bad = t is None or any(not field_ok(obj.get(k), kind) for k, kind in COMMON.items() if k != "ts")
        fields = {}
        for key, kind in spec.items():
            value = obj.get(key)
            if field_ok(value, kind.rstrip("?")):
                fields[key] = value
            elif not (kind.endswith("?") and value is None):
                bad = True
        if bad:
            self.counts["malformed_events"] += 1
            self._bump(self.malformed, name)
        pid = obj.get("pid")
        handler = getattr(self, "_on_" + name, None)
        if handler is not None:
            handler(Event(name, t, pid if type(pid) is int else None, fields))

    # -- rewrites -----------------------------------------------------------------------------

    def _close_rewrite(self, row: dict, status: str, t: float | None, reason: str | None = None) -> None:
        row.update(status=status, reason=reason, _end_t=t)
        self._last_closed[row["pid"]] = row

    def _on_rewrite_started(self, ev: Event) -> None:
        if ev.pid in self._open_rewrites:  # a second start without an end: the first is lost
            self._close_rewrite(self._open_rewrites.pop(ev.pid), "incomplete", None)
        fork = ev.f.get("fork_usec")
        row = {"start": iso_utc(ev.t), "pid": ev.pid, "trigger": ev.f.get("trigger"),
               "fork_ms": round(fork / 1000, 3) if fork is not None else None,
               "child_s": None, "cow_mb": None, "diff_bytes": None, "slices": None,
               "longest_slice_ms": None, "total_s": None, "longest_pause_ms": None,
               "status": "running", "reason": None,
               "_start_t": ev.t, "_end_t": None}
        self.rewrites.append(row)
        self._open_rewrites[ev.pid] = row

    def _on_rewrite_child_done(self, ev: Event) -> None:
        row = self._open_rewrites.get(ev.pid)
        if row is None:
            self.counts["unmatched_rewrite_events"] += 1
            return
        cow = ev.f.get("cow_bytes")
        row.update(child_s=ev.f.get("seconds"), cow_mb=round(cow / MIB, 2) if cow is not None else None)

    def _on_rewrite_diff_flushed(self, ev: Event) -> None:
        row = self._open_rewrites.get(ev.pid)
        if row is None:
            self.counts["unmatched_rewrite_events"] += 1
            return
        row.update(diff_bytes=ev.f.get("bytes"), slices=ev.f.get("slices"),
                   longest_slice_ms=ev.f.get("longest_slice_ms"))

    def _on_rewrite_switched(self, ev: Event) -> None:
        row = self._open_rewrites.pop(ev.pid, None)
        if row is None:
            self.counts["unmatched_rewrite_events"] += 1
            return
        total = ev.f.get("seconds")
        row["total_s"] = total if total is not None else _secs(row["_start_t"], ev.t)
        self._close_rewrite(row, "ok", ev.t)

    def _on_rewrite_failed(self, ev: Event) -> None:
        row = self._open_rewrites.pop(ev.pid, None)
        if row is None:  # fork itself failed: there was no rewrite_started
            self._on_rewrite_started(Event(ev.name, ev.t, ev.pid, {"trigger": None}))
            row = self._open_rewrites.pop(ev.pid)
        row["total_s"] = _secs(row["_start_t"], ev.t)
        self._close_rewrite(row, "err", ev.t, ev.f.get("reason", "?"))

    def _on_rewrite_pause_summary(self, ev: Event) -> None:
        row = self._last_closed.pop(ev.pid, None)
        if row is not None:
            row["longest_pause_ms"] = ev.f.get("longest_pause_ms")

    # -- AOF loads ----------------------------------------------------------------------------

    def _load_row(self, ev: Event) -> dict:
        row = self._open_loads.get(ev.pid)
        if row is None:
            row = {"ts": iso_utc(ev.t), "pid": ev.pid, "status": "loading", "reason": None, "records": None,
                   "entries": None, "bytes": None, "seconds": None, "truncations": [], "_t": ev.t}
            self.loads.append(row)
            self._open_loads[ev.pid] = row
            if self.timeline and ev.t is not None:
                self.markers["load"].add((ev.t, "load"))
        return row

    def _on_aof_load_progress(self, ev: Event) -> None:
        self._load_row(ev).update({k: ev.f[k] for k in ("records", "bytes", "seconds") if k in ev.f})

    def _on_aof_truncated(self, ev: Event) -> None:
        self._load_row(ev)["truncations"].append(
            {"offset": ev.f.get("offset"), "bytes_cut": ev.f.get("bytes_cut"), "reason": ev.f.get("reason")})

    def _on_aof_loaded(self, ev: Event) -> None:
        row = self._load_row(ev)
        row.update({k: ev.f.get(k) for k in ("records", "entries", "bytes", "seconds")}, status="ok")
        del self._open_loads[ev.pid]

    def _on_aof_corrupt(self, ev: Event) -> None:
        row = self._load_row(ev)
        row.update(status="corrupt", reason=f"{ev.f.get('reason', '?')} at offset {ev.f.get('offset', '?')}")
        del self._open_loads[ev.pid]

    # -- fsync --------------------------------------------------------------------------------

    def _on_log_summary(self, ev: Event) -> None:
        self.fsync["log_summaries"] += 1
        for key in SUMMED:
            self.fsync[key] += ev.f.get(key, 0)
        if self.timeline and ev.t is not None and len(self.summaries) < MAX_POINTS * 8:
            self.summaries.append((ev.t, ev.f.get("fsyncs"), ev.f.get("commands")))

    def _on_aof_fsync_slow(self, ev: Event) -> None:
        self.fsync["slow_fsync_warnings"] += 1
        s, worst = ev.f.get("seconds"), self.fsync["slowest_fsync_s"]
        if s is not None and (worst is None or s > worst):
            self.fsync["slowest_fsync_s"] = s

    def _on_aof_fsync_delayed(self, ev: Event) -> None:
        self.fsync["delayed_fsync_warnings"] += 1

    # -- actors -------------------------------------------------------------------------------

    def _on_node_starting(self, ev: Event) -> None:
        self.node_starts += 1

    def _on_actor_spawned(self, ev: Event) -> None:
        self._bump(self.spawned, (ev.pid, ev.f.get("role", "?")), (None, "(other)"))

    def _on_actor_restart_scheduled(self, ev: Event) -> None:
        self._bump(self.scheduled, ev.f.get("role", "?"))

    def _on_actor_died(self, ev: Event) -> None:
        role = ev.f.get("role", "?")
        self._bump(self.died, role)
        self._bump(self.returncodes, (role, ev.f.get("returncode")), ("(other)", None))
        if self.timeline and ev.t is not None:
            self.markers["restart"].add((ev.t, role))
        self._on_actor_exited(ev)

    def _on_actor_exited(self, ev: Event) -> None:
        """A log actor gone: whatever it was rewriting or loading will never finish."""
        if ev.f.get("role") != "log":
            return
        child = ev.f.get("child_pid")  # missing or unreadable: every open row ends
        for table in (self._open_rewrites, self._open_loads):
            for pid in [p for p in table if child is None or p == child]:
                row = table.pop(pid)
                row["status"] = "incomplete"
                if "_end_t" in row:
                    row["_end_t"] = ev.t

    # -- result -------------------------------------------------------------------------------

    def finish(self) -> None:
        """End of input: what is still open is incomplete."""
        for table in (self._open_rewrites, self._open_loads):
            for row in table.values():
                row["status"] = "incomplete"
            table.clear()

    def result(self) -> dict:
        public = lambda row: {k: v for k, v in row.items() if not k.startswith("_")}  # noqa: E731
        roles = sorted({r for _, r in self.spawned} | set(self.died) | set(self.scheduled), key=str)
        restarts = Counter()
        for (_, role), n in self.spawned.items():
            restarts[role] += n - 1  # a supervisor's first spawn of a role is its start, not a restart
        c = self.counts
        totals = {k: c[k] for k in ("lines", "json_lines", "non_json_lines", "blank_lines", "too_long_lines",
                                    "not_objects", "without_event", "events", "unknown_events",
                                    "malformed_events", "unmatched_rewrite_events")}
        totals.update(unknown_event_names=dict(self.unknown.most_common()),
                      malformed_event_names=dict(self.malformed.most_common()),
                      levels=dict(self.levels.most_common()),
                      first_ts=iso_utc(self.first_t), last_ts=iso_utc(self.last_t),
                      span_s=_secs(self.first_t, self.last_t))
        # Sums of junk can overflow to inf, which JSON cannot carry.
        fsync = {k: (v if v is None or math.isfinite(v) else None) for k, v in self.fsync.items()}
        if fsync["fsync_seconds"] is not None:
            fsync["fsync_seconds"] = round(fsync["fsync_seconds"], 3)
        return {
            "rewrites": [public(r) for r in self.rewrites],
            "fsync": fsync,
            "aof_loads": [public(r) for r in self.loads],
            "warnings_errors": [{"level": lv, "event": ev, "count": n} for (lv, ev), n in self.problems.most_common()],
            "actors": {"node_starts": self.node_starts, "roles": [
                {"role": role, "died": self.died[role],
                 "returncodes": {str(rc): n for (r, rc), n in self.returncodes.items() if r == role},
                 "restarts": restarts[role], "restarts_scheduled": self.scheduled[role]} for role in roles]},
            "totals": totals,
        }


def summarize(stream: BinaryIO, timeline: bool = False) -> Summarizer:
    s = Summarizer(timeline=timeline)
    for line in read_lines(stream):
        s.feed(line)
    s.finish()
    return s
