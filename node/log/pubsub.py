"""Pub/sub in the log actor: who listens to what, and PUBLISH's fan-out to every front.

Design:
- The registry lives here, in the one process every front talks to, so PUBLISH runs in order
  with the writes and its reply (the number of receivers, across fronts) is exact at that point,
  as in Redis. A subscriber is a ``WorkQueue`` key (node/log/work.py): its front connection in
  the high bits, the front's client number in the low ones.
- (P)SUBSCRIBE and (P)UNSUBSCRIBE answer a list of ``[kind, name, count]`` triples, one per
  channel or pattern; the RESP front makes each a reply of its own (a push in RESP3), as Redis
  does (node/fronts/resp_pubsub.py).
- PUBLISH queues one ``Deliver`` per front connection and per (channel, pattern) with the
  front's client numbers; ``take`` hands them to the links after the cycle's run. A front that
  is not reading (its link past ``channel_output_limit``) loses its deliveries, counted in
  ``pubsub_dropped_deliveries``: the log actor never waits for a slow front.
- Bounds: ``MAX_PER_CLIENT`` channels and patterns per subscriber (an error past it). A client
  is dropped from the registry when its front says ``Forget`` and with its front connection.
- Subscribing is for RESP connections: the ZeroMQ front takes deliveries on its PUB socket
  only when that exists, so a ZeroMQ client's SUBSCRIBE is refused (docs/protocol.md).
- Nothing here is written to the AOF: Redis does not persist pub/sub either.
"""
from __future__ import annotations

from typing import Callable

from aofnode.log.work import CLIENT_BITS, CLIENT_MASK
from aofnode.protocol.errors import ERR, Error
from aofnode.runtime import messages as m
from aofnode.store.pattern import compile_glob

__all__ = ["PubSub", "MAX_PER_CLIENT", "COMMANDS"]

MAX_PER_CLIENT = 10_000
COMMANDS = ("SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "PUBLISH", "PUBSUB")
_TOO_MANY = Error(ERR, f"a client may hold at most {MAX_PER_CLIENT} channels and patterns (aofnode)")
_NOT_RESP = Error(ERR, "SUBSCRIBE and PSUBSCRIBE need a RESP connection (--resp-bind); ZeroMQ "
                       "clients use the PUB socket (--pub-bind, docs/protocol.md)")


class PubSub:
    def __init__(self) -> None:
        self.channels: dict[bytes, set[int]] = {}
        self.patterns: dict[bytes, set[int]] = {}
        self.clients: dict[int, tuple[set[bytes], set[bytes]]] = {}  # key -> (channels, patterns)
        self.client = 0  # the key of the client whose request runs (set by the log actor)
        self.subscribable: Callable[[int], bool] = lambda key: True
        self.out: list[tuple[int, m.Deliver]] = []  # (front connection, notice) to send
        # With --pub-bind: the ZeroMQ front's connection now (None: not connected), which gets
        # every message for its PUB socket (node/fronts/zmq_pub.py), not counted as a receiver.
        self.mirror: Callable[[], int | None] | None = None
        self.published = 0

    def handlers(self) -> dict:
        return {"SUBSCRIBE": self._subscribe, "PSUBSCRIBE": self._psubscribe,
                "UNSUBSCRIBE": self._unsubscribe, "PUNSUBSCRIBE": self._punsubscribe,
                "PUBLISH": self._publish, "PUBSUB": self._pubsub}

    def _own(self, key: int) -> tuple[set[bytes], set[bytes]]:
        mine = self.clients.get(key)
        if mine is None:
            mine = self.clients[key] = (set(), set())
        return mine

    def _count(self, key: int) -> int:
        mine = self.clients.get(key)
        return len(mine[0]) + len(mine[1]) if mine else 0

    def _add(self, args: list, index: dict[bytes, set[int]], which: int, kind: bytes):
        key = self.client
        if not self.subscribable(key):
            return _NOT_RESP
        mine = self._own(key)
        out = []
        for name in args:
            if name not in mine[which]:
                if len(mine[0]) + len(mine[1]) >= MAX_PER_CLIENT:
                    return _TOO_MANY
                mine[which].add(name)
                index.setdefault(name, set()).add(key)
            out.append([kind, name, len(mine[0]) + len(mine[1])])
        return out

    def _remove(self, args: list, index: dict[bytes, set[int]], which: int, kind: bytes):
        key = self.client
        mine = self.clients.get(key)
        names = list(args) if args else sorted(mine[which]) if mine else []
        if not names:
            return [[kind, None, self._count(key)]]
        out = []
        for name in names:
            if mine is not None and name in mine[which]:
                mine[which].discard(name)
                _unindex(index, name, key)
            out.append([kind, name, self._count(key)])
        if mine is not None and not mine[0] and not mine[1]:
            del self.clients[key]
        return out

    def _subscribe(self, _db: int, args: list):
        return self._add(args, self.channels, 0, b"subscribe")

    def _psubscribe(self, _db: int, args: list):
        return self._add(args, self.patterns, 1, b"psubscribe")

    def _unsubscribe(self, _db: int, args: list):
        return self._remove(args, self.channels, 0, b"unsubscribe")

    def _punsubscribe(self, _db: int, args: list):
        return self._remove(args, self.patterns, 1, b"punsubscribe")

    def _publish(self, _db: int, args: list):
        return self.publish(args[0], args[1])

    def publish(self, channel: bytes, message: bytes) -> int:
        """Queue the deliveries of one message; the number of receivers."""
        receivers = 0
        keys = self.channels.get(channel)
        if keys:
            receivers += len(keys)
            self._queue(keys, channel, message, None)
        for pattern, keys in self.patterns.items():
            if compile_glob(pattern)(channel):
                receivers += len(keys)
                self._queue(keys, channel, message, pattern)
        self.published += 1
        if self.mirror is not None:
            conn = self.mirror()
            if conn is not None:
                self.out.append((conn, m.Deliver([], channel, message, None)))
        return receivers

    def _queue(self, keys: set[int], channel: bytes, message: bytes, pattern: bytes | None) -> None:
        per_front: dict[int, list[int]] = {}
        for key in keys:
            per_front.setdefault(key >> CLIENT_BITS, []).append(key & CLIENT_MASK)
        for conn, clients in per_front.items():
            self.out.append((conn, m.Deliver(clients, channel, message, pattern)))

    def take(self) -> list[tuple[int, m.Deliver]]:
        out, self.out = self.out, []
        return out

    def _pubsub(self, _db: int, args: list):
        sub = args[0].upper()
        if sub == b"CHANNELS" and len(args) <= 2:
            match = compile_glob(args[1]) if len(args) == 2 else None
            return [c for c in self.channels if match is None or match(c)]
        if sub == b"NUMSUB":
            out: list = []
            for channel in args[1:]:
                out += [channel, len(self.channels.get(channel, ()))]
            return out
        if sub == b"NUMPAT" and len(args) == 1:
            return len(self.patterns)
        if sub in (b"CHANNELS", b"NUMPAT"):
            return Error(ERR, f"wrong number of arguments for 'pubsub|{sub.lower().decode()}' command")
        shown = args[0][:128].decode("utf-8", "replace")
        return Error(ERR, f"unknown subcommand '{shown}'. Try PUBSUB HELP.")

    def forget(self, key: int) -> None:
        """Drop a client's subscriptions (it is gone)."""
        mine = self.clients.pop(key, None)
        if mine is None:
            return
        for name in mine[0]:
            _unindex(self.channels, name, key)
        for name in mine[1]:
            _unindex(self.patterns, name, key)

    def forget_owner(self, base: int) -> None:
        """Drop every client of a front connection (it is gone)."""
        for key in [k for k in self.clients if k & ~CLIENT_MASK == base]:
            self.forget(key)

    def info(self) -> dict:
        return {"pubsub_channels": len(self.channels), "pubsub_patterns": len(self.patterns),
                "pubsub_clients": len(self.clients), "pubsub_published": self.published}


def _unindex(index: dict[bytes, set[int]], name: bytes, key: int) -> None:
    keys = index.get(name)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[name]
