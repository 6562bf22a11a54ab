"""The ZeroMQ wire, what both ends agree on: the version, the limits, the reply tags, and the
one encoder of messages.

A message body is msgpack ``[header, request]`` or ``[header, [request, ...]]`` (a batch), the
header a map naming the db; a reply is ``[0, value]`` or ``[1, code, message]`` per request.
``encode_request`` and ``encode_batch`` write a message for any sender: the client, and the RESP
front forwarding its connections' commands to the log actor, which decodes both the same way
(server.py). No socket here: the front and the client add and strip the envelope.
See docs/protocol.md for the wire format written for client authors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_MESSAGE_BYTES",
    "MAX_BATCH_LENGTH",
    "MAX_ARGS",
    "MAX_MESSAGE_OBJECTS",
    "MAX_MESSAGE_CONTAINERS",
    "REPLY_VALUE",
    "REPLY_ERROR",
    "encode_request",
    "encode_batch",
]

# Bumped on any incompatible change of the wire format; a client asks for it with HELLO.
PROTOCOL_VERSION = 2

# --- Limits ----------------------------------------------------------------------------------
# One client frame. Redis caps a bulk string at 512 MiB (proto-max-bulk-len), but here the whole
# frame is decoded into memory at once and held until the batch is answered; 64 MiB keeps a burst
# of large frames from a few clients within a few hundred MiB. Bigger frames, up to the
# transport's ZMQ_MAXMSGSIZE (256 MiB, set by the front actor), are answered with TOOBIG; beyond
# that, ZeroMQ drops the frame and disconnects the peer.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Requests per batch (pipeline). A batch runs on the log actor as one unit and its writes are one
# AOF record written with one write(2); 10,000 small requests run in a few ms, so other clients
# wait at most that long behind one batch.
MAX_BATCH_LENGTH = 10_000
# Arguments per request, the command name not counted. Matches Redis's multibulk limit of 1M
# elements (1024 * 1024); MSET/HSET/DEL with more should be split by the client.
MAX_ARGS = 1_048_576

# msgpack objects per message: scalars and containers, the message's own array included. msgpack's
# max_*_len options bound each container but not the total, and every object costs far more in
# Python than on the wire: an empty array is 1 byte but a 56-byte list plus an 8-byte slot, a
# fixint -20 is 1 byte but a 28-byte int. A 66 MB frame of empty arrays (within every other limit)
# took the front to 4.4 GiB and 25 s of decoding, most of it in the cyclic GC. Two counts bound it:
# * MAX_MESSAGE_OBJECTS is room for one request at MAX_ARGS plus as many objects again across a
#   batch (10,000 MSETs of 100 pairs, a big pipeline, is 2.02M objects). Past it the decoder
#   stops at the end of the array that crossed it, so at most ~3.1M objects are built for one
#   message: at worst ~180 MiB (2-character strings) and ~0.25 s (exts), against ~65 MiB and
#   ~0.06-0.09 s for a valid MSET of MAX_ARGS keys (tests/unit/test_decode_bomb.py).
# * MAX_MESSAGE_CONTAINERS (arrays and maps): a valid message needs at most 1 + MAX_BATCH_LENGTH;
#   the rest is room for arrays sent as arguments (in-place ARGTYPE errors). Containers are the
#   costly objects (GC-tracked, 64 bytes per wire byte), and refusing a frame of empty arrays at
#   this count takes ~10 ms and ~4 MiB instead of 25 s and 4.4 GiB.
MAX_MESSAGE_OBJECTS = 2 * MAX_ARGS
MAX_MESSAGE_CONTAINERS = 65_536
assert MAX_MESSAGE_CONTAINERS > MAX_BATCH_LENGTH and MAX_MESSAGE_OBJECTS > MAX_ARGS + 1

# --- Replies ---------------------------------------------------------------------------------
# One reply on the wire: [REPLY_VALUE, value] or [REPLY_ERROR, code, message]. The tag keeps a nil
# value apart from an error and lets a client tell a whole-batch rejection ([1, ...], first
# element an int) from an array of replies (first element an array).
REPLY_VALUE = 0
REPLY_ERROR = 1


# --- Writing a message -----------------------------------------------------------------------
def _header(db: int) -> dict[str, int]:
    return {"db": db} if db else {}  # db 0 is the default: an empty map, one byte


def encode_request(command: str | bytes, *args: bytes | str | int, db: int = 0) -> bytes:
    """Encode one request for ``db``. Raises TypeError for an argument the server would refuse
    (ARGTYPE)."""
    return msgpack.packb([_header(db), _check_request(command, args)])


def encode_batch(commands: Sequence[Sequence[Any]], db: int = 0) -> bytes:
    """Encode a batch (pipeline): each element is ``(command, *args)``.

    Raises ValueError for an empty batch or an empty command (neither can be expressed), and
    TypeError for a bad argument type. The server checks the batch length (TOOBIG).
    """
    if not commands:
        raise ValueError("a batch needs at least one command")
    batch = []
    for cmd in commands:
        if isinstance(cmd, (str, bytes)) or not len(cmd):
            raise ValueError(f"each batch item must be a non-empty sequence (command, *args), "
                             f"got {cmd!r:.60}")
        batch.append(_check_request(cmd[0], cmd[1:]))
    return msgpack.packb([_header(db), batch])


def _check_request(command: Any, args: Sequence[Any]) -> list[Any]:
    if type(command) not in (str, bytes):
        raise TypeError(f"command name must be str or bytes, got {type(command).__name__}")
    for i, arg in enumerate(args, 1):
        t = type(arg)
        if t is not bytes and t is not str and t is not int:
            raise TypeError(f"argument {i} must be bytes, str or int, got {t.__name__}")
    return [command, *args]
