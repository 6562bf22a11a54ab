"""HELLO on the ZeroMQ wire, answered without the keyspace.

Two actors answer it: the log actor for every message once it is serving, and the ZeroMQ front
while the log actor is loading (so that HELLO still answers then and everything else gets
LOADING). It lives below both so neither imports the other.
"""
from __future__ import annotations

from aofnode.version import VERSION
from aofnode.protocol.errors import ERR, NOPROTO, Error
from aofnode.protocol.wire import PROTOCOL_VERSION

__all__ = ["hello_reply", "HELLO_REPLY"]

HELLO_REPLY = {"server": "aofnode", "version": VERSION, "proto": PROTOCOL_VERSION}


def hello_reply(args: tuple[bytes, ...]):
    """``HELLO [protover]``: the server map, or NOPROTO for a version this node does not speak."""
    if args:
        try:
            version = int(args[0])
        except ValueError:
            return Error(ERR, "Protocol version is not an integer or out of range")
        if version != PROTOCOL_VERSION:
            return Error(NOPROTO, f"unsupported protocol version {version}; "
                                  f"this node speaks {PROTOCOL_VERSION}")
    return HELLO_REPLY
