"""Reply encoders: the one place where the log actor turns results into a front's wire.

Design:
- Each front link holds one encoder for its front's wire (node/log/links.py); the log actor
  never writes a reply form itself. ``encode(done)`` takes the finished ``Pending`` messages of
  one cycle for that front (node/log/work.py) and returns one reply (bytes) per message.
- A ``Pending`` holds plain values until then: ``results`` (None, int, bytes, str, float, list,
  dict, or a ``Error``), one per request run, and ``failed``, an ``Error`` for the whole
  message. Encoding runs after the cycle's append and fsync, so a write refused under MISCONF
  or a BGREWRITEAOF answered after the fork is never a reply taken back.
- The ZeroMQ front takes protocol 2 (``Protocol2Replies``, the forms of protocol/server.py's
  ``encode_reply``). The RESP front's link takes ``RespReplies``: a message whose header asked
  for RESP (``"resp": 2`` or ``3``, the connection's protocol) gets the RESP bytes of its
  replies, made once here with Redis's per-command shapes (protocol/resp_reply.py), which the
  front writes to the socket as they are; any other message (a transaction, pub/sub while the
  front tracks a subscriber's state, one refused before its header was read) gets protocol 2,
  and the front makes RESP of it as before (node/fronts/resp_route.py tells the two apart by
  the first byte: RESP's are ASCII, protocol 2's a msgpack array, >= 0x80).
- One call per front per cycle; per request, one list, as a reply built in place costs.
"""
from __future__ import annotations

from typing import Iterable

import msgpack

from aofnode.log.work import Pending
from aofnode.protocol.errors import Error
from aofnode.protocol.resp_reply import SHAPED, encode_command_reply, encode_value, error_line, reply_shape
from aofnode.protocol.wire import REPLY_ERROR as _ERROR
from aofnode.protocol.wire import REPLY_VALUE as _OK

__all__ = ["Protocol2Replies", "Pushed", "RespReplies"]

# tests/unit/test_log_replies.py checks every form against the server side's encode_reply and
# encode_batch_reply.


class Protocol2Replies:
    """Protocol 2, msgpack: a request's reply is [0, value] or [1, code, message], a batch's is
    the list of its requests' replies, a message refused as a whole gets one [1, code, message]."""

    __slots__ = ()

    def encode(self, done: Iterable[Pending]) -> list[bytes]:
        packb = msgpack.packb
        out = []
        for p in done:
            failed = p.failed
            if failed is not None:
                out.append(packb([_ERROR, failed.code, failed.message]))
            elif p.is_batch:
                out.append(packb([[_ERROR, v.code, v.message] if type(v) is Error else [_OK, v]
                                  for v in p.results]))
            else:
                v = p.results[0]
                out.append(packb([_ERROR, v.code, v.message] if type(v) is Error else [_OK, v]))
        return out


class RespReplies:
    """The RESP front's wire: a message that asked for RESP gets its requests' replies as RESP2
    or RESP3 bytes, one after the other (a message refused as a whole: its error once per
    request, as many replies as requests, which the client counts); any other protocol 2."""

    __slots__ = ("_protocol2",)

    def __init__(self) -> None:
        self._protocol2 = Protocol2Replies()

    def encode(self, done: Iterable[Pending]) -> list[bytes]:
        out = []
        for p in done:
            resp = p.resp
            if not resp:
                out.extend(self._protocol2.encode((p,)))
                continue
            failed = p.failed
            if failed is not None:
                out.append(error_line(failed.code, failed.message) * p.count)
                continue
            resp3 = resp == 3
            parts: list[bytes] = []
            append = parts.append
            # By the value's type first: an integer or a status has one form whatever the
            # command; a bulk has one too but for a RESP3 score (a double); only the rest (nil,
            # arrays, maps) asks the command's shape (protocol/resp_reply.py).
            for item, v in zip(p.items, p.results):
                kind = type(v)
                if kind is bytes:
                    if resp3 and item[0] in SHAPED:
                        append(_shaped(item, v, True))
                    else:
                        append(b"$%d\r\n%s\r\n" % (len(v), v))
                elif kind is str:
                    append(b"+OK\r\n" if v == "OK" else encode_value(v, resp3))
                elif kind is int:
                    append(b":%d\r\n" % v)
                elif kind is Error:
                    append(error_line(v.code, v.message))
                elif kind is Pushed:
                    append(v.push)
                    append(_one(item, v.value, resp3))
                elif item[0] in SHAPED:
                    append(_shaped(item, v, resp3))
                else:
                    append(encode_value(v, resp3))
            out.append(b"".join(parts))
        return out


class Pushed:
    """A request's reply with RESP bytes to write before it: CLIENT TRACKING's invalidation of a
    key evicted before the request ran, which Redis writes ahead of the reply."""

    __slots__ = ("push", "value")

    def __init__(self, push: bytes, value) -> None:
        self.push = push
        self.value = value


def _one(item, v, resp3: bool) -> bytes:
    """One reply as ``RespReplies.encode`` writes it (which keeps its own copy inline)."""
    kind = type(v)
    if kind is Error:
        return error_line(v.code, v.message)
    if kind is bytes:
        return _shaped(item, v, True) if resp3 and item[0] in SHAPED else encode_value(v, resp3)
    if kind is str or kind is int or item[0] not in SHAPED:
        return encode_value(v, resp3)
    return _shaped(item, v, resp3)


def _shaped(item, value, resp3: bool) -> bytes:
    name = item[0]
    return encode_command_reply(reply_shape(name, (name, *item[1])), value, resp3)
