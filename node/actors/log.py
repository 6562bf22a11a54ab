"""Log actor: owns the keyspace and the append-only file.

Design:
- Owns the ``Executor`` (the keyspace), the ``AofWriter`` (the live AOF fd) and the handle on the
  closer actor. Takes BATCH and STATS messages from the front over a Unix socket (see
  node/messages.py and node/channel.py), reconnecting from ``_cron`` when the front restarts.
- Each cycle it drains every BATCH waiting (group commit across batches), then:
    1. executes the commands in order;
    2. appends the cycle's writes to the AOF as one record with one write(2);
    3. applies the fsync policy (under ``always``: one fdatasync for all clients of the cycle);
    4. then replies.
  Under ``always`` no write is acknowledged before an fdatasync covered it.
- If the AOF is not writable (``AofWriter.status == "err"``) write commands get MISCONF and are
  not executed; reads keep working; the writes of a cycle whose append failed are answered with
  MISCONF (not acknowledged).
- Every ~100 ms (``_cron``): the active expiry cycle, the writer's retries and everysec fsync,
  the closer's replies, the rewrite child's exit and the automatic rewrite trigger.
- The background rewrite (node/rewrite.py) forks only between cycles, after the cycle's
  records were appended: the child's image then holds exactly what the live AOF holds, and
  every later record goes to the diff queue as well (``_append``). While it catches up on the
  diff, the loop polls without waiting and does one slice per turn.
- It never blocks on close(2)/unlink(2) of a file: those go to the closer actor.
"""
from __future__ import annotations

import glob
import os
import signal
import time

import msgpack
import zmq

from node.aof import format as aof_format

from node.actors import channel
from node.actors import messages as m
from node.aof.writer import AofWriter
from node.actors.closer import CloserClient
from node.store.executor import Executor
from node.config import Config
from node.logconfig import configure
from node.aof.rewrite import TEMP_PREFIX, Rewriter
from protocol import codec
from protocol.commands import COMMANDS

__all__ = ["run", "LogActor"]

_WRITES = frozenset(name for name, spec in COMMANDS.items() if spec.write)
# Budget of the active expiry cycle per 100 ms tick: Redis's default is 25% of a 100 ms cron.
# We take 5 ms so the cycle can never add more than that to any client's latency.
EXPIRE_BUDGET_MS = 5.0
CRON_INTERVAL_S = 0.1
# The log actor's counters go to the log once per this interval, only if they moved.
SUMMARY_INTERVAL_S = 10.0


class LogActor:
    def __init__(self, config: Config, log) -> None:
        self.config = config
        self.log = log
        self.started = time.time()
        self.front_stats: dict = {}
        self.stats = {"total_commands_processed": 0, "total_batches": 0, "total_cycles": 0,
                      "total_error_replies": 0, "misconf_refusals": 0}
        self._ops_window = (time.monotonic(), 0)
        self.instantaneous_ops = 0.0
        os.makedirs(config.dir, exist_ok=True)
        self.closer = CloserClient(config.closer_address, log)
        self._remove_stale_temp_files()
        self.executor = Executor(info_provider=self.info)
        self._load()
        self.writer = AofWriter(config.aof_path, config.appendfsync, log)
        self.rewriter = Rewriter(self.executor.keyspace, self.writer, self.closer, config.aof_path,
                                 config.dir, log, diff_limit=config.aof_rewrite_diff_limit,
                                 auto_percentage=config.auto_aof_rewrite_percentage,
                                 auto_min_size=config.auto_aof_rewrite_min_size,
                                 close_inline=config.aof_close_inline,
                                 child_nice=config.aof_rewrite_child_nice)
        self._rewrite_replies: list[list] = []
        self._next_summary = time.monotonic() + SUMMARY_INTERVAL_S
        self._last_summary: dict = {}
        self.front: channel.Channel | None = None  # (re)connected from _cron
        self.stopping = False

    # -- start-up -----------------------------------------------------------------------------

    def _remove_stale_temp_files(self) -> None:
        """A rewrite child killed with its parent leaves a temp file; nobody will finish it."""
        for path in glob.glob(os.path.join(self.config.dir, TEMP_PREFIX + "*.aof")):
            self.log.info("stale_temp_file_removed", path=path)
            self.closer.submit_unlink(path)

    def _load(self) -> aof_format.ScanResult:
        execute = self.executor.execute
        self.executor.loading = True

        def apply(entries: list) -> None:
            for entry in entries:
                execute(entry[0], entry[1], entry[2:])

        result = aof_format.load(self.config.aof_path, apply, self.log)
        self.executor.loading = False
        self.executor.take_propagated()
        return result

    # -- the hot path -------------------------------------------------------------------------

    def _cycle(self, batches: list[list[bytes]]) -> None:
        """Steps 1-4 of the module docstring, for every batch drained this cycle."""
        execute = self.executor.execute
        unpackb = msgpack.unpackb
        refuse = self.writer.status != "ok"
        results = []  # per batch: (batch id frame, [(is_batch, wires)])
        write_wires = []  # the replies of writes of this cycle, to retract if step 2/3 fails
        ncommands = 0
        errors = 0
        for frames in batches:
            messages = []
            for frame in frames[1:]:
                is_batch, items = unpackb(frame, raw=False)
                wires = []
                for item in items:
                    db = item[0]
                    if db is None:
                        wires.append(item[1])
                        continue
                    name = item[1]
                    ncommands += 1
                    is_write = name in _WRITES
                    if is_write and refuse:
                        wire = [1, codec.MISCONF, self._misconf_message()]
                        self.stats["misconf_refusals"] += 1
                    else:
                        if name == "BGREWRITEAOF":
                            reply = self._bgrewriteaof_later()
                        else:
                            reply = execute(db, name, item[2:])
                        if type(reply) is codec.Error:
                            wire = [1, reply.code, reply.message]
                            errors += 1
                        elif type(reply) is _Deferred:
                            wire = reply.wire
                        else:
                            wire = [0, reply]
                            if is_write:
                                write_wires.append(wire)
                    wires.append(wire)
                messages.append((is_batch, wires))
            results.append((frames[0], messages))
        entries = self.executor.take_propagated()  # step 1 done
        if entries or self.writer.pending:
            data = aof_format.encode_entries(entries) if entries else b""
            if not self._append(data):  # steps 2 and 3
                message = self._misconf_message()
                for wire in write_wires:
                    wire[:] = [1, codec.MISCONF, message]
        if self._rewrite_replies:
            self._start_rewrite()  # between cycles: see the module docstring
        packb = msgpack.packb
        for batch_id, messages in results:  # step 4
            out = [m.REPLIES, batch_id]
            for is_batch, wires in messages:
                out.append(packb(wires if is_batch else wires[0]))
            if self.front is not None:
                self.front.send(out)  # a dead front: the replies are lost with its clients
        self.stats["total_commands_processed"] += ncommands
        self.stats["total_error_replies"] += errors
        self.stats["total_batches"] += len(batches)
        self.stats["total_cycles"] += 1

    def _misconf_message(self) -> str:
        return (f"Errors writing to the AOF file ({self.writer.last_error}): write commands are "
                "refused until the AOF is writable again; this write was not acknowledged")

    def _append(self, data: bytes) -> bool:
        ok = self.writer.append(data)
        self.rewriter.feed(data)  # the diff queue: a no-op unless a rewrite runs
        return ok

    def _bgrewriteaof_later(self):
        """BGREWRITEAOF inside a cycle: refuse now if one runs, else fork after the cycle's
        append (``_start_rewrite``) and fill the reply in then."""
        if self.rewriter.in_progress or self._rewrite_replies:
            return codec.Error(codec.BUSY, "Background append only file rewriting already in progress")
        wire = [0, None]
        self._rewrite_replies.append(wire)
        return _Deferred(wire)

    def _start_rewrite(self) -> None:
        reply = self.rewriter.request()
        wire = [1, reply[0], reply[1]] if isinstance(reply, tuple) else [0, reply]
        for target in self._rewrite_replies:
            target[:] = wire
        self._rewrite_replies = []

    # -- periodic work ------------------------------------------------------------------------

    def _cron(self) -> None:
        self.executor.active_expire_cycle(EXPIRE_BUDGET_MS)
        entries = self.executor.take_propagated()
        if entries:
            self._append(aof_format.encode_entries(entries))
        if self.front is None or self.front.closed:
            self._connect_front()
        self.writer.check_bg_fsync()
        self.writer.tick()
        self.closer.tick()
        self.rewriter.tick()
        self.rewriter.maybe_auto_start()
        now = time.monotonic()
        if now >= self._next_summary:
            self._log_summary(now)
        started, count = self._ops_window
        if now - started >= 1.0:
            total = self.stats["total_commands_processed"]
            self.instantaneous_ops = (total - count) / (now - started)
            self._ops_window = (now, total)

    def _log_summary(self, now: float) -> None:
        """One line per SUMMARY_INTERVAL_S with the counters that moved (never one per request)."""
        self._next_summary = now + SUMMARY_INTERVAL_S
        w = self.writer
        current = {"commands": self.stats["total_commands_processed"], "cycles": self.stats["total_cycles"],
                   "fsyncs": w.fsyncs, "fsync_seconds": round(w.fsync_seconds, 3),
                   "slow_fsyncs": w.slow_fsyncs, "delayed_fsyncs": w.delayed_fsyncs}
        if current == self._last_summary:
            return
        delta = {k: round(v - self._last_summary.get(k, 0), 3) for k, v in current.items()}
        self._last_summary = current
        self.log.info("log_summary", interval_s=SUMMARY_INTERVAL_S, aof_size=w.size,
                      aof_write_status=w.status, keys=sum(self.executor.keyspace.dbsize(db) for db in range(16)),
                      **delta)

    def info(self) -> dict[str, dict]:
        w = self.writer
        return {
            "server": {
                "aofnode_version": "0.1.0",
                "process_id": os.getpid(),
                "supervisor_pid": os.getppid(),
                "tcp_endpoint": self.config.bind,
                "uptime_in_seconds": int(time.time() - self.started),
                "data_dir": os.path.abspath(self.config.dir),
            },
            "clients": {
                "connected_clients": self.front_stats.get("connected_clients", 0),
                "waiting_messages": self.front_stats.get("waiting", 0),
            },
            "persistence": {
                "loading": 0,
                "aof_enabled": 1,
                "appendfsync": w.policy,
                **self.rewriter.info(),
                "aof_last_write_status": w.status,
                "aof_last_write_error": w.last_error or "",
                "aof_current_size": w.size,
                "aof_pending_bio_fsync": int(w._bg is not None and w._bg.in_progress),
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
                "total_connections_received": self.front_stats.get("total_connections_received", 0),
                "rejected_messages": self.front_stats.get("rejected_messages", 0),
                "rejected_requests": self.front_stats.get("rejected_requests", 0),
                "latest_fork_usec": self.rewriter.latest_fork_usec,
                "total_forks": self.rewriter.total_forks,
            },
        }

    # -- the loop -----------------------------------------------------------------------------

    def _connect_front(self) -> None:
        self.front = channel.connect(self.config.backend_address)
        if self.front is not None:
            self.front.send([m.HELLO, str(os.getpid()).encode()])

    def run(self) -> int:
        self.log.info("actor_started", aof=self.config.aof_path, appendfsync=self.config.appendfsync,
                      keys=sum(self.executor.keyspace.dbsize(db) for db in range(16)))
        self._connect_front()
        next_cron = time.monotonic() + CRON_INTERVAL_S
        rewriter = self.rewriter
        perf, thread_time = time.perf_counter, time.thread_time
        while not self.stopping:
            timeout = 0.0 if rewriter.busy() else max(0.0, next_cron - time.monotonic())
            front = self.front if self.front is not None and not self.front.closed else None
            poller = zmq.Poller()  # plain fds; rebuilt each turn as the channel comes and goes
            if front is not None:
                poller.register(front.fileno(), zmq.POLLIN | (zmq.POLLOUT if front.wants_write else 0))
            ready = poller.poll(timeout * 1000) if front is not None else time.sleep(timeout)
            turn_started = perf()
            cpu_started = thread_time()
            forks = rewriter.total_forks
            what = ""
            if ready:
                if dict(ready).get(front.fileno(), 0) & zmq.POLLOUT:
                    front.flush()
                batches = []
                for frames in front.receive():
                    kind = frames[0]
                    if kind == m.BATCH:
                        batches.append(frames[1:])
                    elif kind == m.STATS:
                        self.front_stats = msgpack.unpackb(frames[1], raw=False)
                if batches:
                    self._cycle(batches)
                    what = f"cycle of {len(batches)} batches"
            if rewriter.busy():
                rewriter.tick()  # one catch-up slice per turn (rewrite step 4.1)
                what += " +catch-up"
            if time.monotonic() >= next_cron:
                self._cron()
                next_cron = time.monotonic() + CRON_INTERVAL_S
                what += " +cron"
            rewriter.observe_turn(perf() - turn_started, rewriter.total_forks != forks,
                                  thread_time() - cpu_started, what)
        return self._shutdown()

    def _shutdown(self) -> int:
        self.rewriter.abort("shutdown")
        ok = self.writer.fsync_now()
        self.log.info("actor_stopping", aof_size=self.writer.size, fsync_ok=ok)
        self.closer.submit_close(self.writer.close_fd_later(), self.config.aof_path)
        self.closer.drain(timeout=5.0)
        if self.front is not None:
            self.front.flush()
            self.front.close()
        self.log.info("actor_stopped")
        return 0 if ok else 1


class _Deferred:
    """A reply filled in after the cycle (BGREWRITEAOF forks between cycles)."""

    __slots__ = ("wire",)

    def __init__(self, wire: list) -> None:
        self.wire = wire


def run(config: Config) -> int:
    log = configure("log", config.log_format, config.log_file)
    # A write past RLIMIT_FSIZE must fail with EFBIG (and turn the AOF status to err), not kill
    # the process with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        actor = LogActor(config, log)
    except aof_format.CorruptAOF as exc:
        log.error("aof_corrupt", path=exc.path, offset=exc.offset, reason=exc.reason, hint=str(exc))
        return 3  # the supervisor does not restart an actor that exits 3: see supervisor.py

    def on_term(_sig, _frm):
        actor.stopping = True

    signal.signal(signal.SIGTERM, on_term)
    return actor.run()
