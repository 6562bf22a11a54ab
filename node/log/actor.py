"""Log actor: owns the keyspace and the append-only file.

Design:
- Owns the ``Executor`` (the keyspace), the ``AofWriter`` (the live AOF fd), the ``Rewriter``
  and the closer handle; takes ``Batch``, ``Stats`` and ``Forget`` from each front over its
  link (node/log/links.py). Each cycle takes a fair share of the queued messages
  (node/log/work.py, group commit across fronts and clients), then:
    1. runs their requests in order; results stay values, no reply is made yet. While the AOF
       is not writable, writes are refused (MISCONF) without running; reads are served. A
       transaction (an atomic message) runs whole in one turn (node/log/transactions.py);
    2. appends the cycle's writes to the AOF with one write(2);
    3. applies the fsync policy (under ``always``: one fdatasync for every client of the cycle);
       if 2 or 3 failed, the writes of the cycle are refused: their results become MISCONF;
    4. forks the rewrite a BGREWRITEAOF asked for (the child's image is then exactly the AOF);
    5. makes each reply with its front's encoder (node/log/replies.py) and sends it.
  No write is acknowledged before the fsync that covers it (under ``always``).
- Blocking pops wait in node/log/blocking.py: a blocked client leaves the turns (its later
  messages wait behind it), is served by the write that makes its key ready, within that
  write's cycle (same append, same fsync, then the reply), or answered nil at its timeout or
  at a CLIENT UNBLOCK.
- Every 100 ms tick: expiry, the writer's retries and everysec fsync, the closer, the rewrite.
- Never blocks on close(2)/unlink(2) (the closer actor does). A corrupt AOF (exit 3) or one that
  cannot be created or written (6) is fatal at start (node/exitcodes.py). docs/aof.md has
  the durability rules and the rewrite's steps.
"""
from __future__ import annotations

import glob
import os
import signal
import sys
import time

from aofnode import exitcodes
from aofnode.log.closer_client import CloserClient, InlineCloser
from aofnode.runtime.heartbeat import Heartbeat, heartbeat_path
from aofnode.log.report import PauseMeter, Reporter
from aofnode.runtime.actor import Actor, Runtime
from aofnode.hello import hello_reply
from aofnode.log.introspect import Introspection
from aofnode.log.blocking import Blocking, client_unblock
from aofnode.log.links import FrontLinks
from aofnode.log.notify import Notifier
from aofnode.log.pubsub import PubSub
from aofnode.log.monitor import Monitors
from aofnode.log.tracking import Tracking
from aofnode.log.work import CLIENT_BITS, CLIENT_MASK, Pending, WorkQueue
from aofnode.log import busy, transactions
from aofnode.store.watch import WatchTable
from aofnode.aof import format as aof_format
from aofnode.aof.rewrite import TEMP_PREFIX, Rewriter
from aofnode.aof.writer import AofWriter
from aofnode.config import Config
from aofnode.store.blocking import WouldBlock
from aofnode.store.executor import Executor
from aofnode.store.memory import EMPTY_KEYSPACE_BYTES
from aofnode.testhooks import make_pause
from aofnode import protocol as codec
from aofnode.protocol.commands import COMMANDS

__all__ = ["LogActor", "main"]

# Scripts may only read: the executor refuses their first write instead, or a shebang script
# that may write before it runs (``Executor.write_refusal``, node/store/scripting.py).
_SCRIPTS = frozenset(("EVAL", "EVALSHA", "FCALL"))
# A request's kind, one dict lookup on the hot path instead of three name comparisons and a set
# lookup (~50 ns of ~3 us a pipelined SET costs here): a read, a write, or one of the three the
# log actor answers itself.
_READ, _WRITE, _SELECT, _HELLO, _BGREWRITEAOF = range(5)
_KINDS = {name: _WRITE if spec.write else _READ for name, spec in COMMANDS.items()}
_KINDS.update(SELECT=_SELECT, HELLO=_HELLO, BGREWRITEAOF=_BGREWRITEAOF)
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


class LogActor(Actor):
    tick_interval = CRON_INTERVAL_S

    def __init__(self, config: Config, log, closer=None) -> None:
        self.config = config
        self.log = log
        self.supervisor_pid = os.getppid()
        self.stats = {"total_commands_processed": 0, "total_batches": 0, "total_cycles": 0,
                      "total_error_replies": 0, "misconf_refusals": 0, "forgotten_messages": 0,
                      "rejected_messages": 0, "rejected_requests": 0, "dropped_messages_front_gone": 0,
                      "command_internal_errors": 0}
        self.closer = closer or (InlineCloser(log) if config.aof_close_inline
                                 else CloserClient(config.closer_path, log))
        self._remove_stale_temp_files()
        started = time.time()  # INFO's uptime counts the load
        self.executor = Executor()
        # Before the load, so the access clock of allkeys-lru is built key by key (turning it on
        # later walks every key); the replay itself never refuses nor evicts (loading).
        self.executor.maxmemory = config.maxmemory
        self.executor.maxmemory_policy = config.maxmemory_policy
        self.executor.maxmemory_samples = config.maxmemory_samples
        self.executor.keyspace.lfu_log_factor = config.lfu_log_factor
        self.executor.keyspace.lfu_decay_time = config.lfu_decay_time
        self.executor.memory_baseline = EMPTY_KEYSPACE_BYTES  # counted as Redis's startup memory
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
        self._refusal: codec.Error | None = None  # this cycle's answer to writes (MISCONF)
        self._rewrite_waiting: list = []  # a BGREWRITEAOF's result slot, as _fill takes it
        self.work = WorkQueue()
        self.blocking = Blocking(self.executor, self.work)
        self._run_one_watching = self.blocking.watch(self._run_one)
        self.fronts = FrontLinks(config.front_paths, self.work, self.stats, config.channel_output_limit, log)
        self._client = 0  # the client key of the running turn (WATCH state is per client)
        self.tx_units: list[tuple[int, int]] = []  # this cycle's transactions' entries: one record each
        self.watches = WatchTable(self.executor, config.max_watched_keys_per_client,
                                  config.max_watched_keys)
        self.tracking = Tracking(self, config.tracking_table_max_keys)  # CLIENT TRACKING
        self._track = self.tracking.handlers()["CLIENT"]
        self.fronts.forget_client = self._forget_client
        self.fronts.forget_owner = self._forget_owner
        self.reporter = Reporter(config, log, self.stats, keyspace=self.executor.keyspace,
                                 writer=self.writer, rewriter=self.rewriter, closer=self.closer,
                                 meter=self.meter, fronts=self.fronts, started=started)
        self.intro = Introspection(self)  # CONFIG, SLOWLOG, LATENCY, DEBUG, INFO's Redis fields
        self.pubsub = PubSub()  # run through intro's own commands, so counted as any command
        self.intro._own.update(self.pubsub.handlers())
        self.monitors = Monitors(self)  # MONITOR (node/log/monitor.py)
        self.intro._own.update(self.monitors.handlers())
        # CLIENT, which the RESP front forwards in part: UNBLOCK (the waiter it names is here)
        # and the tracking subcommands (node/log/tracking.py)
        self.intro._own["CLIENT"] = self._client_command
        self.fronts.attach_pubsub(self.pubsub, self.monitors)
        self.tracking.subscribable = self.pubsub.subscribable
        if config.pub_bind:
            self.pubsub.mirror = lambda: self.fronts.conn_of("front")
        self.notifier = Notifier(self.executor, self.pubsub.publish, self.intro)  # notify-keyspace-events
        self.executor.info_provider = self._info
        self.tx_running = False  # inside run_atomic
        self.min_replicas_to_write = 0  # CONFIG SET min-replicas-to-write (_writes_refused)
        self.front_told: dict[int, tuple] = {}  # front connection -> the state it was told
        transactions.install(self)
        self.script_busy = busy.install(self)  # BUSY, SCRIPT KILL and SHUTDOWN (node/log/busy.py)
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

        refresh = self.executor.refresh_clock

        def apply(entries: list) -> None:
            refresh()  # a loaded key's access time is when it was loaded
            for entry in entries:
                execute(entry[0], entry[1], entry[2:])

        aof_format.load(self.config.aof_path, apply, self.log, self.config.key_load_delay)
        self.executor.loading = False
        self.executor.take_propagated()

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.heartbeat = Heartbeat(heartbeat_path(self.config.run_dir, "log"))
        self.heartbeat.beat(time.monotonic())
        self.log.info("actor_started", aof=self.config.aof_path, appendfsync=self.config.appendfsync,
                      keys=self.reporter.total_keys())
        self.fronts.start(runtime)

    @property
    def busy(self) -> bool:
        """Work the next turn can do: the runtime then polls without waiting. While a rewrite
        catches up on its diff, that is one slice per turn (on_turn)."""
        return bool(self.work) or self.rewriter.catching_up

    @property
    def max_wait(self) -> float | None:
        """Until the earliest blocking-pop timeout: millisecond resolution, not the tick's."""
        return self.blocking.max_wait()

    def on_turn_start(self) -> None:
        if self.rewriter.in_progress or self.meter.active:
            self.meter.begin(self.rewriter.total_forks)

    def on_turn(self) -> None:
        blocking = self.blocking
        if blocking.deadlines:
            blocking.expire()  # answers go out with this turn's cycle
        if self.work or blocking.done:  # a front under back-pressure has its clients parked
            self._cycle()
        elif blocking.waiting:  # batches only for blocked clients: still say they were taken,
            self.fronts.reply({})  # or a front would stop sending at MAX_IN_FLIGHT
        rewriter = self.rewriter
        if rewriter.catching_up:
            rewriter.tick()  # one catch-up slice per turn (rewrite step 4.1)
            self.meter.note("catch-up")
        if self.meter.active:
            self.meter.end(rewriter.in_progress, rewriter.total_forks, rewriter.last_status)

    def on_tick(self, now: float) -> None:
        if self.heartbeat is not None:  # set by on_start, before the first tick
            self.heartbeat.beat(now)  # the supervisor's watchdog reads it (node/runtime/heartbeat.py)
        self.executor.refresh_clock()
        self.executor.active_expire_cycle(EXPIRE_BUDGET_MS)
        if self.pubsub.out:  # "expired" notifications
            self.fronts.deliver(self.pubsub.take())
        if self.tracking.active:  # expired keys' invalidations
            self.fronts.deliver(self.tracking.take())
        entries = self.watches.take_propagated()
        if entries:
            self._append(aof_format.encode_entries(entries))
        self.fronts.reconnect()
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
        # Orphaned (the supervisor was killed: every actor got SIGTERM with it), a closer that
        # is gone stays gone; waiting 5 s for one only kept the data directory locked that long
        # before a new ``serve`` could start. The fd then closes with this process.
        self.closer.drain(timeout=5.0, reconnect=os.getppid() == self.supervisor_pid)
        self.fronts.close()
        if self.heartbeat is not None:
            self.heartbeat.close()
        self.log.info("actor_stopped")
        return exitcodes.OK if ok else exitcodes.ERROR

    # -- the hot path ---------------------------------------------------------------------------

    def _cycle(self) -> None:
        """Steps 1-5 of the module docstring, for a bounded share of the queued work: clients in
        turn, a quantum each, until ``cycle_max_commands``, ``cycle_max_ms`` or
        ``MAX_CYCLE_REPLY_BYTES`` is reached (node/log/work.py)."""
        writes: list = []  # where this cycle's write results are: (results, index) pairs, flat
        self._refusal = self.executor.write_refusal = self._writes_refused()
        # The access stamps' clock, once a cycle; no touch while a rewrite runs (from the fork
        # to the switch: its child shares our pages until it exits, and the catch-up is short).
        keyspace = self.executor.keyspace
        keyspace.refresh_clock()
        keyspace.freeze_access(self.rewriter.in_progress)
        finished = self._run_cycle(writes)
        if self.blocking.done:
            self.blocking.take_done(finished)  # served or timed out: replied with this cycle
        tracked = self.tracking.take() if self.tracking.active else None  # before the take
        entries = self.watches.take_propagated()  # step 1 done
        units, self.tx_units = self.tx_units, []
        if entries or self.writer.pending:
            if not self._append(aof_format.encode_entries(entries, units)):  # steps 2 and 3
                self._refuse_writes(writes)  # step 3, failed
        if self._rewrite_waiting:
            self._start_rewrite()  # step 4
        if self.pubsub.out:
            self.fronts.deliver(self.pubsub.take())  # before the replies: PUBLISH's reply follows
        if self.monitors.entries:
            self.fronts.deliver(self.monitors.take())
        if tracked:
            self.fronts.deliver(tracked)
        transactions.tell_front_state(self)  # before the replies too: MULTI's queueing reads it
        if self.script_busy.run is not None:
            self.script_busy.before_replies()  # a script went busy in this cycle: it ended
        self.fronts.reply(finished)  # step 5: each reply to where its message came from
        self.stats["total_cycles"] += 1
        if self.script_busy.ended:
            self.script_busy.after_cycle()
        if self.meter.active:
            self.meter.note(f"cycle of {sum(map(len, finished.values()))} messages")

    def _writes_refused(self) -> codec.Error | None:
        """The answer to every write of this cycle if the AOF is not writable, else None. The
        writer's status changes only in steps 2-3 and the tick, never while step 1 runs. With
        CONFIG SET min-replicas-to-write N > 0 every write is refused as Redis refuses it
        without N good replicas: aofnode has none."""
        if self.writer.status != "ok":
            return self._misconf()
        return transactions.NOREPLICAS if self.min_replicas_to_write else None

    def _refuse_writes(self, writes: list) -> None:
        """The cycle's writes ran but are not durable, so none is acknowledged: their results
        become MISCONF before any reply is made of them."""
        _fill(writes, self._misconf())

    def _run_cycle(self, writes: list) -> dict[int, list[Pending]]:
        """The finished messages, per front connection."""
        work = self.work
        finished: dict[int, list[Pending]] = {}
        count = 0
        budget = self.config.cycle_max_commands
        deadline = time.perf_counter() + self.config.cycle_max_ms / 1000.0
        reply_bytes = input_bytes = 0.0
        # While anyone waits in a blocking pop, each request may serve them (node/log/blocking.py).
        run_one = self._run_one_watching if self.blocking.waiting else self._run_one
        if self.monitors.keys:  # MONITOR: each request fed (node/log/monitor.py)
            run_one = self.monitors.wrap(run_one)
        if self.tracking.clients:  # CLIENT TRACKING: reads noted (node/log/tracking.py)
            run_one = self.tracking.wrap(run_one)
        while work and budget > 0:
            client, fifo = work.head()
            self._client = client
            owner = client >> CLIENT_BITS  # work.owner_of, inline: once per turn
            self.pubsub.client = client
            done = finished.get(owner)
            if done is None:
                done = finished[owner] = []
            quantum = min(QUANTUM, budget)
            try:
                while (fifo and quantum > 0 and reply_bytes < MAX_CYCLE_REPLY_BYTES
                       and input_bytes < MAX_CYCLE_INPUT_BYTES):
                    pending = fifo[0]
                    used = self._run(pending, quantum, writes, run_one)
                    quantum -= used
                    budget -= used
                    input_bytes += used * pending.bytes_per_item
                    if not pending.done:
                        break
                    fifo.popleft()
                    done.append(pending)
                    count += 1
                    reply_bytes += pending.reply_bytes
                    if self.tracking.started:  # the first CLIENT TRACKING on: see below
                        break
            except WouldBlock as blocked:  # its turn ends; its later messages wait behind it
                budget -= self.blocking.block(client, fifo[0], blocked.spec)
                run_one = self.tracking.wrap(self.monitors.wrap(self._run_one_watching))
            else:
                work.finish_turn(client)
            if self.tracking.started:  # the requests after it have their reads noted
                self.tracking.started = False
                run_one = self.tracking.wrap(run_one)
            if (reply_bytes >= MAX_CYCLE_REPLY_BYTES or input_bytes >= MAX_CYCLE_INPUT_BYTES
                    or time.perf_counter() >= deadline):
                break
        work.messages -= count
        return finished

    def _run(self, pending: Pending, limit: int, writes: list, run_one) -> int:
        """Execute up to ``limit`` requests of one message with ``run_one`` (``_run_one``, or its
        watching form); return how many ran. A blocking pop with nothing to pop raises
        ``WouldBlock`` out of it."""
        if pending.count < 0 and not pending.open():
            self.stats["rejected_messages"] += 1
            assert pending.failed is not None  # open() said why it refused the message
            self.intro.error(pending.failed)
            return 1
        if pending.atomic:
            return transactions.run_atomic(self, pending, writes)
        results = pending.results
        start = pending.pos
        batch = pending.take(max(1, limit))
        stop = start + len(batch)
        for item in batch:
            results.append(run_one(pending, item, writes))
        pending.pos = stop
        if pending.reply_bytes > self.config.client_output_limit and stop < pending.count:
            pending.failed = self.intro.error(codec.Error(codec.TOOBIG, (
                f"the replies to this message passed client-output-limit "
                f"({self.config.client_output_limit} bytes) after {stop} of {pending.count} requests; "
                "those ran, the rest did not")))
        return stop - start

    def _run_one(self, pending: Pending, item, writes: list):
        """One request of a message: its result, which the caller appends to ``pending.results``
        (a write or a BGREWRITEAOF notes that index: its result may still change, see _fill)."""
        if type(item) is codec.Error:  # invalid, in place (the codec said why)
            self.stats["rejected_requests"] += 1
            return self.intro.error(item)
        name, args = item
        kind = _KINDS.get(name, _READ)
        if kind is _SELECT:  # for the rest of this message (protocol 2: no client state)
            selected = codec.parse_select(args[0])
            if type(selected) is codec.Error:
                return self.intro.error(selected)
            pending.db = selected
            return "OK"
        if kind is _HELLO:
            return hello_reply(args)
        self.stats["total_commands_processed"] += 1
        is_write = kind is _WRITE
        if is_write and self._refusal is not None and name not in _SCRIPTS:
            self.stats["misconf_refusals"] += 1
            self.intro.rejected(name)
            return self.intro.error(self._refusal)
        try:
            reply = (self._bgrewriteaof_later(pending.results) if kind is _BGREWRITEAOF
                     else self.intro.execute(pending.db, name, args))
        except WouldBlock:
            raise
        except Exception as exc:
            reply = self._internal_error(name, exc)
        reply_type = type(reply)
        if reply_type is codec.Error:
            return self.intro.error(reply)
        if reply_type is bytes:
            pending.reply_bytes += len(reply)
        if is_write:
            writes.append(pending.results)
            writes.append(len(pending.results))
        return reply

    def _internal_error(self, name: str, exc: Exception) -> codec.Error:
        """A bug in one command answers that request with ERR instead of ending the actor that
        holds every client's keyspace: a client that can trigger it could otherwise stop the
        node through the crash-loop rule. What the command changed before it raised was
        propagated as it changed, so the AOF and memory agree on it. Logged with the stack."""
        self.stats["command_internal_errors"] += 1
        self.log.error("command_internal_error", command=name, error=repr(exc)[:200], exc_info=True)
        return codec.Error(codec.ERR, f"internal error in '{name.lower()}' (logged, counted in "
                                      "INFO command_internal_errors)")

    def _client_command(self, db: int, args: list):
        """CLIENT as the RESP front forwards it: UNBLOCK, or a tracking subcommand."""
        if args and args[0].upper() == b"UNBLOCK":
            return client_unblock(self.blocking, self._client, args,
                                  lambda error: self.intro.error_during("CLIENT|UNBLOCK", error))
        return self._track(db, args)

    def _forget_client(self, key: int) -> None:
        self.watches.forget(key)
        self.tracking.forget(key)

    def _forget_owner(self, base: int) -> None:
        self.watches.drop_owner(base, CLIENT_MASK)
        self.tracking.forget_owner(base)

    def _info(self) -> dict[str, dict]:
        sections = self.intro.info()
        for name, fields in self.blocking.info().items():
            sections.setdefault(name, {}).update(fields)
        sections.setdefault("stats", {}).update(self.pubsub.info())
        sections["stats"].update(self.monitors.info())
        tracked = self.tracking.info()
        sections.setdefault("clients", {})["tracking_clients"] = tracked.pop("tracking_clients")
        sections["stats"].update(tracked)
        return sections

    def _misconf(self) -> codec.Error:
        return codec.Error(codec.MISCONF, (
            f"Errors writing to the AOF file ({self.writer.last_error}): write commands are "
            "refused until the AOF is writable again; this write was not acknowledged"))

    def _append(self, data: bytes) -> bool:
        ok = self.writer.append(data)
        self.rewriter.feed(data)  # the diff queue: a no-op unless a rewrite runs
        return ok

    def _bgrewriteaof_later(self, results: list):
        """BGREWRITEAOF inside a cycle: refuse now if one runs, else fork after the cycle's
        append (``_start_rewrite``), which gives the result before step 5 makes the reply."""
        if self.rewriter.in_progress or self._rewrite_waiting:
            return codec.Error(codec.BUSY, codec.BUSY_REWRITE_MESSAGE)
        self._rewrite_waiting = [results, len(results)]
        return _AWAITING_REWRITE

    def _start_rewrite(self) -> None:
        _fill(self._rewrite_waiting, self.rewriter.request())
        self._rewrite_waiting = []


# The result of a BGREWRITEAOF until the fork after the cycle's append; never encoded (msgpack
# would refuse it loudly), since _start_rewrite replaces it in the same cycle.
_AWAITING_REWRITE = object()


def _fill(slots: list, value) -> None:
    """Set the results at ``slots`` (results list, index, results list, index...) to ``value``:
    results still open in this cycle, before any reply is made of them."""
    for i in range(0, len(slots), 2):
        slots[i][slots[i + 1]] = value


def main(config: Config, log) -> int:
    # A write past RLIMIT_FSIZE must fail with EFBIG (and turn the AOF status to err), not kill
    # the process with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        actor = LogActor(config, log)
    except aof_format.CorruptAOF as corrupt:  # each clause its own name: one type per name
        log.error("aof_corrupt", path=corrupt.path, offset=corrupt.offset, reason=corrupt.reason,
                  hint=str(corrupt))
        return exitcodes.CORRUPT_AOF  # fatal: see node/supervisor.py
    except OSError as exc:
        # The AOF cannot be created, opened or written at start (EACCES, ENOSPC, EROFS...):
        # restarting cannot fix it, so say it once and stop the node.
        log.error("aof_unusable", path=config.aof_path, errno=exc.errno, error=str(exc))
        print(f"aofnode: cannot use the AOF {config.aof_path}: {exc.strerror or exc}", file=sys.stderr)
        return exitcodes.STORAGE
    return Runtime(actor).run()
