"""Transactions in the log actor: WATCH/UNWATCH per client, and atomic messages run in one go.

Design:
- A transaction reaches the log actor as one message marked atomic (protocol 2 header
  ``"multi": true``, decoded as ``AtomicMessage``; docs/protocol.md). ``run_atomic`` runs all its
  requests in the turn that opens it: the quantum and the cycle's budgets never cut it (they
  are checked between messages, and an atomic message is bounded by the message limits:
  MAX_BATCH_LENGTH requests, MAX_MESSAGE_BYTES). Its writes are propagated in the same cycle, so
  they land in that cycle's one AOF record (node/aof/format.py): replay applies all or none.
- Errors inside run in place (the reply is the list of the requests' replies, as EXEC's).
- WATCH state lives in ``WatchTable`` (node/store/watch.py), keyed by the client key the work
  queue gives the message (``LogActor._client``, set for each turn). EXEC checks it and ends it;
  an aborted transaction's reply is one nil value (``[0, nil]``, EXEC's null array) and nothing
  of it runs.
- Past maxmemory a block holding a denyoom command is refused whole (EXECABORT quoting OOM),
  as Redis checks EXEC, and so is a block holding a write while writes are refused (MISCONF,
  NOREPLICAS); the RESP front, which queues the block, also answers OOM at queue time
  while the log actor says it is out of memory (``tell_front_state``).
- Blocking commands inside a transaction would not block: the block runs in one turn and
  nothing here waits (a blocking pop must check ``pending.atomic`` to answer at once).
"""
from __future__ import annotations

from aofnode import protocol as codec
from aofnode.log.work import Pending
from aofnode.protocol.commands import COMMANDS
from aofnode.runtime import messages as m

_DENYOOM = frozenset(name for name, spec in COMMANDS.items() if spec.denyoom)

__all__ = ["install", "run_atomic", "exec_abort", "tell_front_state", "OOM"]


def install(actor) -> None:
    """WATCH and UNWATCH as executor commands that know the client of the running turn."""
    watches = actor.watches

    def watch(db: int, args):
        result = watches.watch(actor._client, db, args)
        return result if type(result) is str else codec.Error(*result)

    def unwatch(db: int, args):
        watches.forget(actor._client)
        return "OK"

    actor.executor.add_handler("WATCH", watch)
    actor.executor.add_handler("UNWATCH", unwatch)
    base_info = actor.executor.info_provider

    def info():
        sections = base_info()
        sections.setdefault("clients", {}).update(watches.info())
        return sections

    actor.executor.info_provider = info


def exec_abort(reason: codec.Error) -> codec.Error:
    """EXEC refused as a whole before anything ran (Redis's execCommandAbort)."""
    return codec.Error(codec.EXECABORT, f"Transaction discarded because of: {reason.code} "
                                        f"{reason.message}")


NOREPLICAS = codec.Error("NOREPLICAS", "Not enough good replicas to write.")
_WRITES = frozenset(name for name, spec in COMMANDS.items() if spec.write)
# Redis's text (shared.oomerr), which EXECABORT quotes and the RESP front answers at queue time.
OOM = codec.Error(codec.OOM, "command not allowed when used memory > 'maxmemory'.")


def _oom_refused(actor, pending: Pending) -> bool:
    """Redis checks EXEC as one command with the queued commands' flags: past maxmemory (after
    eviction), a block holding any denyoom command is refused whole."""
    executor = actor.executor
    if not executor.maxmemory:
        return False
    for item in pending.items:
        if type(item) is not codec.Error and item[0] in _DENYOOM:
            return executor._make_room(item[0]) is not None
    return False


def _writes_refused(actor, pending: Pending) -> codec.Error | None:
    """MISCONF or NOREPLICAS for a block holding a write, refused whole at EXEC (Redis checks
    EXEC with the queued commands' flags)."""
    refusal = actor._refusal
    if refusal is None:
        return None
    for item in pending.items:
        if type(item) is not codec.Error and item[0] in _WRITES:
            return refusal
    return None


def tell_front_state(actor) -> None:
    """What the fronts act on, told when it changes (and at each connection), as
    ``Stats({"oom": 0|1, "latency_tracking": 0|1})`` sent before the cycle's replies, so that
    the reply to the CONFIG SET that changed it never overtakes it:
    - ``oom``: the RESP front queues MULTI's commands itself, and Redis answers OOM to a denyoom
      command queued past maxmemory. Under allkeys-lru, over the limit at the end of a cycle
      means eviction could not make room;
    - ``latency_tracking``: the RESP front times the commands it answers itself for INFO
      latencystats only while it is on (node/log/latencystats.py)."""
    executor = actor.executor
    oom = int(bool(executor.maxmemory) and
              executor.keyspace.used_memory + executor.memory_baseline > executor.maxmemory)
    state = (oom, int(actor.intro.latencystats.enabled))
    told = actor.front_told
    for link in actor.fronts.links:
        if link.up and told.get(link.conn) != state:
            told[link.conn] = state
            actor.fronts._send(link, m.Stats({"oom": oom, "latency_tracking": state[1]}))


def run_atomic(actor, pending: Pending, writes: list) -> int:
    """Run the whole transaction now, or abort it (its watch broke); return how many ran.
    A blocking pop inside the block never waits, as in Redis: it answers as at its timeout.
    Clients blocked on keys the block pushed to are served after the whole block, as Redis
    serves them after EXEC, and only from keys still ready then (LPUSH then DEL wakes nobody)."""
    count = pending.count
    pending.pos = count
    refused = OOM if _oom_refused(actor, pending) else _writes_refused(actor, pending)
    if refused is not None:
        actor.watches.forget(actor._client)
        pending.failed = actor.intro.error(exec_abort(refused))
        return 1
    if not actor.watches.exec_allowed(actor._client, pending.watched):
        pending.is_batch = False
        pending.results = [None]
        return 1
    results = pending.results
    executor = actor.executor
    propagated = executor.propagated
    start = len(propagated)
    monitors = actor.monitors
    run_one = monitors.transaction(actor._run_one, pending) if monitors.keys else actor._run_one
    if actor.tracking.clients:  # reads noted for CLIENT TRACKING (node/log/tracking.py)
        run_one = actor.tracking.wrap(run_one)
    mode, executor.block_mode = executor.block_mode, None
    actor.tx_running = True  # SHUTDOWN refuses to run inside (node/log/busy.py)
    try:
        for item in pending.items:
            results.append(run_one(pending, item, writes))
    finally:
        executor.block_mode = mode
        actor.tx_running = False
    if monitors.keys:
        monitors.feed(pending.db, actor._client, "EXEC", [])
    if len(propagated) - start > 1:  # never split over two AOF records (node/aof/format.py)
        actor.tx_units.append((start, len(propagated)))
    actor.blocking.serve_after(start, writes)
    limit = actor.config.client_output_limit
    if pending.reply_bytes > limit:
        # It ran (a transaction is never cut), but its replies are not built.
        pending.results = []
        pending.failed = codec.Error(codec.TOOBIG, (
            f"the transaction ran, but its replies passed client-output-limit ({limit} bytes); "
            "they are not sent"))
    return max(1, count)
