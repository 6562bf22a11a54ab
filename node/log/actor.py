"""Log actor: owns the keyspace and the append-only file.

Design:
- Owns the ``Executor`` (the keyspace), the ``AofWriter`` (the live AOF fd), the ``Rewriter``
  and the handle on the closer actor. Takes ``Batch``, ``Stats`` and ``Forget`` from each front
  (the ZeroMQ front, and the RESP front with ``--resp-bind``: ``Config.front_paths``) over a
  Unix socket per front (node/runtime/messages.py, node/runtime/channel.py), reconnecting from the
  tick when a front restarts; the first message it sends on a connection is ``Hello``.
- Fronts (issue 12): each connection is a ``_Link`` with its own channel, back-pressure flag and
  ``Replies.taken`` count, and a connection number (a generation: a reconnect gets a new one).
  Its clients' keys in the shared ``WorkQueue`` carry that number (node/log/work.py), so
  two fronts' client 1 never share a FIFO, and each reply goes only to the connection its
  message came from. When a connection ends (EOF, a failed send), its queued messages are
  dropped, unrun and unanswered (``dropped_messages_front_gone``): its successor numbers its
  messages from 1 again, so any reply made for them later could reach the wrong client.
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
import time

import msgpack

from aofnode import exitcodes
from aofnode.runtime import channel
from aofnode.runtime import messages as m
from aofnode.log.closer_client import CloserClient, InlineCloser
from aofnode.runtime.heartbeat import Heartbeat, heartbeat_path
from aofnode.log.report import PauseMeter, Reporter
from aofnode.runtime.actor import Actor, Runtime
from aofnode.hello import hello_reply
from aofnode.log.work import CLIENT_BITS, CLIENT_MASK, Pending, WorkQueue, owner_base
from aofnode.aof import format as aof_format
from aofnode.aof.rewrite import TEMP_PREFIX, Rewriter
from aofnode.aof.writer import AofWriter
from aofnode.config import Config
from aofnode.store.executor import Executor
from aofnode.testhooks import make_pause
from aofnode import protocol as codec
from aofnode.protocol.commands import COMMANDS

__all__ = ["LogActor", "main"]

_WRITES = frozenset(name for name, spec in COMMANDS.items() if spec.write)
# Budget of the active expiry cycle per 100 ms tick: Redis's default is 25% of a 100 ms cron.
# We take 5 ms so the cycle can never add more than that to any client's latency.
EXPIRE_BUDGET_MS = 5.0
CRON_INTERVAL_S = 0.1
# Requests one client runs per round of a cycle before the next client's turn: small enough
# that a 10,000-request message lets others in every few hundred microseconds, large enough
# that a 32-request batch runs in one round.
QUANTUM = 64
# A cycle stops once its finished replies hold this many bulk bytes (3,000 pipelined GETs of a
# 1 MiB value once made one 3 GiB reply message); the rest waits for the next cycle. Each byte
# is copied ~5 times on its way to the client (pack, send, receive, frame, unpack): 4 MiB is a
# few milliseconds of copying per cycle here.
MAX_CYCLE_REPLY_BYTES = 4 * 1024 * 1024
# A cycle also stops once the requests it ran carried this many bytes (estimated per message as
# its size over its requests: no per-request cost). Their writes go to the AOF and, under
# ``always``, are fsynced before anyone's reply: 10,000 SETs of 6 KiB in one cycle made every
# other client wait for a 60 MB write and fdatasync.
MAX_CYCLE_INPUT_BYTES = 2 * 1024 * 1024


class _Link:
    """One front's socket path and the log actor's current connection to it."""

    __slots__ = ("role", "path", "ch", "conn", "base", "reading", "taken", "counters", "on_read", "on_flush")

    def __init__(self, role: str, path: str) -> None:
        self.role = role  # "front" or "resp": for the log and INFO
        self.path = path
        self.ch: channel.Channel | None = None
        self.conn = -1  # the connection's number (its generation); -1: none yet
        self.base = 0  # the WorkQueue key of its client 0 (work.owner_base)
        self.reading = True  # False under back-pressure
        self.taken = 0  # batches added since the last Replies on this connection
        self.counters: dict = {}  # the front's latest Stats, for INFO
        self.on_read = self.on_flush = None

    @property
    def up(self) -> bool:
        return self.ch is not None and not self.ch.closed


class LogActor(Actor):
    tick_interval = CRON_INTERVAL_S

    def __init__(self, config: Config, log, closer=None) -> None:
        self.config = config
        self.log = log
        self.stats = {"total_commands_processed": 0, "total_batches": 0, "total_cycles": 0,
                      "total_error_replies": 0, "misconf_refusals": 0, "forgotten_messages": 0,
                      "rejected_messages": 0, "rejected_requests": 0, "dropped_messages_front_gone": 0}
        self.closer = closer or (InlineCloser(log) if config.aof_close_inline
                                 else CloserClient(config.closer_path, log))
        self._remove_stale_temp_files()
        self.reporter = Reporter(self)
        self.executor = Executor(info_provider=self.reporter.info)
        # Before the load, so the access clock of allkeys-lru is built key by key (turning it on
        # later walks every key); the replay itself never refuses nor evicts (loading).
        self.executor.maxmemory = config.maxmemory
        self.executor.maxmemory_policy = config.maxmemory_policy
        self._load()
        self.writer = AofWriter(config.aof_path, config.appendfsync, log)
        self.rewriter = Rewriter(self.executor.keyspace, self.writer, self.closer, config.aof_path,
                                 config.dir, log, diff_limit=config.aof_rewrite_diff_limit,
                                 auto_percentage=config.auto_aof_rewrite_percentage,
                                 auto_min_size=config.auto_aof_rewrite_min_size,
                                 child_nice=config.aof_rewrite_child_nice,
                                 child_sched=config.aof_rewrite_child_sched,
                                 pause=make_pause(config.dir))
        self.meter = PauseMeter(log)
        self._rewrite_replies: list[list] = []
        self.work = WorkQueue()
        roles = ("front", "resp")  # Config.front_paths order
        self.links = [_Link(roles[i], path) for i, path in enumerate(config.front_paths)]
        self.conns: dict[int, _Link] = {}  # live connection number -> its link
        self.backpressure_pauses = 0
        self.runtime: Runtime | None = None
        self.heartbeat: Heartbeat | None = None

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
        self.heartbeat = Heartbeat(heartbeat_path(self.config.run_dir, "log"))
        self.heartbeat.beat(time.monotonic())
        self.log.info("actor_started", aof=self.config.aof_path, appendfsync=self.config.appendfsync,
                      keys=self.reporter.total_keys())
        for link in self.links:
            self._connect(link)

    def link_counters(self) -> list[dict]:
        """Each front's latest Stats ({} for a front not connected)."""
        return [link.counters for link in self.links]

    @property
    def busy(self) -> bool:
        return bool(self.work) or self.rewriter.catching_up

    def on_turn_start(self) -> None:
        if self.rewriter.in_progress or self.meter.active:
            self.meter.begin(self.rewriter.total_forks)

    def on_turn(self) -> None:
        if self.work:  # a front under back-pressure has its clients parked: no more replies
            self._cycle()
        rewriter = self.rewriter
        if rewriter.catching_up:
            rewriter.tick()  # one catch-up slice per turn (rewrite step 4.1)
            self.meter.note("catch-up")
        if self.meter.active:
            self.meter.end(rewriter.in_progress, rewriter.total_forks, rewriter.last_status)

    def on_tick(self, now: float) -> None:
        self.heartbeat.beat(now)  # the supervisor's watchdog reads it (node/runtime/heartbeat.py)
        self.executor.active_expire_cycle(EXPIRE_BUDGET_MS)
        entries = self.executor.take_propagated()
        if entries:
            self._append(aof_format.encode_entries(entries))
        for link in self.links:
            if not link.up:
                self._connect(link)
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
        for link in self.links:
            if link.ch is not None:
                link.ch.flush()
                link.ch.close()
        if self.heartbeat is not None:
            self.heartbeat.close()
        self.log.info("actor_stopped")
        return exitcodes.OK if ok else exitcodes.ERROR

    # -- the fronts -----------------------------------------------------------------------------

    def _connect(self, link: _Link) -> None:
        if link.ch is not None:
            self._lose(link)
        ch = channel.connect(link.path)
        if ch is None:
            return
        # Connection numbers: link i's connections are i, i + n, i + 2n... (n links), so they
        # never meet, and the ZeroMQ front's first connection is 0, whose keys are the front's
        # own numbers (the cheapest path in WorkQueue.add), whichever front connects first.
        n = len(self.links)
        conn = self.links.index(link) if link.conn < 0 else link.conn + n
        link.ch, link.conn, link.base = ch, conn, owner_base(conn)
        link.reading, link.taken = True, 0
        link.on_read = lambda: self._read_front(link)
        link.on_flush = lambda: self._flush_front(link)
        self.conns[conn] = link
        self.runtime.watch(ch.fileno(), link.on_read, link.on_flush)
        self.log.info("front_connected", front=link.role, conn=conn)
        self._send(link, m.Hello(os.getpid()))

    def _lose(self, link: _Link) -> None:
        """The connection ended: forget it, and drop (unrun, unanswered) what it queued."""
        ch, link.ch = link.ch, None
        if ch is None:
            return
        if self.runtime.watching(ch.fileno()):
            self.runtime.unwatch(ch.fileno())
        ch.close()
        self.conns.pop(link.conn, None)
        dropped = self.work.drop_owner(link.base)
        self.stats["dropped_messages_front_gone"] += dropped
        link.counters = {}
        link.reading, link.taken = True, 0
        self.log.info("front_lost", front=link.role, conn=link.conn, dropped_messages=dropped)

    def _send(self, link: _Link, msg) -> None:
        ch = link.ch
        if not ch.send(msg):
            self._lose(link)  # a dead front: the replies are lost with its clients
        elif ch.wants_write:
            self._watch_front(link, reading=ch.pending_bytes <= self.config.channel_output_limit)

    def _flush_front(self, link: _Link) -> None:
        ch = link.ch
        if not ch.flush():
            self._lose(link)
            return
        # Take batches again once the front took half of what it owed: no flapping.
        self._watch_front(link, reading=link.reading or ch.pending_bytes <= self.config.channel_output_limit // 2)

    def _watch_front(self, link: _Link, reading: bool) -> None:
        """Back-pressure: past ``channel_output_limit`` unsent bytes to a front, take no new
        batches from it and run none of its clients' work until it drains (replies to 3,000
        pipelined 1 MiB GETs once took this actor to 7 GB). Other fronts are served meanwhile."""
        ch = link.ch
        resumed = reading and not link.reading
        if reading != link.reading:
            link.reading = reading
            if reading:
                self.work.unpark(link.base)
            else:
                self.work.park(link.base)
                self.backpressure_pauses += 1
        self.runtime.watch(ch.fileno(), link.on_read if reading else None, link.on_flush, write=ch.wants_write)
        if resumed:
            # Read what the front sent meanwhile before this turn's cycle: a Forget of a client
            # it cut off waits in the channel, and a cycle run first makes that client's replies
            # again (up to 4 MiB), back-pressure again, never reading it. A victim's INFO once
            # waited 0.6-1.1 s behind ~170 MiB made that way for a client already cut.
            self._read_front(link)

    def _read_front(self, link: _Link) -> None:
        ch = link.ch
        for msg in ch.receive():
            kind = type(msg)
            if kind is m.Batch:
                self.work.add(msg, link.base)  # executed from on_turn, a bounded amount per cycle
                link.taken += 1
                self.stats["total_batches"] += 1
            elif kind is m.Stats:
                link.counters = msg.counters
            elif kind is m.Forget:
                self.stats["forgotten_messages"] += self.work.forget((msg.client & CLIENT_MASK) | link.base)
        if ch.closed:
            self._lose(link)

    # -- the hot path ---------------------------------------------------------------------------

    def _cycle(self) -> None:
        """Steps 1-4 of the module docstring, for a bounded share of the queued work: clients in
        turn, a quantum each, until ``cycle_max_commands``, ``cycle_max_ms`` or
        ``MAX_CYCLE_REPLY_BYTES`` is reached (node/log/work.py)."""
        write_wires: list = []  # the replies of writes of this cycle, to retract if step 2/3 fails
        finished = self._run_cycle(write_wires)
        entries = self.executor.take_propagated()  # step 1 done
        if entries or self.writer.pending:
            data = aof_format.encode_entries(entries)
            if not self._append(data):  # steps 2 and 3
                message = self._misconf_message()
                for wire in write_wires:
                    wire[:] = [1, codec.MISCONF, message]
        if self._rewrite_replies:
            self._start_rewrite()  # between cycles: see the module docstring
        packb = msgpack.packb
        for conn, done in finished.items():  # step 4: each reply to where its message came from
            link = self.conns.get(conn)
            if link is None:  # cannot be: a lost connection's work is dropped with it (_lose)
                self.stats["dropped_messages_front_gone"] += len(done)
                continue
            if not done and not link.taken:
                continue
            replies = [packb(p.failed if p.failed is not None else (p.wires if p.is_batch else p.wires[0]))
                       for p in done]
            taken, link.taken = link.taken, 0
            self._send(link, m.Replies(taken, [p.seq for p in done], replies))
        for link in self.links:
            if link.taken and link.up:  # batches taken, nothing of them finished yet
                taken, link.taken = link.taken, 0
                self._send(link, m.Replies(taken, [], []))
        self.stats["total_cycles"] += 1
        if self.meter.active:
            self.meter.note(f"cycle of {sum(map(len, finished.values()))} messages")

    def _run_cycle(self, write_wires: list) -> dict[int, list[Pending]]:
        """The finished messages, per front connection."""
        work, finished = self.work, {}
        count = 0
        budget = self.config.cycle_max_commands
        deadline = time.perf_counter() + self.config.cycle_max_ms / 1000.0
        reply_bytes = input_bytes = 0.0
        while work and budget > 0:
            client, fifo = work.head()
            owner = client >> CLIENT_BITS  # work.owner_of, inline: once per turn
            done = finished.get(owner)
            if done is None:
                done = finished[owner] = []
            quantum = min(QUANTUM, budget)
            while fifo and quantum > 0 and reply_bytes < MAX_CYCLE_REPLY_BYTES and input_bytes < MAX_CYCLE_INPUT_BYTES:
                pending = fifo[0]
                used = self._run(pending, quantum, write_wires)
                quantum -= used
                budget -= used
                input_bytes += used * pending.bytes_per_item
                if not pending.done:
                    break
                fifo.popleft()
                done.append(pending)
                count += 1
                reply_bytes += pending.reply_bytes
            work.finish_turn(client)
            if (reply_bytes >= MAX_CYCLE_REPLY_BYTES or input_bytes >= MAX_CYCLE_INPUT_BYTES
                    or time.perf_counter() >= deadline):
                break
        work.messages -= count
        return finished

    def _run(self, pending: Pending, limit: int, write_wires: list) -> int:
        """Execute up to ``limit`` requests of one message; return how many ran."""
        if pending.count < 0 and not pending.open():
            self.stats["rejected_messages"] += 1
            return 1
        wires = pending.wires
        start = pending.pos
        batch = pending.take(max(1, limit))
        stop = start + len(batch)
        for item in batch:
            wires.append(self._run_one(pending, item, write_wires))
        pending.pos = stop
        if pending.reply_bytes > self.config.client_output_limit and stop < pending.count:
            pending.failed = [1, codec.TOOBIG, (
                f"the replies to this message passed client-output-limit "
                f"({self.config.client_output_limit} bytes) after {stop} of {pending.count} requests; "
                "those ran, the rest did not")]
        return stop - start

    def _run_one(self, pending: Pending, item, write_wires: list) -> list:
        """One request of a message: its wire reply."""
        if type(item) is codec.Error:  # invalid, in place (the codec said why)
            self.stats["rejected_requests"] += 1
            return [1, item.code, item.message]
        name, args = item
        if name == "SELECT":  # for the rest of this message (protocol 2: no client state)
            selected = codec.parse_select(args[0])
            if type(selected) is codec.Error:
                return [1, selected.code, selected.message]
            pending.db = selected
            return [0, "OK"]
        if name == "HELLO":
            return codec.wire_reply(hello_reply(args))
        self.stats["total_commands_processed"] += 1
        is_write = name in _WRITES
        if is_write and self.writer.status != "ok":
            self.stats["misconf_refusals"] += 1
            return [1, codec.MISCONF, self._misconf_message()]
        reply = self._bgrewriteaof_later() if name == "BGREWRITEAOF" else self.executor.execute(pending.db, name, args)
        kind = type(reply)
        if kind is codec.Error:
            self.stats["total_error_replies"] += 1
            return [1, reply.code, reply.message]
        if kind is _Deferred:
            return reply.wire
        wire = [0, reply]
        if kind is bytes:
            pending.reply_bytes += len(reply)
        if is_write:
            write_wires.append(wire)
        return wire

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
        return exitcodes.CORRUPT_AOF  # fatal: see node/supervisor.py
    except OSError as exc:
        # The AOF cannot be created, opened or written at start (EACCES, ENOSPC, EROFS...):
        # restarting cannot fix it, so say it once and stop the node.
        log.error("aof_unusable", path=config.aof_path, errno=exc.errno, error=str(exc))
        print(f"aofnode: cannot use the AOF {config.aof_path}: {exc.strerror or exc}", file=sys.stderr)
        return exitcodes.STORAGE
    return Runtime(actor).run()
