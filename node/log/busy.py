"""A script past busy-reply-threshold: BUSY for the other clients, SCRIPT KILL, SHUTDOWN.

Design (Redis 7.0's script.c ``scriptInterrupt``, in the log actor):
- A script runs inside the log actor's cycle, so nothing else runs until it returns. The Lua
  instruction hook (every ``HOOK_EVERY`` instructions, about a millisecond of Lua here; see
  node/store/luabridge.py) calls ``check(run, elapsed_ms)``. Under ``busy_reply_threshold_ms``
  (``--busy-reply-threshold``, CONFIG ``busy-reply-threshold`` or ``lua-time-limit``; 0:
  never) it returns False at once. Past it the script keeps running and, at most every
  ``POLL_INTERVAL_S``, the hook polls the front links without waiting:
    1. each front link that is up and not under back-pressure is read: its Batches are filed
       in the work queue as always, its Stats kept; a Forget waits for the end of the cycle
       (the script's own client must outlive its script, as Redis protects it, and the cycle
       holds that client's FIFO);
    2. the queued messages of every other client in turn are answered: each request gets
       ``-BUSY``, but ``SCRIPT KILL``, ``SHUTDOWN NOSAVE``, ``WATCH`` and ``UNWATCH`` (Redis's
       allow-busy commands that reach the log actor) run. Not touched: the script's client
       (its later messages run after the script), blocked clients, clients of a front under
       back-pressure, and a client whose head message has begun in this cycle (its writes
       are not yet durable, so no reply of it may leave before the cycle's fsync);
    3. those replies leave at once, with the count of batches taken (a front sends no more
       than two untaken batches), and the heartbeat beats: the log actor is not hung.
  Both fronts answer nothing of this themselves: the BUSY replies come from here as any reply.
  Only the RESP front's MULTI queue, which never reaches the log actor before EXEC, is told
  (``Stats({"busy": 1})`` at the start, 0 at the end) and answers BUSY itself meanwhile.
- ``SCRIPT KILL`` (or ``FUNCTION KILL``): if the script has written, ``-UNKILLABLE``; else
  OK, and the next hook aborts the script, whose caller gets ``-ERR Script killed by user with SCRIPT KILL...``.
  Nothing it did is undone (it did not write). Without a busy script: ``-NOTBUSY``
  (node/store/scripting.py).
- ``SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]``: without a busy script (``shutdown``), the writes of
  the cycle so far are appended and fsynced (they are whole: SHUTDOWN is refused inside MULTI
  and scripts); during one, only NOSAVE is taken (else BUSY) and the cycle's writes are not
  appended: the script's are half done (Redis too logs a script's effects only when it ends)
  and none of that cycle was acknowledged. Either way the actor exits ``exitcodes.SHUTDOWN``
  at once, without a reply, and the supervisor stops the node (exit 0). Acknowledged writes
  were fsynced before their reply (``always``) or are now (``fsync_now``).
- No bound on a script's time: Redis never ends one by itself, and neither does this. A script
  that loops with no one to kill it holds the node until SHUTDOWN NOSAVE or a signal
  (docs/resp.md); the watchdog sees the heartbeat and stays quiet.
"""
from __future__ import annotations

import collections
import os
import sys
import time

from aofnode import exitcodes
from aofnode import protocol as codec
from aofnode.aof import format as aof_format
from aofnode.log import transactions
from aofnode.log.work import CLIENT_BITS, Pending
from aofnode.runtime import messages as m

__all__ = ["BusyScript", "POLL_INTERVAL_S", "install"]

# How often a busy script polls the fronts: often enough that BUSY comes back in about a
# millisecond more than the round trip, rarely enough that the reads (a recv per front, ~5 us)
# cost the script under 1%.
POLL_INTERVAL_S = 0.002
_BUSY = codec.Error(codec.BUSY, codec.BUSY_SCRIPT_MESSAGE)
_UNKILLABLE = codec.Error("UNKILLABLE", (
    "Sorry the script already executed write commands against the dataset. You can either "
    "wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE "
    "command."))
_SYNTAX = codec.Error(codec.ERR, "syntax error")
_IN_MULTI = codec.Error(codec.ERR, "Command not allowed inside a transaction")
_ALLOWED = frozenset(("WATCH", "UNWATCH"))  # run as usual; SCRIPT KILL and SHUTDOWN below


def parse_shutdown(args) -> tuple[bool, bool] | codec.Error:
    """(nosave, abort) from SHUTDOWN's arguments, or Redis's syntax error."""
    seen = set()
    for arg in args:
        word = arg.upper()
        if word not in (b"NOSAVE", b"SAVE", b"NOW", b"FORCE", b"ABORT"):
            return _SYNTAX
        seen.add(word)
    abort = b"ABORT" in seen
    if (abort and len(seen) > 1) or {b"NOSAVE", b"SAVE"} <= seen:
        return _SYNTAX
    return b"NOSAVE" in seen, abort


class BusyScript:
    """The log actor's side of a long script: see the module docstring."""

    def __init__(self, actor) -> None:
        self.actor = actor
        self.run = None  # the ScriptRun that went busy, until the cycle ends
        self.ended = False  # the busy script ended in this cycle: after_cycle has work
        self.killed = False
        self._next_poll = 0.0
        self._forgets: list[tuple[object, m.Forget]] = []  # (link, Forget), for the cycle's end
        self.stats = {"busy_scripts": 0, "busy_script_replies": 0, "killed_scripts": 0}

    def info(self) -> dict:
        return {"busy_reply_threshold": self.actor.config.busy_reply_threshold_ms, **self.stats}

    # -- from the Lua hook ------------------------------------------------------------------------

    def check(self, run, elapsed_ms: float) -> bool:
        """True: abort the script now (SCRIPT KILL took it)."""
        threshold = self.actor.config.busy_reply_threshold_ms
        if not threshold or elapsed_ms < threshold:
            return False
        if run is not self.run:
            self._begin(run, elapsed_ms)
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + POLL_INTERVAL_S
            self._poll(now)
        return self.killed

    def _begin(self, run, elapsed_ms: float) -> None:
        if self.run is not None:
            self._end()
        self.run, self.killed = run, False
        self.stats["busy_scripts"] += 1
        self._tell(1)
        self.actor.log.warning("script_busy", elapsed_ms=int(elapsed_ms), wrote=run.wrote,
                               threshold_ms=self.actor.config.busy_reply_threshold_ms)

    def _end(self) -> None:
        run, self.run = self.run, None
        self._tell(0)
        self.actor.log.info("script_busy_ended", elapsed_ms=int((time.monotonic() - run.started) * 1000),
                            killed=self.killed)

    def _tell(self, busy: int) -> None:
        """The RESP front queues MULTI's commands itself: while it knows a script is busy it
        answers them BUSY, as Redis does, and EXEC then EXECABORT (node/fronts/resp_multi.py)."""
        for link in self.actor.fronts.links:
            if link.up:
                link.ch.send(m.Stats({"busy": busy}))

    def _poll(self, now: float) -> None:
        fronts = self.actor.fronts
        for link in fronts.links:
            if link.up and link.reading and link.ch.pending_bytes <= fronts.output_limit:
                self._read(link)
        self._send(self._sweep())
        if self.actor.heartbeat is not None:
            self.actor.heartbeat.beat(now)

    def _read(self, link) -> None:
        """Step 1. A lost front is left as it is: its loss is handled after the cycle (dropping
        its clients now could drop the script's own client's FIFO under the cycle)."""
        actor = self.actor
        for msg in link.ch.receive():
            kind = type(msg)
            if kind is m.Batch:
                actor.work.add(msg, link.base)
                link.taken += 1
                actor.stats["total_batches"] += 1
            elif kind is m.Stats:
                link.counters = msg.counters
            elif kind is m.Forget:
                self._forgets.append((link, msg))

    def _sweep(self) -> dict[int, list[Pending]]:
        """Step 2: the answered messages, per front connection."""
        actor, work = self.actor, self.actor.work
        running = actor._client
        answered: dict[int, list[Pending]] = {}
        if not work.turns or work.turns[0] != running:
            return answered  # not inside a cycle's turn: nothing to do safely
        kept = collections.deque()
        for key in work.turns:
            fifo = work.fifos[key]
            if key == running or fifo[0].pos > 0:
                kept.append(key)
                continue
            done = answered.setdefault(key >> CLIENT_BITS, [])
            while fifo:
                pending = fifo.popleft()
                self._answer(pending, key)
                done.append(pending)
                work.messages -= 1
            del work.fifos[key]
        work.turns = kept
        return answered

    def _answer(self, pending: Pending, key: int) -> None:
        actor = self.actor
        if pending.count < 0 and not pending.open():
            actor.stats["rejected_messages"] += 1
            actor.intro.error(pending.failed)
            return
        if pending.atomic:  # EXEC is not an allow-busy command in Redis: the block is dropped
            self.stats["busy_script_replies"] += 1
            actor.watches.forget(key)
            pending.failed = actor.intro.error(transactions.exec_abort(_BUSY))
            return
        results = pending.results
        for item in pending.items[pending.pos:]:
            results.append(self._reply(pending, key, item))
        pending.pos = pending.count

    def _reply(self, pending: Pending, key: int, item):
        actor = self.actor
        if type(item) is codec.Error:
            return actor.intro.error(item)
        name, args = item
        if name in ("SCRIPT", "FUNCTION") and len(args) == 1 and args[0].upper() == b"KILL":
            return self._kill()
        if name == "SHUTDOWN":
            parsed = parse_shutdown(args)
            if type(parsed) is codec.Error:
                return actor.intro.error(parsed)
            if parsed[0]:
                self._exit(keep_cycle=False)
        if name in _ALLOWED:
            client, actor._client = actor._client, key  # WATCH state is per client
            try:
                return actor._run_one(pending, item, [])
            finally:
                actor._client = client
        self.stats["busy_script_replies"] += 1
        return actor.intro.error(_BUSY)

    def _kill(self):
        if self.run.wrote:
            return self.actor.intro.error(_UNKILLABLE)
        if not self.killed:
            self.killed = True
            self.stats["killed_scripts"] += 1
            self.actor.log.warning("script_killed", by="SCRIPT KILL")
        return "OK"

    def _send(self, answered: dict[int, list[Pending]]) -> None:
        """Step 3, as FrontLinks.reply, but a failed send only closes the channel: the loss is
        handled after the cycle."""
        fronts = self.actor.fronts
        for link in fronts.links:
            if not link.up:
                continue
            done = answered.get(link.conn, ())
            if done or link.taken:
                taken, link.taken = link.taken, 0
                link.ch.send(m.Replies(taken, [p.seq for p in done], link.replies.encode(done)))
            elif link.ch.wants_write:
                link.ch.flush()

    # -- after the cycle --------------------------------------------------------------------------

    def before_replies(self) -> None:
        """The script ended with its cycle: the fronts hear it before any reply of the cycle, so
        a client that saw the script's caller answered (or SCRIPT KILL's OK, then the caller)
        is not refused BUSY by a front that still thinks it runs (MULTI's queueing there)."""
        if self.run is not None:
            self._end()
            self.ended = True

    def after_cycle(self) -> None:
        """After the replies of the cycle the script ended in: the Forgets read meanwhile, and
        the write interest of links whose replies the kernel did not all take."""
        self.ended = False
        fronts = self.actor.fronts
        forgets, self._forgets = self._forgets, []
        for link, msg in forgets:
            if not link.up or link.conn not in fronts.conns:
                continue  # the front went away: its clients went with it
            fronts.forget(link, msg)
        for link in fronts.links:
            if link.up and link.ch.wants_write:
                fronts._flush(link)

    # -- SHUTDOWN -----------------------------------------------------------------------------

    def shutdown(self, db: int, args):
        """SHUTDOWN as a command of the log actor (no busy script: ``_reply`` takes it then)."""
        parsed = parse_shutdown(args)
        if type(parsed) is codec.Error:
            return parsed
        if parsed[1]:
            return codec.Error(codec.ERR, "No shutdown in progress.")
        if self.actor.tx_running:  # Redis's no-multi flag: a block's writes would be cut
            return _IN_MULTI
        self._exit(keep_cycle=True)

    def _exit(self, keep_cycle: bool) -> None:
        """Make what was acknowledged durable and exit ``SHUTDOWN`` (never returns)."""
        actor = self.actor
        if keep_cycle:
            entries = actor.watches.take_propagated()
            units, actor.tx_units = actor.tx_units, []
            if entries:
                actor._append(aof_format.encode_entries(entries, units))
        actor.rewriter.abort("shutdown")
        ok = actor.writer.fsync_now()  # a failure is logged and the node stops anyway, as Redis
        actor.log.warning("shutdown_command", busy_script=self.run is not None,
                          cycle_writes_kept=keep_cycle, fsync_ok=ok, aof_size=actor.writer.size)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(exitcodes.SHUTDOWN)


def install(actor) -> BusyScript:
    """The guard on the executor's scripts, SHUTDOWN among the log actor's commands, and the
    counters in INFO ``stats``."""
    busy = BusyScript(actor)
    actor.executor.script_guard = busy.check
    actor.intro._own["SHUTDOWN"] = busy.shutdown
    base_info = actor.executor.info_provider

    def info():
        sections = base_info()
        sections.setdefault("stats", {}).update(busy.info())
        return sections

    actor.executor.info_provider = info
    return busy
