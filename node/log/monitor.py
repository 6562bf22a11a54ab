"""MONITOR in the log actor: one line per command run, to every monitoring RESP connection.

Design:
- MONITOR is forwarded by the RESP front like SUBSCRIBE, so it registers the client in order
  with the other commands (``_monitor``); the front then writes every ``Monitor`` notice it
  gets for that client to its socket (node/fronts/resp_monitor.py), bounded by the pubsub
  output limits.
- The hot path pays nothing while nobody monitors: the log actor tests ``keys`` once per cycle
  and only then runs its requests through ``wrap``'s function; a transaction tests it once per
  EXEC, and a script's commands through the executor's ``monitor_script`` hook, None then.
- What is fed follows Redis 7.0 (replication.c, replicationFeedMonitors): every command but the
  administrative ones (``SKIPPED``); a script's commands as ``lua``, after its EVAL/FCALL line;
  a transaction as ``multi``, its commands, ``exec``. The command name is shown in lower case
  (the front checked and upper-cased it; clients send it in lower case). Arguments of AUTH and
  HELLO's AUTH are redacted by the front, which answers those itself.
- Each notice entry is ``[time, db, source, argv]``: ``source`` is the client number on the
  receiving front (so it can show the address), ``OTHER`` for a client of another front,
  ``LUA`` for a script's command. Notices go out once per cycle, before the replies.
- Bounds: the registry holds at most one key per connection; a front past
  ``channel_output_limit`` loses its notices, as it loses pub/sub deliveries (node/log/links.py).
- RESP only: a ZeroMQ client's MONITOR is refused (docs/protocol.md).
"""
from __future__ import annotations

import time
from typing import Callable

from aofnode import protocol as codec
from aofnode.log.work import CLIENT_BITS, CLIENT_MASK
from aofnode.protocol.errors import ERR, Error
from aofnode.runtime import messages as m
from aofnode.store.blocking import WouldBlock

__all__ = ["Monitors", "SKIPPED", "OTHER", "LUA"]

OTHER, LUA = -1, -2
# Redis's CMD_ADMIN and CMD_SKIP_MONITOR commands that aofnode has: never shown.
SKIPPED = frozenset(("MONITOR", "CLIENT", "CONFIG", "DEBUG", "BGREWRITEAOF", "SHUTDOWN", "SLOWLOG",
                     "LATENCY"))
# Shown before they run, so their script's own commands follow them (scriptPrepareForRun).
_BEFORE = frozenset(("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"))
_IN_MULTI = Error(ERR, "MONITOR isn't allowed for DENY BLOCKING client")
_NOT_RESP = Error(ERR, "MONITOR needs a RESP connection (--resp-bind); it is not served on "
                       "ZeroMQ (docs/protocol.md)")


class Monitors:
    def __init__(self, actor) -> None:
        self.actor = actor
        self.keys: set[int] = set()  # the monitoring clients' keys (node/log/work.py)
        self.entries: list[tuple[float, int, int, list]] = []  # this cycle's (time, db, source key, argv)
        self.subscribable: Callable[[int], bool] = lambda key: True
        self.lines = 0

    def handlers(self) -> dict:
        return {"MONITOR": self._monitor}

    def _monitor(self, _db: int, _args: list):
        key = self.actor._client
        if not self.subscribable(key):
            return _NOT_RESP
        if self.actor.tx_running:  # a transaction's client expects one reply per command
            return _IN_MULTI
        self.keys.add(key)
        self.actor.executor.monitor_script = self._script
        return "OK"

    def forget(self, key: int) -> None:
        self.keys.discard(key)
        if not self.keys:
            self.actor.executor.monitor_script = None
            self.entries = []

    def forget_owner(self, base: int) -> None:
        for key in [k for k in self.keys if k & ~CLIENT_MASK == base]:
            self.forget(key)

    # -- feeding --------------------------------------------------------------------------------

    def feed(self, db: int, source: int, name: str, args: list) -> None:
        self.entries.append((time.time(), db, source, [name.lower().encode(), *args]))

    def _script(self, db: int, argv: list) -> None:
        self.entries.append((time.time(), db, LUA, argv))

    def wrap(self, run_one):
        """``run_one`` that feeds each request it runs (while someone monitors)."""
        if not self.keys:
            return run_one
        actor, feed = self.actor, self.feed

        def run(pending, item, writes):
            if type(item) is codec.Error:
                return run_one(pending, item, writes)
            name, args = item
            if name in SKIPPED:
                return run_one(pending, item, writes)
            if name in _BEFORE:
                feed(pending.db, actor._client, name, args)
                return run_one(pending, item, writes)
            db = pending.db
            try:
                reply = run_one(pending, item, writes)
            except WouldBlock:  # shown once, now: it is served later without running again
                feed(db, actor._client, name, args)
                raise
            feed(pending.db if name == "SELECT" else db, actor._client, name, args)
            return reply
        return run

    def transaction(self, run_one, pending):
        """``run_one`` for a transaction's commands, after its ``multi`` line."""
        self.feed(pending.db, self.actor._client, "MULTI", [])
        return self.wrap(run_one)

    def take(self) -> list[tuple[int, m.Monitor]]:
        """This cycle's notices, one per front connection with monitors."""
        entries, self.entries = self.entries, []
        self.lines += len(entries)
        per_front: dict[int, list[int]] = {}
        for key in self.keys:
            per_front.setdefault(key >> CLIENT_BITS, []).append(key & CLIENT_MASK)
        out = []
        for conn, clients in per_front.items():
            made = [[t, db, (source & CLIENT_MASK if source >= 0 and source >> CLIENT_BITS == conn
                             else source if source < 0 else OTHER), argv]
                    for t, db, source, argv in entries]
            out.append((conn, m.Monitor(clients, made)))
        return out

    def info(self) -> dict:
        return {"monitor_clients": len(self.keys), "monitor_lines": self.lines}
