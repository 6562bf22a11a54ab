"""Log actor: owns the keyspace and the append-only file.

Design:
- Owns the ``Executor`` (the keyspace), the ``AofWriter`` (the live AOF fd), the ``Rewriter``
  and the handle on the closer actor. Takes ``Batch`` and ``Stats`` from the front over a Unix
  socket (node/actors/messages.py, node/actors/channel.py), reconnecting from the tick when the
  front restarts; the first message it sends on a connection is ``Hello``.
- Each cycle it takes every ``Batch`` waiting (group commit across batches), then:
    1. executes the commands in order;
    2. appends the cycle's writes to the AOF with one write(2);
    3. applies the fsync policy (under ``always``: one fdatasync for all clients of the cycle);
    4. then replies.
  Under ``always`` no write is acknowledged before an fdatasync covered it.
- If the AOF is not writable (``AofWriter.status == "err"``) write commands get MISCONF and are
  not executed; reads keep working; the writes of a cycle whose append failed are answered with
  MISCONF (not acknowledged).
- Every 100 ms (the runtime's tick): the active expiry cycle, the writer's retries and everysec
  fsync, the closer's replies, the rewrite child's exit and the automatic rewrite trigger.
- The background rewrite (node/aof/rewrite.py) forks only between cycles, after the cycle's
  records were appended: the child's image then holds exactly what the live AOF holds, and
  every later record goes to the diff queue as well (``_append``). While it catches up on the
  diff the actor is ``busy``: the runtime polls without waiting and it does one slice per turn.
- It never blocks on close(2)/unlink(2) of a file: those go to the closer actor.
- Start-up failures a restart cannot fix exit with a fatal code (node/exitcodes.py): a corrupt
  AOF (3), a data directory or AOF that cannot be created or written (6).
"""
from __future__ import annotations

import glob
import os
import signal
import sys

import msgpack

from node import exitcodes
from node.actors import channel
from node.actors import messages as m
from node.actors.closer_client import CloserClient, InlineCloser
from node.actors.log_report import PauseMeter, Reporter
from node.actors.runtime import Actor, Runtime
from node.aof import format as aof_format
from node.aof.rewrite import TEMP_PREFIX, Rewriter
from node.aof.writer import AofWriter
from node.config import Config
from node.store.executor import Executor
from node.testhooks import make_pause
from protocol import codec
from protocol.commands import COMMANDS

__all__ = ["LogActor", "main"]

_WRITES = frozenset(name for name, spec in COMMANDS.items() if spec.write)
# Budget of the active expiry cycle per 100 ms tick: Redis's default is 25% of a 100 ms cron.
# We take 5 ms so the cycle can never add more than that to any client's latency.
EXPIRE_BUDGET_MS = 5.0
CRON_INTERVAL_S = 0.1


class LogActor(Actor):
    tick_interval = CRON_INTERVAL_S

    def __init__(self, config: Config, log, closer=None) -> None:
        self.config = config
        self.log = log
        self.stats = {"total_commands_processed": 0, "total_batches": 0, "total_cycles": 0,
                      "total_error_replies": 0, "misconf_refusals": 0}
        self.front_stats: dict = {}
        self.closer = closer or (InlineCloser(log) if config.aof_close_inline
                                 else CloserClient(config.closer_path, log))
        self._remove_stale_temp_files()
        self.reporter = Reporter(self)
        self.executor = Executor(info_provider=self.reporter.info)
        self._load()
        self.writer = AofWriter(config.aof_path, config.appendfsync, log)
        self.rewriter = Rewriter(self.executor.keyspace, self.writer, self.closer, config.aof_path,
                                 config.dir, log, diff_limit=config.aof_rewrite_diff_limit,
                                 auto_percentage=config.auto_aof_rewrite_percentage,
                                 auto_min_size=config.auto_aof_rewrite_min_size,
                                 child_nice=config.aof_rewrite_child_nice,
                                 pause=make_pause(config.dir))
        self.meter = PauseMeter(log)
        self._rewrite_replies: list[list] = []
        self.front: channel.Channel | None = None  # (re)connected from the tick
        self.runtime: Runtime | None = None

    # -- start-up -------------------------------------------------------------------------------

    def _remove_stale_temp_files(self) -> None:
        """A rewrite child killed with its parent leaves a temp file; nobody will finish it."""
        for path in glob.glob(os.path.join(self.config.dir, TEMP_PREFIX + "*.aof")):
            self.log.info("stale_temp_file_removed", path=path)
            self.closer.submit_unlink(path)

    def _load(self) -> None:
        execute = self.executor.execute
        self.executor.loading = True

        def apply(entries: list) -> None:
            for entry in entries:
                execute(entry[0], entry[1], entry[2:])

        aof_format.load(self.config.aof_path, apply, self.log)
        self.executor.loading = False
        self.executor.take_propagated()

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.log.info("actor_started", aof=self.config.aof_path, appendfsync=self.config.appendfsync,
                      keys=self.reporter.total_keys())
        self._connect_front()

    @property
    def busy(self) -> bool:
        return self.rewriter.catching_up

    def on_turn_start(self) -> None:
        if self.rewriter.in_progress or self.meter.active:
            self.meter.begin(self.rewriter.total_forks)

    def on_turn(self) -> None:
        rewriter = self.rewriter
        if rewriter.catching_up:
            rewriter.tick()  # one catch-up slice per turn (rewrite step 4.1)
            self.meter.note("catch-up")
        if self.meter.active:
            self.meter.end(rewriter.in_progress, rewriter.total_forks, rewriter.last_status)

    def on_tick(self, now: float) -> None:
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
        self.reporter.tick(now)
        self.meter.note("cron")

    def on_stop(self) -> int:
        self.rewriter.abort("shutdown")
        ok = self.writer.fsync_now()
        self.log.info("actor_stopping", aof_size=self.writer.size, fsync_ok=ok)
        self.closer.submit_close(self.writer.close_fd_later(), self.config.aof_path)
        self.closer.drain(timeout=5.0)
        if self.front is not None:
            self.front.flush()
            self.front.close()
        self.log.info("actor_stopped")
        return exitcodes.OK if ok else exitcodes.ERROR

    # -- the front ------------------------------------------------------------------------------

    def _connect_front(self) -> None:
        if self.front is not None and self.runtime.watching(self.front.fileno()):
            self.runtime.unwatch(self.front.fileno())
        self.front = channel.connect(self.config.backend_path)
        if self.front is not None:
            self.runtime.watch(self.front.fileno(), self._read_front, self._flush_front)
            self._send(m.Hello(os.getpid()))

    def _send(self, msg) -> None:
        front = self.front
        if front is None or not front.send(msg):
            return  # a dead front: the replies are lost with its clients
        if front.wants_write:
            self.runtime.want_write(front.fileno(), True)

    def _flush_front(self) -> None:
        front = self.front
        front.flush()
        if not front.wants_write and not front.closed:
            self.runtime.want_write(front.fileno(), False)

    def _read_front(self) -> None:
        front = self.front
        batches = []
        for msg in front.receive():
            kind = type(msg)
            if kind is m.Batch:
                batches.append(msg)
            elif kind is m.Stats:
                self.front_stats = msg.counters
        if batches:
            self._cycle(batches)
            self.meter.note(f"cycle of {len(batches)} batches")
        if front.closed:
            self.runtime.unwatch(front.fileno())

    # -- the hot path ---------------------------------------------------------------------------

    def _cycle(self, batches: list[m.Batch]) -> None:
        """Steps 1-4 of the module docstring, for every batch taken this cycle."""
        write_wires = []  # the replies of writes of this cycle, to retract if step 2/3 fails
        results = [(batch.batch_id, self._execute(batch, write_wires)) for batch in batches]
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
            self._send(m.Replies(batch_id, [packb(wires if is_batch else wires[0])
                                            for is_batch, wires in messages]))
        self.stats["total_batches"] += len(batches)
        self.stats["total_cycles"] += 1

    def _execute(self, batch: m.Batch, write_wires: list) -> list[tuple[bool, list]]:
        """Step 1 for one batch: the wire reply of every request, per client message."""
        execute = self.executor.execute
        unpackb = msgpack.unpackb
        refuse = self.writer.status != "ok"
        messages = []
        ncommands = errors = 0
        for body in batch.bodies:
            is_batch, items = unpackb(body, raw=False)
            wires = []
            for item in items:
                db = item[0]
                if db is None:
                    wires.append(item[1])  # a reply the front made
                    continue
                name = item[1]
                ncommands += 1
                is_write = name in _WRITES
                if is_write and refuse:
                    wire = [1, codec.MISCONF, self._misconf_message()]
                    self.stats["misconf_refusals"] += 1
                else:
                    reply = self._bgrewriteaof_later() if name == "BGREWRITEAOF" else execute(db, name, item[2:])
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
        self.stats["total_commands_processed"] += ncommands
        self.stats["total_error_replies"] += errors
        return messages

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
            return codec.Error(codec.BUSY, codec.BUSY_REWRITE_MESSAGE)
        wire = [0, None]
        self._rewrite_replies.append(wire)
        return _Deferred(wire)

    def _start_rewrite(self) -> None:
        reply = self.rewriter.request()
        wire = [1, reply[0], reply[1]] if isinstance(reply, tuple) else [0, reply]
        for target in self._rewrite_replies:
            target[:] = wire
        self._rewrite_replies = []


class _Deferred:
    """A reply filled in after the cycle (BGREWRITEAOF forks between cycles)."""

    __slots__ = ("wire",)

    def __init__(self, wire: list) -> None:
        self.wire = wire


def main(config: Config, log) -> int:
    # A write past RLIMIT_FSIZE must fail with EFBIG (and turn the AOF status to err), not kill
    # the process with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        actor = LogActor(config, log)
    except aof_format.CorruptAOF as exc:
        log.error("aof_corrupt", path=exc.path, offset=exc.offset, reason=exc.reason, hint=str(exc))
        return exitcodes.CORRUPT_AOF  # fatal: see node/actors/supervisor.py
    except OSError as exc:
        # The AOF cannot be created, opened or written at start (EACCES, ENOSPC, EROFS...):
        # restarting cannot fix it, so say it once and stop the node.
        log.error("aof_unusable", path=config.aof_path, errno=exc.errno, error=str(exc))
        print(f"aofnode: cannot use the AOF {config.aof_path}: {exc.strerror or exc}", file=sys.stderr)
        return exitcodes.STORAGE
    return Runtime(actor).run()
