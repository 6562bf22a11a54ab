"""The RESP front's gateway from the log actor's replies to RESP.

Most replies come from the log actor as RESP already (node/log/replies.py). The messages whose
replies the front must read (transactions, a subscriber's) ask for protocol 2 and get back the
message's msgpack reply: a list of wire replies (``[0, value]`` /
``[1, CODE, message]``), or one wire error for the message as a whole. ``encode_message_reply``
turns it into exactly as many RESP replies as the message had requests, whatever the bytes: a
RESP client counts replies to stay in step. It never raises for the log actor's bytes.
"""
from __future__ import annotations

from typing import Any

import msgpack

from aofnode.protocol.errors import ERR
from aofnode.protocol.resp_reply import encode_command_reply, encode_value, error_line

__all__ = ["encode_message_reply"]

_unpackb = msgpack.unpackb


def encode_message_reply(reply: bytes, count: int, names: list[str] | None, resp3: bool) -> bytes:
    """The RESP replies of one aofnode message of ``count`` requests, from its msgpack reply: a
    list of wire replies (``[0, value]`` / ``[1, CODE, message]``), or one wire error for the
    message as a whole, then given to each request. ``names`` (the requests' command names)
    is needed only where a reply has a shape of its own (``encode_command_reply``). Always
    ``count`` replies, whatever the bytes: a RESP client counts replies to stay in step."""
    try:
        wires = _unpackb(reply, raw=False, strict_map_key=False)
    except Exception:  # the log actor's bytes: never expected, never a crash
        wires = None
    if type(wires) is list and wires and type(wires[0]) is int:
        return _wire_to_resp(wires, None, resp3) * count
    if type(wires) is not list or len(wires) != count:
        return error_line(ERR, "malformed reply from the log actor") * count
    if names is None:
        out = []
        for w in wires:  # the common case inline: [0, value]
            out.append(encode_value(w[1], resp3) if type(w) is list and len(w) == 2 and w[0] == 0
                       else _wire_to_resp(w, None, resp3))
        return b"".join(out)
    return b"".join([_wire_to_resp(w, n, resp3) for w, n in zip(wires, names)])


def _wire_to_resp(wire: Any, name: str | None, resp3: bool) -> bytes:
    if type(wire) is list and wire:
        if wire[0] == 0 and len(wire) == 2:
            if name is not None:
                return encode_command_reply(name, wire[1], resp3)
            return encode_value(wire[1], resp3)
        if wire[0] == 1 and len(wire) == 3:
            return error_line(str(wire[1]), str(wire[2]))
    return error_line(ERR, "malformed reply from the log actor")
