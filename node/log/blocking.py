"""Clients blocked in a blocking pop (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
BZPOPMAX, BZMPOP): who waits for which key, in which order, until when.

Design (Redis 7.0's blocked.c, in the log actor's terms):
- A blocking pop that finds nothing to pop raises ``WouldBlock`` out of the executor
  (node/store/blocking.py); the cycle catches it and calls ``block``: the client's head
  message stays at that request, the client leaves the turns (``WorkQueue.block``) and waits
  here, on every key it named, behind the clients that blocked on that key before it. Nothing
  else waits: the log actor goes on with every other client.
- A key becomes ready when a write makes it exist. Writes are seen through the canonical AOF
  entries the executor propagates (``ready_keys``: the key a push, ZADD, LMOVE, RENAME, a
  STORE command... names), so a key made ready by any front, or by a served BLMOVE's push, is
  seen the same way. While anyone waits, the cycle runs each request through ``watch``'s
  wrapper, which after every request that logged something serves the keys it made ready, in
  the order they became ready, each to its waiters first blocked first served, until the key
  is empty: as Redis 7.0, at the end of the command that made the key ready, before the next
  command of any client runs. A client blocked on several keys is served by the first of them
  that becomes ready. With no one blocked the cycle runs the plain ``_run_one``: the hot path
  costs what it did.
- A served pop is the non-blocking command's effect (its AOF form, docs/commands.md), made
  in the cycle that serves it; its result slot is noted with the cycle's writes, so it is
  appended, fsynced (under ``always``) and only then answered, or made MISCONF with them.
- Timeouts: a heap of monotonic deadlines; the log actor's ``max_wait`` wakes its poll at the
  earliest, and each turn answers the ones due with nil before its cycle.
- A blocked client that is cut off (``Forget``) or whose front is lost is dropped from the
  ``WorkQueue``, which tells ``forget``: it is never served afterwards. A log actor that dies
  takes its waiters with it; the fronts answer every message it held ABORTED.
- CLIENT UNBLOCK (Redis's networking.c and blocked.c): the RESP front forwards it, so it runs
  here in its client's turn, and names a client of the same front connection (a RESP
  connection's CLIENT ID is its client number there; ZeroMQ clients have no id to give). A
  waiter is answered at once, nil as at its timeout or the UNBLOCKED error, and counts as a
  failed call of its command in both modes, as Redis 7.0 counts it (``updateStatsOnUnblock``
  with ``had_errors`` 1).
- Bound: at most ``limit`` blocked clients (``MAX_BLOCKED_CLIENTS``); past it a blocking pop
  that would block gets ``LIMIT_ERROR`` at once (the executor's ``block_mode``).
"""
from __future__ import annotations

import collections
import heapq
import itertools
import time
from typing import Callable

from aofnode.log.work import CLIENT_BITS, CLIENT_MASK, Pending, WorkQueue
from aofnode.protocol.errors import ERR, Error
from aofnode.store.blocking import EMPTY, OTHER_KIND, BlockSpec
from aofnode.store.strings import parse_ll

__all__ = ["Blocking", "MAX_BLOCKED_CLIENTS", "UNBLOCKED", "client_unblock", "ready_keys"]

# Each blocked client holds one message in its front's waiting count (50,000 on either front,
# node/fronts): 10,000 leaves most of that to clients that are not blocked. A blocked client
# costs ~1 KiB here.
MAX_BLOCKED_CLIENTS = 10_000

# The key an AOF entry may have made exist, by the entry's position (docs/commands.md, "What
# goes into the AOF"). Only lists and sorted sets matter: no one waits for another type.
_KEY_AT = {"LPUSH": 2, "RPUSH": 2, "LMOVE": 3, "ZADD": 2, "ZUNIONSTORE": 2, "ZINTERSTORE": 2,
           "ZDIFFSTORE": 2, "ZRANGESTORE": 2, "RENAME": 3}
_CREATES = frozenset(_KEY_AT) | {"COPY", "MOVE", "SWAPDB"}  # every other entry: no key made


UNBLOCKED = Error("UNBLOCKED", "client unblocked via CLIENT UNBLOCK")
_NOT_INTEGER = Error(ERR, "value is not an integer or out of range")
_BAD_REASON = Error(ERR, "CLIENT UNBLOCK reason should be TIMEOUT or ERROR")


def ready_keys(entry: list, watched: dict) -> list[tuple[int, bytes]]:
    """The ``(db, key)``s in ``watched`` that ``entry`` may have made exist."""
    name = entry[1]
    at = _KEY_AT.get(name)
    if at is not None:
        key = (entry[0], entry[at])
        return [key] if key in watched else []
    if name == "COPY":  # COPY a b DB <dst> [REPLACE]
        key = (int(entry[5]), entry[3])
        return [key] if key in watched else []
    if name == "MOVE":  # MOVE k <dst>
        key = (int(entry[3]), entry[2])
        return [key] if key in watched else []
    if name == "SWAPDB":  # every waiter of both dbs, as Redis's scanDatabaseForReadyKeys
        dbs = (int(entry[2]), int(entry[3]))
        return [key for key in watched if key[0] in dbs]
    return []


class Waiter:
    __slots__ = ("client", "pending", "spec", "db", "active")

    def __init__(self, client: int, pending: Pending, spec: BlockSpec) -> None:
        self.client = client
        self.pending = pending
        self.spec = spec
        self.db = pending.db
        self.active = True  # False once answered or forgotten (the heap forgets lazily)


class Blocking:
    def __init__(self, executor, work: WorkQueue, limit: int = MAX_BLOCKED_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.executor = executor
        self.work = work
        self.limit = limit
        self.clock = clock  # seconds; tests give a fake one
        self.by_key: dict[tuple[int, bytes], dict[Waiter, None]] = {}  # in blocking order
        self.by_client: dict[int, Waiter] = {}
        self.deadlines: list = []  # heap of (deadline, n, waiter)
        self._order = itertools.count()
        self.ready: collections.deque[tuple[int, bytes]] = collections.deque()
        self._ready_set: set[tuple[int, bytes]] = set()
        self.done: list[tuple[int, Pending]] = []  # (owner, message) answered, not yet replied
        self.served = self.timed_out = self.unblocked = 0
        # Told (command name, ns spent serving, failed) of each answer, served, timed out or
        # unblocked: a blocked command counts in commandstats and latencystats when it ends, as
        # Redis counts it.
        self.on_answer: Callable[[str, int, bool], None] | None = None
        work.on_drop_blocked = self.forget
        work.on_close_blocked = self.release
        executor.block_mode = True

    @property
    def waiting(self) -> bool:
        return bool(self.by_client)

    def info(self) -> dict[str, dict]:
        """INFO fields, by section."""
        return {"clients": {"blocked_clients": len(self.by_client),
                            "blocked_clients_limit": self.limit,
                            "total_blocking_keys": len(self.by_key)},
                "stats": {"blocking_pops_served": self.served,
                          "blocking_pops_timed_out": self.timed_out,
                          "blocking_pops_unblocked": self.unblocked}}

    # -- blocking and forgetting ----------------------------------------------------------------

    def block(self, client: int, pending: Pending, spec: BlockSpec) -> int:
        """The head client's request at ``len(pending.results)`` waits; returns how many of its
        requests ran in this turn (that one included), for the cycle's budget."""
        ran = len(pending.results) - pending.pos + 1
        pending.pos = len(pending.results)
        waiter = Waiter(client, pending, spec)
        by_key = self.by_key
        for key in spec.keys:
            waiters = by_key.get((waiter.db, key))
            if waiters is None:
                waiters = by_key[(waiter.db, key)] = {}
            waiters[waiter] = None
        self.by_client[client] = waiter
        if spec.timeout_ms:
            deadline = self.clock() + spec.timeout_ms / 1000.0
            heapq.heappush(self.deadlines, (deadline, next(self._order), waiter))
            if len(self.deadlines) > 2 * len(self.by_client) + 1024:
                self.deadlines = [d for d in self.deadlines if d[2].active]  # answered ones
                heapq.heapify(self.deadlines)
        self.work.block(client)
        if client in self.work.closing:  # it sent EOF: answered now, as at its timeout
            self.release(client)
        if len(self.by_client) >= self.limit:
            self.executor.block_mode = Error(ERR, (
                f"too many blocked clients (blocked_clients_limit {self.limit}): this blocking "
                "pop found nothing to pop and was not allowed to wait; retry later"))
        return ran

    def release(self, client: int) -> None:
        """Answer the client's blocking pop nil now, as at its timeout (it sent EOF)."""
        waiter = self.by_client.get(client)
        if waiter is not None:
            self.timed_out += 1
            self._answer(waiter, None, None, 0)

    def unblock(self, client: int, reply: Error | None) -> bool:
        """CLIENT UNBLOCK: answer the client's blocking pop ``reply`` (None: nil, as at its
        timeout) now; False if it does not wait here."""
        waiter = self.by_client.get(client)
        if waiter is None:
            return False
        self.unblocked += 1
        self._answer(waiter, reply, None, 0, failed=True)
        return True

    def forget(self, client: int) -> None:
        """The client is gone (WorkQueue dropped it): never serve it."""
        waiter = self.by_client.pop(client, None)
        if waiter is not None:
            self._unregister(waiter)

    def _unregister(self, waiter: Waiter) -> None:
        """Off every key it waits on; blocking is allowed again below the limit."""
        waiter.active = False
        by_key = self.by_key
        for key in waiter.spec.keys:
            waiters = by_key[(waiter.db, key)]
            del waiters[waiter]
            if not waiters:
                del by_key[(waiter.db, key)]
        if len(self.by_client) < self.limit:
            self.executor.block_mode = True

    # -- serving --------------------------------------------------------------------------------

    def watch(self, run_one: Callable) -> Callable:
        """``run_one`` (the log actor's, one request) followed by serving the keys it made
        ready; the cycle uses it while anyone waits."""
        executor = self.executor

        def run_one_watching(pending: Pending, item, writes: list):
            # The same list until the cycle takes it (LogActor._cycle, after every request ran).
            entries = executor.propagated
            mark = len(entries)
            result = run_one(pending, item, writes)
            if len(entries) > mark and self.by_key:
                self._signal(mark)
                if self.ready:
                    self._serve(writes)
            return result
        return run_one_watching

    def serve_after(self, mark: int, writes: list) -> None:
        """Serve the waiters on keys that the entries since ``mark`` (one transaction's, run as
        a whole) left ready."""
        if self.by_key and len(self.executor.propagated) > mark:
            self._signal(mark)
            if self.ready:
                self._serve(writes)

    def _signal(self, mark: int) -> None:
        """Note the watched keys the entries propagated since ``mark`` may have made ready."""
        entries, watched = self.executor.propagated, self.by_key
        ready, seen = self.ready, self._ready_set
        for i in range(mark, len(entries)):
            entry = entries[i]
            if entry[1] in _CREATES:
                for key in ready_keys(entry, watched):
                    if key not in seen:
                        seen.add(key)
                        ready.append(key)

    def _serve(self, writes: list) -> None:
        """Serve the ready keys in order; a served BLMOVE's push may make another ready."""
        executor, ready = self.executor, self.ready
        while ready:
            db_key = ready.popleft()
            self._ready_set.discard(db_key)
            db, key = db_key
            skipped = 0  # waiters for the other kind, left waiting at the head
            while True:  # first blocked, first served; O(served), not O(waiters), per key
                waiters = self.by_key.get(db_key)
                if waiters is None or skipped >= len(waiters):
                    break
                waiter = next(itertools.islice(waiters, skipped, None))
                mark = len(executor.propagated)
                start = time.perf_counter_ns()
                reply = executor.serve_blocked(db, waiter.spec, key)
                spent = time.perf_counter_ns() - start
                if reply is EMPTY:
                    break
                if reply is OTHER_KIND:
                    skipped += 1
                    continue
                self.served += 1
                self._answer(waiter, reply, writes, spent)  # takes it out of ``waiters``
                if len(executor.propagated) > mark:
                    self._signal(mark)

    def expire(self) -> None:
        """Answer nil to the waiters whose timeout passed."""
        heap, now = self.deadlines, self.clock()
        while heap and heap[0][0] <= now:
            waiter = heapq.heappop(heap)[2]
            if waiter.active:
                self.timed_out += 1
                self._answer(waiter, None, None, 0)

    def max_wait(self) -> float | None:
        """Seconds until the earliest deadline (None: no deadline)."""
        if not self.deadlines:
            return None
        return max(0.0, self.deadlines[0][0] - self.clock())

    def _answer(self, waiter: Waiter, reply, writes: list | None, spent_ns: int,
                failed: bool = False) -> None:
        """Give the waiting request its result; the client goes back in turn, its message to
        this cycle's replies if that was its last request."""
        if self.on_answer is not None:
            self.on_answer(waiter.spec.name, spent_ns, failed)
        client, pending = waiter.client, waiter.pending
        del self.by_client[client]
        self._unregister(waiter)
        results = pending.results
        if writes is not None and type(reply) is not Error:
            writes.append(results)
            writes.append(len(results))
        results.append(reply)
        pending.pos += 1
        if pending.pos == pending.count:
            self.work.fifos[client].popleft()
            self.done.append((client >> CLIENT_BITS, pending))
        self.work.unblock(client)

    def take_done(self, finished: dict[int, list[Pending]]) -> None:
        """Move the answered messages into this cycle's ``finished`` (per front connection)."""
        for owner, pending in self.done:
            finished.setdefault(owner, []).append(pending)
        self.work.messages -= len(self.done)
        self.done = []


def client_unblock(blocking: Blocking, client: int, args, count_error: Callable[[Error], Error]):
    """CLIENT UNBLOCK id [TIMEOUT|ERROR] from ``client`` (its key): 1 if the client ``id`` of
    the same front connection waited and was answered, else 0; Redis's errors, the reason
    checked before the id. ``args`` start at UNBLOCK (the front forwards only that subcommand,
    with at least an id); ``count_error`` counts the UNBLOCKED error its waiter gets."""
    if len(args) not in (2, 3) or args[0].upper() != b"UNBLOCK":
        shown = args[0][:128].decode("utf-8", "replace") if args else ""
        return Error(ERR, f"unknown subcommand or wrong number of arguments for '{shown}'. "
                          "Try CLIENT HELP.")
    error = False
    if len(args) == 3:
        reason = args[2].upper()
        if reason not in (b"TIMEOUT", b"ERROR"):
            return _BAD_REASON
        error = reason == b"ERROR"
    target = parse_ll(args[1])
    if target is None:
        return _NOT_INTEGER
    key = (client & ~CLIENT_MASK) | target  # the same front connection's client ``target``
    if not 0 < target <= CLIENT_MASK or key not in blocking.by_client:
        return 0
    return int(blocking.unblock(key, count_error(UNBLOCKED) if error else None))
