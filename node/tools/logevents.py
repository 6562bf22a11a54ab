"""The node's log events as ``aofnode logs`` reads them: the vocabulary, the lines, the times.

- Input is FILE or stdin, read line by line in binary (a log can be many GiB: nothing but the
  summary is kept). A line longer than ``MAX_LINE_BYTES`` is yielded as None (``read_lines``).
- ``EVENTS`` is the vocabulary: every event the node writes, with its fields and their types
  (docs/logs.md is the same list, with prose). ``field_ok`` is the type check; a field of the
  wrong type counts the event as malformed and reads as missing.
- Timestamps are ISO 8601; ``parse_ts`` reads one to epoch seconds (None if unreadable) and
  ``iso_utc`` writes one back.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import BinaryIO, NamedTuple

__all__ = ["EVENTS", "COMMON", "SUMMED", "MAX_LINE_BYTES", "Event", "field_ok", "parse_ts", "iso_utc",
           "read_lines"]

MAX_LINE_BYTES = 1 << 20  # our longest real line is ~400 bytes; 1 MiB is junk, not a log line

# Field types: int, num (int or float), str, bool; a trailing "?" means the field may be
# missing or null. Fields beyond these are allowed (e.g. ``rewrite_failed`` carries errno).
COMMON = {"ts": "str", "level": "str", "actor": "str", "pid": "int"}
EVENTS: dict[str, dict[str, str]] = {
    # supervisor
    "node_starting": {"dir": "str", "bind": "str", "appendfsync": "str"},
    "data_dir_locked": {"dir": "str", "holder_pid": "str"},
    "data_dir_tightened": {"dir": "str", "old_mode": "str", "new_mode": "str"},
    "data_dir_unusable": {"dir": "str", "errno": "int?", "error": "str"},
    "actor_spawned": {"role": "str", "child_pid": "int"},
    "actor_died": {"role": "str", "child_pid": "int", "returncode": "int"},
    "actor_restart_scheduled": {"role": "str", "in_s": "num"},
    "rewrite_refused_memory": {"trigger": "str", "reason": "str", "refusals": "int"},
    "fd_limit": {"soft_before": "int", "soft": "int"},
    "actor_hung": {"role": "str", "child_pid": "int", "stalled_s": "num", "process_state": "str",
                   "killing": "bool"},
    "actor_crash_loop": {"role": "str", "deaths": "int", "window_s": "num"},
    "node_stopping": {"reason": "str", "exit_code": "int"},
    "shutdown_requested": {"signal": "str"},
    "actor_stop_timeout": {"role": "str", "child_pid": "int"},
    "actor_exited": {"role": "str", "child_pid": "int", "returncode": "int"},
    "node_stopped": {"exit_code": "int"},
    "bind_refused": {"bind": "str", "error": "str"},
    "insecure_bind": {"bind": "str"},
    "sighup_forwarded": {"role": "str", "child_pid": "int"},
    "sighup_ignored": {"reason": "str"},
    # every actor
    "actor_started": {},
    "actor_stopped": {},
    # front
    "log_actor_ready": {"log_pid": "int"},
    "bind_failed": {"bind": "str", "error": "str"},
    "client_accept_failed": {"errno": "int", "error": "str", "connected_clients": "int",
                             "max_clients": "int", "accept_failures": "int"},
    "client_output_limit_reached": {"identity": "str", "held_bytes": "int", "limit": "int",
                                    "dropped_replies": "int", "cut_off_s": "num",
                                    "also_cut_since_last_line": "int"},
    "internal_peer_rejected": {"channel": "str", "peer_pid": "int", "peer_uid": "int", "rejected": "int"},
    "log_actor_lost": {"reason": "str", "aborted_messages": "int"},
    "front_stopping": {"in_flight": "int", "waiting": "int"},
    # front: CURVE (node/fronts/curve.py)
    "auth_started": {"server_key": "str", "allow_dir": "str", "allowed_keys": "int"},
    "auth_keys_reloaded": {"allow_dir": "str", "allowed_keys": "int", "added": "int", "removed": "int"},
    "auth_reload_failed": {"allow_dir": "str", "error": "str", "kept_keys": "int"},
    "auth_bad_certificates": {"allow_dir": "str", "files": "str"},
    "auth_refused": {"address": "str", "mechanism": "str", "key": "str", "refused": "int",
                     "refused_total": "int"},
    "auth_handshake_failed": {"reason": "str", "failures": "int", "failures_total": "int"},
    "auth_handler_lost": {"bind": "str", "unbound": "bool"},
    # log: start-up and AOF loading
    "stale_temp_file_removed": {"path": "str"},
    "aof_load_progress": {"records": "int", "bytes": "int", "seconds": "num"},
    "aof_truncated": {"offset": "int", "bytes_cut": "int", "reason": "str?"},
    "aof_loaded": {"records": "int", "entries": "int", "bytes": "int", "seconds": "num"},
    "aof_corrupt": {"path": "str", "offset": "int", "reason": "str", "hint": "str"},
    "aof_unusable": {"path": "str", "errno": "int?", "error": "str"},
    # log: the fronts (the ZeroMQ front, and the RESP front with --resp-bind)
    "front_connected": {"front": "str", "conn": "int"},
    "front_lost": {"front": "str", "conn": "int", "dropped_messages": "int"},
    # log: the live AOF
    "aof_fsync_slow": {"seconds": "num", "slow_fsyncs": "int"},
    "aof_fsync_delayed": {"waited_s": "num", "delayed_fsyncs": "int"},
    "aof_write_error": {"op": "str", "errno": "int?", "error": "str", "path": "str", "size": "int"},
    "aof_write_recovered": {"path": "str", "size": "int"},
    "log_summary": {"interval_s": "num", "aof_size": "int", "aof_write_status": "str", "keys": "int",
                    "commands": "num", "cycles": "num", "fsyncs": "num", "fsync_seconds": "num?",
                    "slow_fsyncs": "num", "delayed_fsyncs": "num"},
    "actor_stopping": {"aof_size": "int", "fsync_ok": "bool"},
    # log: background rewrite (docs/aof.md, steps 1-5)
    "rewrite_started": {"trigger": "str", "fork_usec": "int", "child_pid": "int", "aof_size": "int"},
    "rewrite_child_done": {"keys": "int", "bytes": "int", "seconds": "num", "cow_bytes": "int",
                           "diff_bytes": "int"},
    "rewrite_diff_flushed": {"bytes": "int", "slices": "int", "longest_slice_ms": "num"},
    "rewrite_switched": {"old_size": "int", "new_size": "int", "seconds": "num", "switch_ms": "num",
                         "final_write_ms": "num?", "final_fsync_ms": "num?", "rename_ms": "num?"},
    "rewrite_inline_close": {"ms": "num"},  # --aof-close-inline (benchmarks) instead of the closer
    "rewrite_old_file_held": {"reason": "str", "held": "int"},
    "command_internal_error": {"command": "str", "error": "str"},
    "pubsub_output_limit_reached": {"client": "int", "held_bytes": "int"},
    "pub_socket_bound": {"bind": "str"},
    "rewrite_failed": {"reason": "str", "consecutive_failures": "int", "auto_retry_in_s": "num",
                       "errno": "int?", "child_exit": "int?"},
    "rewrite_pause_summary": {"longest_pause_ms": "num", "longest_pause_cpu_ms": "num",
                              "longest_pause_turn": "str", "status": "str"},
    # closer
    "closer_job_done": {"kind": "str?", "path": "str?", "seconds": "num", "steps": "int?", "bytes": "int?",
                        "longest_step_ms": "num?", "step_errno": "int?"},
    "closer_job_failed": {"kind": "str?", "path": "str?", "errno": "int?"},
    "closer_bad_job": {"reason": "str", "job_id": "int?"},
    "closer_job_refused": {"job_id": "int", "error": "str"},
    "script_busy": {"elapsed_ms": "int", "wrote": "bool", "threshold_ms": "num"},
    "script_killed": {"by": "str"},
    "script_busy_ended": {"elapsed_ms": "int", "killed": "bool"},
    # the supervisor's (role) and the log actor's (the rest): one event, two writers
    "shutdown_command": {"role": "str?", "busy_script": "bool?", "cycle_writes_kept": "bool?",
                         "fsync_ok": "bool?", "aof_size": "int?"},
    "closer_unreachable": {"errno": "int?"},
}
# The counters of ``log_summary`` that add up over a log.
SUMMED = ("fsyncs", "fsync_seconds", "slow_fsyncs", "delayed_fsyncs", "commands", "cycles")


def field_ok(value, kind: str) -> bool:
    if kind == "str":
        return type(value) is str
    if kind == "bool":
        return type(value) is bool
    if type(value) is int:
        return True
    # A float is a num; for an int field only a whole one (1.0) passes. NaN/inf never do.
    return type(value) is float and math.isfinite(value) and (kind == "num" or value.is_integer())


def parse_ts(value) -> float | None:
    if type(value) is not str or len(value) > 64:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def iso_utc(t: float | None) -> str | None:
    """``t`` (epoch seconds) as ISO 8601 UTC to the millisecond, ``...Z``; None stays None."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Event(NamedTuple):
    name: str
    t: float | None       # epoch seconds, None if ts is missing or unreadable
    pid: int | None
    f: dict               # the event's known fields; missing or wrongly typed ones are absent


def read_lines(stream: BinaryIO):
    """Yield raw lines; an over-long line is drained and yielded as None."""
    while True:
        line = stream.readline(MAX_LINE_BYTES)
        if not line:
            return
        if len(line) >= MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (more := stream.readline(MAX_LINE_BYTES)) and not more.endswith(b"\n"):
                pass
            yield None
            continue
        yield line
