"""The client's side of the ZeroMQ wire: the server's reply bodies to values.

A reply is a value or an ``Error``; a batch's reply is one per request, in order, or a single
``Error`` when the server rejected the batch as a whole. The server is trusted, so there are no
limits here, but a body that is not a well-formed reply raises ``ProtocolError``: that is a bug
or a wrong peer, not an answer. Requests are written with wire.py's ``encode_request`` and
``encode_batch``; the socket, the envelope and the retries are node/client.py's.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import Error, ProtocolError
from .wire import REPLY_ERROR as _ERROR, REPLY_VALUE as _OK

__all__ = ["decode_reply", "decode_batch_reply"]

_unpackb = msgpack.unpackb


def decode_reply(body: bytes) -> Any:
    """Decode the reply to a single request: the value, or an ``Error``.

    Raises ProtocolError if ``body`` is not a well-formed reply.
    """
    return _from_wire(_unpack_reply(body))


def decode_batch_reply(body: bytes) -> list[Any] | Error:
    """Decode the reply to a batch: one value or ``Error`` per request, in order.

    Returns a single ``Error`` if the server rejected the batch as a whole (the reply is then one
    wire reply, whose first element is an int, instead of an array of wire replies).
    """
    obj = _unpack_reply(body)
    if type(obj) is not list or not obj:
        raise ProtocolError(f"batch reply must be a non-empty array, got {obj!r:.60}")
    if type(obj[0]) is int:
        whole = _from_wire(obj)
        if type(whole) is not Error:
            raise ProtocolError("batch reply is a single value, not an array of replies")
        return whole
    return [_from_wire(item) for item in obj]


def _unpack_reply(body: bytes) -> Any:
    try:
        # Map keys may be anything the server sends (ints in INFO, say); we trust the server.
        return _unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:
        raise ProtocolError(f"malformed reply: {type(exc).__name__}: {exc}") from exc


def _from_wire(obj: Any) -> Any:
    if type(obj) is list:
        tag = obj[0] if obj and type(obj[0]) is int else None
        if tag == _OK and len(obj) == 2:
            return obj[1]
        if tag == _ERROR and len(obj) == 3 and type(obj[1]) is str and type(obj[2]) is str:
            return Error(obj[1], obj[2])
    raise ProtocolError(f"not a wire reply: {obj!r:.60}")
