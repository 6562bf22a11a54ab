"""The connection commands, answered without the keyspace: HELLO and SELECT.

Both actors use them: the log actor for every message once it is serving (it decodes each
client message once, node/actors/log.py), the front only while the log actor is loading (so
that HELLO and SELECT still answer then, and everything else gets LOADING).

Protocol 2 keeps no state per client: a SELECT holds for the rest of its own message; the db of
a message is in its header.
"""
from __future__ import annotations

from node.version import VERSION
from protocol import codec
from protocol.codec import Error

__all__ = ["hello_reply", "HELLO_REPLY"]

HELLO_REPLY = {"server": "aofnode", "version": VERSION, "proto": codec.PROTOCOL_VERSION}


def hello_reply(args: tuple[bytes, ...]):
    """``HELLO [protover]``: the server map, or NOPROTO for a version this node does not speak."""
    if args:
        try:
            version = int(args[0])
        except ValueError:
            return Error(codec.ERR, "Protocol version is not an integer or out of range")
        if version != codec.PROTOCOL_VERSION:
            return Error(codec.NOPROTO, f"unsupported protocol version {version}; "
                                        f"this node speaks {codec.PROTOCOL_VERSION}")
    return HELLO_REPLY
