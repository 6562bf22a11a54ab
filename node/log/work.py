"""The log actor's queue of client messages: one FIFO per client, served round-robin.

Design (one message of 10,000 SETs of 6 KiB once held every other client for 0.8 s):
- ``add`` files each message of a ``Batch`` under its client's key; a client's messages stay
  in order, and nothing else is ordered (clients are independent, as in Redis).
- The log actor's cycle takes clients in turn (``turns``): each gets up to a quantum of
  requests, across its messages, then goes to the back. A message larger than a quantum is
  executed over several rounds, and over several cycles if the cycle's budget runs out:
  other clients' requests run in between, exactly as other Redis clients run between the
  commands of a pipeline. Its reply is still one reply, sent when its last request ran (and,
  under ``always``, after the fsync of that cycle).
- A ``Pending`` message is decoded and validated at its first turn, once, by the codec (the
  front forwards the client's bytes as they came), and keeps its position, its db and its
  results so far.
- Several fronts share the one queue, so that every client of every front gets the
  same share. Each front numbers its clients from 1, so a key is the front's client number in
  its low ``CLIENT_BITS`` and its owner, the log actor's number for that front connection, above
  them (``owner_base``). The first connection is owner 0, whose keys are the front's own
  numbers. An owner's keys can be parked (its front is not reading replies: back-pressure),
  which takes them out of the turns without touching the hot path, and dropped as a whole (its
  front is gone).
- A client whose head message waits in a blocking pop (node/log/blocking.py) is ``blocked``:
  out of the turns, its FIFO kept, so its later messages queue behind it (as a Redis
  connection's later commands do) while every other client goes on. Dropping it (cut off, or
  its front gone) tells ``on_drop_blocked``, so nobody is served a pop whose reply would go
  nowhere.
"""
from __future__ import annotations

import collections

from typing import Callable

from aofnode.runtime import messages as m
from aofnode import protocol as codec

__all__ = ["WorkQueue", "Pending", "CheckedPending", "CLIENT_BITS", "CLIENT_MASK", "owner_base", "owner_of"]

# 2^48 client numbers per front connection: a front that gave a new number to a new client
# every microsecond would take 8.9 years to reach it. A larger number from a front is folded
# into its own range (``add`` masks it), never into another front's.
CLIENT_BITS = 48
CLIENT_MASK = (1 << CLIENT_BITS) - 1


def owner_base(owner: int) -> int:
    """The key of client 0 of front connection ``owner``."""
    return owner << CLIENT_BITS


def owner_of(key: int) -> int:
    return key >> CLIENT_BITS


class Pending:
    """One client message in the log actor: where its execution stands."""

    __slots__ = ("seq", "body", "is_batch", "items", "count", "db", "pos", "results",
                 "reply_bytes", "failed", "bytes_per_item", "atomic", "watched", "resp")

    def __init__(self, seq: int, body: bytes) -> None:
        self.seq = seq
        self.body = body  # the client's bytes as they came (decoded once, at the first turn)
        self.is_batch = False
        self.items: tuple = ()  # codec Requests, and Errors in place of invalid ones
        self.count = -1  # requests in the message, known at the first turn
        self.db = 0  # the header's db; a SELECT in the message changes it for the rest
        self.pos = 0
        # Its requests' results so far: values and codec.Errors, made into its reply (in its
        # front's wire) once it is done and its cycle's writes are durable (node/log/replies.py).
        self.results: list = []
        self.reply_bytes = 0  # bulk bytes of its results so far (bounded: node/log/actor.py)
        self.failed: codec.Error | None = None  # the whole message's error (refused, or cut short)
        self.bytes_per_item = 0.0  # the body's size over its requests: the cycle's input budget
        self.atomic = False  # a transaction: run in one go (node/log/transactions.py)
        self.watched = False  # ... sent after WATCH: abort it if the watch state is gone
        self.resp = 0  # 2 or 3: its replies are wanted as RESP bytes (node/log/replies.py)

    # The RESP front checks names and arities itself (node/fronts/resp_route.py): its messages
    # are ``CheckedPending``s, decoded without checking them again.
    checked = False

    @property
    def done(self) -> bool:
        return self.failed is not None or self.pos == self.count

    def open(self) -> bool:
        """Decode and validate the message (protocol/server.py, the only decode it gets); False
        if it is refused as a whole (``failed`` then holds the error)."""
        body, self.body = self.body, b""
        decoded = codec.decode_message(body, self.checked)
        if type(decoded) is codec.Error:
            self.failed, self.count = decoded, 0
            return False
        self.is_batch, self.items, self.db = decoded.is_batch, decoded.items, decoded.db
        self.resp = decoded.resp
        self.count = len(self.items)
        self.bytes_per_item = len(body) / max(1, self.count)
        if type(decoded) is codec.AtomicMessage:
            self.atomic, self.watched = True, decoded.watched
        return True

    def take(self, n: int) -> tuple:
        """The next ``n`` requests (fewer at the end)."""
        return self.items[self.pos:self.pos + n]


class CheckedPending(Pending):
    """A message from a front that checked its requests' names and arities (the RESP front)."""

    __slots__ = ()
    checked = True


class WorkQueue:
    def __init__(self) -> None:
        self.fifos: dict[int, collections.deque[Pending]] = {}
        self.turns: collections.deque[int] = collections.deque()  # clients with work, in turn
        self.parked: dict[int, list[int]] = {}  # owner base -> its keys with work, out of turn
        self.messages = 0  # queued, parked ones included
        self.blocked: set[int] = set()  # clients out of turn until a key is ready (blocking.py)
        self.on_drop_blocked: Callable[[int], None] | None = None  # the blocking registry's
        # Clients that sent EOF with work queued: it runs, but they never wait in a blocking pop.
        # Pruned of clients with no work left when it grows, not on the hot path.
        self.closing: set[int] = set()
        self.on_close_blocked: Callable[[int], None] | None = None

    def __bool__(self) -> bool:
        """True if some work can run now (parked work cannot)."""
        return bool(self.turns)

    def add(self, batch: m.Batch, base: int = 0, pending: type[Pending] = Pending) -> None:
        """File the messages of ``batch`` from front connection ``base`` (``owner_base``), each
        as a ``pending`` (``CheckedPending`` from a front that checked them)."""
        fifos, clients = self.fifos, batch.clients
        turns = self.turns if base not in self.parked else self.parked[base]
        # Owner 0's keys are the front's own numbers when they are in range: a min and a max per
        # batch cost about half of what masking every key in the loop did (~10 vs ~20 ns a
        # message, next to ~180 ns for the rest of ``add``).
        if base or not clients or min(clients) < 0 or max(clients) > CLIENT_MASK:
            clients = [(client & CLIENT_MASK) | base for client in clients]
        for seq, (key, body) in enumerate(zip(clients, batch.bodies), batch.first_seq):
            fifo = fifos.get(key)
            if fifo is None:
                fifo = fifos[key] = collections.deque()
                turns.append(key)
            fifo.append(pending(seq, body))
        self.messages += len(batch.bodies)

    def head(self) -> tuple[int, collections.deque[Pending]]:
        client = self.turns[0]
        return client, self.fifos[client]

    def finish_turn(self, client: int) -> None:
        """The head client's turn ends: to the back if it has work left, else out."""
        self.turns.popleft()
        if self.fifos[client]:
            self.turns.append(client)
        else:
            del self.fifos[client]

    def forget(self, key: int) -> int:
        """Drop a client's queued messages (it was cut off); return how many."""
        fifo = self.fifos.pop(key, None)
        if fifo is None:
            return 0
        if key in self.blocked:
            self._drop_blocked(key)
        else:
            parked = self.parked.get(key & ~CLIENT_MASK)
            (parked if parked is not None else self.turns).remove(key)  # O(clients): on a cut-off
        self.messages -= len(fifo)
        return len(fifo)

    def close(self, key: int) -> None:
        """The client sent EOF: its queued messages still run, but none may wait for a key (one
        waiting now is answered as at its timeout), so it never holds its connection open."""
        if key not in self.fifos:
            return
        if len(self.closing) >= 1024:
            self.closing = {k for k in self.closing if k in self.fifos}
        self.closing.add(key)
        if key in self.blocked and self.on_close_blocked is not None:
            self.on_close_blocked(key)

    def block(self, key: int) -> None:
        """The head client's turn ends with its head message waiting for a key."""
        self.turns.popleft()
        self.blocked.add(key)

    def unblock(self, key: int) -> None:
        """Its head message was answered (and popped if it is done): back in turn if it has
        more, parked with its front if that one is parked."""
        self.blocked.discard(key)
        if not self.fifos[key]:
            del self.fifos[key]
            return
        parked = self.parked.get(key & ~CLIENT_MASK)
        (parked if parked is not None else self.turns).append(key)

    def _drop_blocked(self, key: int) -> None:
        self.blocked.discard(key)
        if self.on_drop_blocked is not None:
            self.on_drop_blocked(key)

    def park(self, base: int) -> None:
        """Take owner ``base``'s clients out of turn until ``unpark`` (O(clients with work))."""
        if base in self.parked:
            return
        mine = [key for key in self.turns if key & ~CLIENT_MASK == base]
        self.parked[base] = mine
        if mine:
            self.turns = collections.deque(key for key in self.turns if key & ~CLIENT_MASK != base)

    def unpark(self, base: int) -> None:
        self.turns.extend(self.parked.pop(base, ()))

    def drop_owner(self, base: int) -> int:
        """Drop every queued message of owner ``base`` (its front is gone); return how many."""
        self.unpark(base)
        mine = [key for key in self.fifos if key & ~CLIENT_MASK == base]
        if not mine:
            return 0
        dropped = 0
        for key in mine:
            dropped += len(self.fifos.pop(key))
            if key in self.blocked:
                self._drop_blocked(key)
        self.turns = collections.deque(key for key in self.turns if key & ~CLIENT_MASK != base)
        self.messages -= dropped
        return dropped
