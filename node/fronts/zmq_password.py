"""The ZeroMQ front's password gate (``--requirepass-file``): AUTH once per connection.

Design (docs/protocol.md, "Password"):
- A ROUTER identity is authenticated by a message that is one ``AUTH [default] password``
  request; it stays so while the connection that sent it lasts. The gate keys it by identity
  *and* the connection's descriptor (ZMQ_SRCFD), and forgets the descriptor when the monitor
  reports it disconnected: a later connection that reuses the identity starts unauthenticated.
  So what it holds is bounded by the connected clients.
- Until then every message is answered here: HELLO as usual, errors found while decoding as
  usual (as Redis, which reports an unknown command before NOAUTH), everything else NOAUTH; a
  message over ``AUTH_MAX_BYTES`` gets NOAUTH unread.
  Nothing of an unauthenticated client reaches the log actor.
- Passwords are compared with ``hmac.compare_digest``; failures are counted, never logged with
  what was sent.
"""
from __future__ import annotations

import collections
import hmac

import msgpack

from aofnode.hello import hello_reply
from aofnode import protocol as codec
from aofnode.protocol.errors import Error

__all__ = ["PasswordGate"]

# An AUTH message is small: a bigger body from an authenticated client is forwarded unread,
# and one from a client not authenticated yet gets NOAUTH unread (as Redis's pre-AUTH limits,
# a stranger cannot make the front decode 64 MiB messages).
AUTH_MAX_BYTES = 4096
_NOAUTH = Error(codec.NOAUTH, "Authentication required.")
_WRONGPASS = Error(codec.WRONGPASS, "invalid username-password pair or user is disabled.")
_OK = codec.encode_reply("OK")


def _as_bytes(value) -> bytes | None:
    if type(value) is bytes:
        return value
    if type(value) is str:
        return value.encode("utf-8", "surrogateescape")
    return None


def auth_args(body: bytes) -> list[bytes] | None:
    """The arguments of a message that is one AUTH request (not a batch), else None."""
    try:
        message = msgpack.unpackb(body, strict_map_key=False)
    except Exception:  # noqa: BLE001 -- not an AUTH message; the decoder says what is wrong
        return None
    if not (type(message) is list and len(message) == 2 and type(message[1]) is list and message[1]):
        return None
    request = message[1]
    name = _as_bytes(request[0])
    if name is None or name.upper() != b"AUTH":
        return None
    args = [_as_bytes(a) for a in request[1:]]
    return None if None in args else args  # type: ignore[return-value]


class PasswordGate:
    def __init__(self, password: bytes) -> None:
        self.password = password
        self.fd_of: dict[bytes, int] = {}  # authenticated identity -> its connection's descriptor
        self.by_fd: dict[int, set[bytes]] = collections.defaultdict(set)
        self.auth_failures = 0
        self.noauth_replies = 0

    def counters(self) -> dict:
        return {"auth_enabled_password": 1, "auth_failures": self.auth_failures,
                "noauth_replies": self.noauth_replies, "authenticated_clients": len(self.fd_of)}

    def disconnected(self, fd: int) -> None:
        for identity in self.by_fd.pop(fd, ()):
            self.fd_of.pop(identity, None)

    def answer(self, identity: bytes, fd: int, body: bytes) -> bytes | None:
        """This message's reply when the gate answers it, or None to forward it as it came."""
        authenticated = self.fd_of.get(identity) == fd
        if authenticated and (len(body) > AUTH_MAX_BYTES or b"AUTH" not in body.upper()):
            return None  # the hot path: one lookup and, for small bodies, one scan
        args = auth_args(body) if len(body) <= AUTH_MAX_BYTES else None
        if args is not None:
            return codec.encode_reply(self._auth(identity, fd, args))
        if authenticated:
            return None
        if len(body) > AUTH_MAX_BYTES:
            self.noauth_replies += 1
            return codec.encode_reply(_NOAUTH)
        return self._before_auth(body)

    def _auth(self, identity: bytes, fd: int, args: list[bytes]):
        if not args:
            return Error(codec.ARITY, "wrong number of arguments for 'auth' command")
        if len(args) > 2:
            return Error(codec.ERR, "syntax error")
        user = args[0] if len(args) == 2 else b"default"
        # Both compared, always: the time taken says nothing about which one was wrong.
        ok = hmac.compare_digest(args[-1], self.password) & (user == b"default")
        if not ok:
            self.auth_failures += 1
            return _WRONGPASS  # an authenticated client stays so, as in Redis
        old = self.fd_of.get(identity)
        if old is not None and old != fd:
            self.by_fd[old].discard(identity)
        self.fd_of[identity] = fd
        self.by_fd[fd].add(identity)
        return "OK"

    def _before_auth(self, body: bytes) -> bytes:
        decoded = codec.decode_message(body)
        if type(decoded) is Error:
            return codec.encode_reply(decoded)
        wires = []
        for req in decoded.items:
            if type(req) is Error:
                wires.append(codec.wire_reply(req))
            elif req[0] == "HELLO":
                wires.append(codec.wire_reply(hello_reply(req[1])))
            else:
                self.noauth_replies += 1
                wires.append(codec.wire_reply(_NOAUTH))
        return msgpack.packb(wires if decoded.is_batch else wires[0])
