"""The log actor's queue of client messages: one FIFO per client, served round-robin.

Design (issue "limits", finding 7: one message of 10,000 SETs of 6 KiB held every other client
for 0.8 s):
- ``add`` files each message of a ``Batch`` under its client's key; a client's messages stay
  in order, and nothing else is ordered (clients are independent, as in Redis).
- The log actor's cycle takes clients in turn (``turns``): each gets up to a quantum of
  requests, across its messages, then goes to the back. A message larger than a quantum is
  executed over several rounds, and over several cycles if the cycle's budget runs out:
  other clients' requests run in between, exactly as other Redis clients run between the
  commands of a pipeline. Its reply is still one reply, sent when its last request ran (and,
  under ``always``, after the fsync of that cycle).
- A ``Pending`` message is decoded and validated at its first turn, once, by the codec (the
  front forwards the client's bytes as they came), and keeps its position, its db and its wire
  replies so far.
"""
from __future__ import annotations

import collections

from node.actors import messages as m
from protocol import codec

__all__ = ["WorkQueue", "Pending"]


class Pending:
    """One client message in the log actor: where its execution stands."""

    __slots__ = ("seq", "body", "is_batch", "items", "count", "db", "pos", "wires",
                 "reply_bytes", "failed", "bytes_per_item")

    def __init__(self, seq: int, body: bytes) -> None:
        self.seq = seq
        self.body = body  # the client's bytes as they came (decoded once, at the first turn)
        self.is_batch = False
        self.items: tuple = ()  # codec Requests, and Errors in place of invalid ones
        self.count = -1  # requests in the message, known at the first turn
        self.db = 0  # the header's db; a SELECT in the message changes it for the rest
        self.pos = 0
        self.wires: list = []
        self.reply_bytes = 0  # bulk bytes of its replies so far (bounded: see log.py)
        self.failed: list | None = None  # a whole-message error wire (refused, or cut short)
        self.bytes_per_item = 0.0  # the body's size over its requests: the cycle's input budget

    @property
    def done(self) -> bool:
        return self.failed is not None or self.pos == self.count

    def open(self) -> bool:
        """Decode and validate the message (protocol/codec.py, the only decode it gets); False
        if it is refused as a whole (``failed`` then holds the error wire)."""
        body, self.body = self.body, b""
        decoded = codec.decode_message(body)
        if type(decoded) is codec.Error:
            self.failed, self.count = [1, decoded.code, decoded.message], 0
            return False
        self.is_batch, self.items, self.db = decoded.is_batch, decoded.items, decoded.db
        self.count = len(self.items)
        self.bytes_per_item = len(body) / max(1, self.count)
        return True

    def take(self, n: int) -> tuple:
        """The next ``n`` requests (fewer at the end)."""
        return self.items[self.pos:self.pos + n]


class WorkQueue:
    def __init__(self) -> None:
        self.fifos: dict[int, collections.deque[Pending]] = {}
        self.turns: collections.deque[int] = collections.deque()  # clients with work, in turn
        self.messages = 0
        self.taken = 0  # batches added since the log actor last said so (Replies.taken)

    def __bool__(self) -> bool:
        return bool(self.turns)

    def add(self, batch: m.Batch) -> None:
        fifos, turns = self.fifos, self.turns
        for seq, (client, body) in enumerate(zip(batch.clients, batch.bodies), batch.first_seq):
            fifo = fifos.get(client)
            if fifo is None:
                fifo = fifos[client] = collections.deque()
                turns.append(client)
            fifo.append(Pending(seq, body))
        self.messages += len(batch.bodies)
        self.taken += 1

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

    def forget(self, client: int) -> int:
        """Drop a client's queued messages (it was cut off); return how many."""
        fifo = self.fifos.pop(client, None)
        if fifo is None:
            return 0
        self.turns.remove(client)  # O(clients with work): only on a cut-off
        self.messages -= len(fifo)
        return len(fifo)

    def take_count(self) -> int:
        taken, self.taken = self.taken, 0
        return taken
