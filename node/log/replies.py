"""Reply encoders: the one place where the log actor turns results into a front's wire.

Design:
- Each front link holds one encoder for its front's wire (node/log/links.py); the log actor
  never writes a reply form itself. ``encode(done)`` takes the finished ``Pending`` messages of
  one cycle for that front (node/log/work.py) and returns one reply (bytes) per message.
- A ``Pending`` holds plain values until then: ``results`` (None, int, bytes, str, float, list,
  dict, or a ``Error``), one per request run, and ``failed``, an ``Error`` for the whole
  message. Encoding runs after the cycle's append and fsync, so a write refused under MISCONF
  or a BGREWRITEAOF answered after the fork is never a reply taken back.
- Both fronts take protocol 2 today (``Protocol2Replies``, the forms of protocol/server.py's
  ``encode_reply``): the RESP front turns them into RESP itself. An encoder for another wire
  (RESP bytes made here, once) only has to offer the same ``encode``.
- One call per front per cycle; per request, one list, as a reply built in place costs.
"""
from __future__ import annotations

from typing import Iterable

import msgpack

from aofnode.log.work import Pending
from aofnode.protocol.errors import Error
from aofnode.protocol.wire import REPLY_ERROR as _ERROR
from aofnode.protocol.wire import REPLY_VALUE as _OK

__all__ = ["Protocol2Replies"]

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
