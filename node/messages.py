"""The vocabulary between actors: every internal message, in one place.

Front <-> log travel over one ZeroMQ ipc socket pair: the front binds a ROUTER (the *backend*),
the log actor connects a DEALER with identity ``LOG_ID``, the supervisor a DEALER with identity
``SUPERVISOR_ID``. A message is a multipart frame list whose first frame is its kind.

| kind | direction | frames after the kind | meaning |
|---|---|---|---|
| ``BATCH`` | front -> log | batch id (8 bytes), then one frame per client message | execute these, in order |
| ``REPLIES`` | log -> front | batch id, then one frame per client message | the encoded client replies, same order |
| ``HELLO`` | log -> front | log pid (ASCII) | the keyspace is loaded; send batches |
| ``PING`` | front -> log | | are you there? (answered by HELLO) |
| ``STATS`` | front -> log | msgpack map | front counters for INFO, once a second |
| ``LOG_DOWN`` | supervisor -> front | dead log pid (ASCII) | fail in-flight batches, answer LOADING |

A client-message frame inside BATCH is msgpack ``[is_batch, items]``. An item is either
``[db, NAME, *args]`` (a request to execute) or ``[None, wire_reply]`` (a reply the front already
made, kept in place so that a pipeline's replies stay in order: a validation error, SELECT,
HELLO). A frame inside REPLIES is the exact bytes to send to the client.

The closer has its own socket and messages: see node/closer.py.
"""
from __future__ import annotations

__all__ = [
    "LOG_ID", "SUPERVISOR_ID", "BATCH", "REPLIES", "HELLO", "PING", "STATS", "LOG_DOWN",
    "pack_batch_id", "unpack_batch_id",
]

LOG_ID = b"log"
SUPERVISOR_ID = b"sup"

BATCH = b"B"
REPLIES = b"R"
HELLO = b"H"
PING = b"P"
STATS = b"S"
LOG_DOWN = b"D"


def pack_batch_id(n: int) -> bytes:
    return n.to_bytes(8, "big")


def unpack_batch_id(frame: bytes) -> int:
    return int.from_bytes(frame, "big")
