"""What the log actor tells people: INFO, the periodic ``log_summary`` line, rewrite pauses.

Design:
- ``Reporter`` builds INFO from the parts of the log actor it is given (its counters, the
  keyspace, writer, rewriter, closer, pause meter and front links; the fronts' counters: the
  ZeroMQ front's by name, the RESP front's, already ``resp_``-prefixed, as they come in the
  ``clients`` section; connected_clients and total_connections_received add up every front) and
  writes one ``log_summary`` line per ``SUMMARY_INTERVAL_S``, only if a counter moved (never a
  line per request: structlog's advice, and the log stays readable under load).
- ``PauseMeter`` measures the longest log-actor turn while a rewrite runs, and the turn that
  ended it: the figure the rewrite design is judged by (INFO
  ``aof_last_rewrite_longest_pause_ms`` and the ``rewrite_pause_summary`` line that
  ``aofnode-bench-rewrite`` reads). It reads the clocks only while a rewrite runs, and the turn
  that forked is reported apart (``latest_fork_usec``).
"""
from __future__ import annotations

import os
import time

from aofnode.store.keyspace import NUM_DBS
from aofnode.sysmem import available_memory, process_rss, total_memory
from aofnode.version import VERSION

__all__ = ["Reporter", "PauseMeter", "SUMMARY_INTERVAL_S"]

SUMMARY_INTERVAL_S = 10.0


class Reporter:
    def __init__(self, config, log, stats: dict, *, keyspace, writer, rewriter, closer, meter,
                 fronts, started: float) -> None:
        self.config = config
        self.log = log
        self.stats = stats  # the log actor's counters, live
        self.keyspace = keyspace
        self.writer = writer
        self.rewriter = rewriter
        self.closer = closer
        self.meter = meter
        self.fronts = fronts  # node/log/links.py: each front's counters, the channels' bytes
        self.started = started  # time.time() when the node began to load: uptime counts it
        self._next_summary = time.monotonic() + SUMMARY_INTERVAL_S
        self._last_summary: dict = {}
        self._ops_window = (time.monotonic(), 0)
        self.instantaneous_ops = 0.0

    def total_keys(self) -> int:
        keyspace = self.keyspace
        return sum(keyspace.dbsize(db) for db in range(NUM_DBS))

    def tick(self, now: float) -> None:
        if now >= self._next_summary:
            self._log_summary(now)
        started, count = self._ops_window
        if now - started >= 1.0:
            total = self.stats["total_commands_processed"]
            self.instantaneous_ops = (total - count) / (now - started)
            self._ops_window = (now, total)

    def _log_summary(self, now: float) -> None:
        self._next_summary = now + SUMMARY_INTERVAL_S
        stats, w = self.stats, self.writer
        current = {"commands": stats["total_commands_processed"], "cycles": stats["total_cycles"],
                   "fsyncs": w.fsyncs, "fsync_seconds": round(w.fsync_seconds, 3),
                   "slow_fsyncs": w.slow_fsyncs, "delayed_fsyncs": w.delayed_fsyncs}
        delta = {k: round(v - self._last_summary.get(k, 0), 3) for k, v in current.items()}
        self._last_summary = current
        if not any(delta.values()):  # nothing moved, a fresh node's first interval included
            return
        self.log.info("log_summary", interval_s=SUMMARY_INTERVAL_S, aof_size=w.size,
                   aof_write_status=w.status, keys=self.total_keys(), **delta)

    def _memory(self) -> dict:
        """What only the log actor knows; the executor adds used_memory, maxmemory, the policy
        and evicted_keys (node/store/executor.py)."""
        rss = process_rss()
        return {
            "used_memory_human": _human(self.keyspace.used_memory),
            "used_memory_rss": rss,
            "used_memory_rss_human": _human(rss),
            "maxmemory_human": _human(self.config.maxmemory),  # the executor's, set from it
            "total_system_memory": total_memory(),
            "available_system_memory": available_memory(),
        }

    def _clients(self, front: dict, extra: dict) -> dict:
        """INFO clients: the ZeroMQ front's counters by name, the others' as they come."""
        config, fronts = self.config, self.fronts
        clients = {
            "connected_clients": front.get("connected_clients", 0) + extra.get("resp_connected_clients", 0),
            "waiting_messages": front.get("waiting", 0),
            "waiting_bytes": front.get("waiting_bytes", 0),
            "clients_paused": front.get("clients_paused", 0),
            "maxclients": front.get("max_clients", 0),
            "client_accept_failures": front.get("accept_failures", 0),
            "client_output_limit": config.client_output_limit,
            "client_output_limit_disconnections": front.get("client_output_limit_disconnections", 0),
            "clients_blocked_on_output": front.get("clients_blocked_on_output", 0),
            "output_waiting_bytes": front.get("output_waiting_bytes", 0),
            "channel_output_limit": config.channel_output_limit,
            "channel_pending_bytes": fronts.pending_bytes(),
            "channel_backpressure_pauses": fronts.backpressure_pauses,
            **{k: front.get(k, 0) for k in ("auth_enabled", "auth_allowed_keys", "auth_refused",
                                             "auth_handshake_failures")},  # node/fronts/curve.py
            # the password gate (node/fronts/zmq_password.py), with --requirepass-file
            **{k: front.get(k, 0) for k in ("auth_enabled_password", "auth_failures",
                                             "noauth_replies", "authenticated_clients")},
        }
        for key, value in extra.items():  # never over a field of the node's own
            # INFO errorstats, commandstats and latencystats have these (redis_info.py)
            if not key.startswith(("errorstat_", "cmdstat_", "lathist_")):
                clients.setdefault(key, value)
        return clients

    def info(self) -> dict[str, dict]:
        config, w, rewriter = self.config, self.writer, self.rewriter
        front, *others = self.fronts.counters()
        extra: dict = {}  # the other fronts' counters (the RESP front's, resp_-prefixed)
        for counters in others:
            extra.update(counters)
        resp_requirepass = extra.pop("resp_requirepass", 0)
        return {
            "server": {
                "aofnode_version": VERSION,
                "process_id": os.getpid(),
                "supervisor_pid": os.getppid(),
                "tcp_endpoint": config.bind,
                "uptime_in_seconds": int(time.time() - self.started),
                "data_dir": os.path.abspath(config.dir),
                "watchdog_timeout": config.watchdog_timeout_s,
                "cycle_max_commands": config.cycle_max_commands,
                "cycle_max_ms": config.cycle_max_ms,
                "resp_bind": config.resp_bind or "",
                # Whether RESP clients must AUTH (the resp actor says so), never the password.
                "resp_requirepass": int(bool(config.requirepass_file or resp_requirepass)),
            },
            "clients": self._clients(front, extra),
            "memory": self._memory(),
            "persistence": {
                "loading": 0,
                "aof_enabled": 1,
                "appendfsync": w.policy,
                **rewriter.info(),
                "aof_last_rewrite_longest_pause_ms": self.meter.last_longest_pause_ms,
                "aof_last_write_status": w.status,
                "aof_last_write_error": w.last_error or "",
                "aof_current_size": w.size,
                "aof_pending_bio_fsync": int(w.bg_fsync_in_progress),
                "aof_buffer_length": w.pending_bytes,
                "aof_delayed_fsync": w.delayed_fsyncs,
                "aof_fsyncs": w.fsyncs,
                "aof_fsync_seconds_total": round(w.fsync_seconds, 3),
                "aof_slow_fsyncs": w.slow_fsyncs,
                "closer_pending_jobs": self.closer.pending_jobs,
            },
            "stats": {
                **self.stats,
                "instantaneous_ops_per_sec": round(self.instantaneous_ops, 1),
                "total_connections_received": (front.get("total_connections_received", 0)
                                               + extra.get("resp_total_connections_received", 0)),
                # Refused by the front (frame count, size, while loading) and by the log actor
                # (it decodes every message once): one count for the client's view.
                "rejected_messages": front.get("rejected_messages", 0) + self.stats["rejected_messages"],
                "rejected_requests": front.get("rejected_requests", 0) + self.stats["rejected_requests"],
                "rejected_internal_peers": front.get("rejected_internal_peers", 0),
                "dropped_replies_client_gone": front.get("dropped_replies_client_gone", 0),
                "dropped_replies_cut_off": front.get("dropped_after_cut_off", 0),
                "dropped_messages_cut_off": front.get("dropped_messages_cut_off", 0),
                "latest_fork_usec": rewriter.latest_fork_usec,
                "total_forks": rewriter.total_forks,
            },
        }


def _human(n: int) -> str:
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.2f}{unit}" if unit != "B" else f"{n}B"
        n /= 1024
    return f"{n:.2f}G"


class PauseMeter:
    """Longest turn of the log actor while a rewrite runs (see the module docstring)."""

    def __init__(self, log) -> None:
        self.log = log
        self.active = False  # a rewrite runs, or the turn that ended one is being measured
        self.last_longest_pause_ms = 0.0
        self._longest = self._longest_cpu = 0.0
        self._longest_what = ""
        self._t0 = self._cpu0 = 0.0
        self._forks0 = 0
        self._what: list[str] = []

    def begin(self, forks: int) -> None:
        if not self.active:  # a rewrite started: a new measurement
            self.active = True
            self._longest = self._longest_cpu = 0.0
            self._longest_what = ""
        self._t0, self._cpu0, self._forks0 = time.perf_counter(), time.thread_time(), forks
        self._what = []

    def note(self, what: str) -> None:
        if self.active:
            self._what.append(what)

    def end(self, in_progress: bool, forks: int, status: str) -> None:
        seconds = time.perf_counter() - self._t0
        if forks == self._forks0 and seconds > self._longest:  # the forking turn is apart
            self._longest = seconds
            self._longest_cpu = time.thread_time() - self._cpu0
            self._longest_what = " +".join(self._what)
        if in_progress:
            return
        self.active = False
        self.last_longest_pause_ms = round(self._longest * 1000, 3)
        # Wall time includes time the process was runnable but not running (2 cores shared
        # with the clients); CPU time is what the turn itself cost.
        self.log.info("rewrite_pause_summary", longest_pause_ms=self.last_longest_pause_ms,
                      longest_pause_cpu_ms=round(self._longest_cpu * 1000, 3),
                      longest_pause_turn=self._longest_what, status=status)
