"""The vocabulary between actors: every internal message, in one place.

Front <-> log travel over one Unix stream socket (node/channel.py): the front listens, the log
actor connects. A message is a msgpack array whose first element is its kind.

| kind | direction | elements after the kind | meaning |
|---|---|---|---|
| ``BATCH`` | front -> log | batch id (8 bytes), then one element per client message | execute these, in order |
| ``REPLIES`` | log -> front | batch id, then one element per client message | the encoded client replies, same order |
| ``HELLO`` | log -> front | log pid (ASCII) | the keyspace is loaded; send batches (sent on connect) |
| ``STATS`` | front -> log | msgpack map | front counters for INFO, once a second |

A client-message element inside BATCH is msgpack ``[is_batch, items]``. An item is either
``[db, NAME, *args]`` (a request to execute) or ``[None, wire_reply]`` (a reply the front already
made, kept in place so that a pipeline's replies stay in order: a validation error, SELECT,
HELLO). An element inside REPLIES is the exact bytes to send to the client.

The log actor's death is the channel's EOF: the front then answers ABORTED for the batches in
flight and LOADING until a new log actor connects and says HELLO.

The closer has its own socket and messages: see node/closer.py.
"""
from __future__ import annotations

__all__ = ["BATCH", "REPLIES", "HELLO", "STATS", "pack_batch_id", "unpack_batch_id"]

BATCH = b"B"
REPLIES = b"R"
HELLO = b"H"
STATS = b"S"


def pack_batch_id(n: int) -> bytes:
    return n.to_bytes(8, "big")


def unpack_batch_id(frame: bytes) -> int:
    return int.from_bytes(frame, "big")
