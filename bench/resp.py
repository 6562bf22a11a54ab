"""RESP for driving redis-server (and aofnode's RESP front) in benchmarks and tests: the client
side of the protocol (``encode_command``, ``ReplyParser``, ``RespError``) and a small blocking
client (PING, preload, INFO, BGREWRITEAOF); not for the measured load.

The server side of RESP is aofnode.protocol (resp_request, resp_reply); this side trusts the
server, so it has no limits.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

__all__ = ["RespError", "encode_command", "ReplyParser", "RespClient", "parse_info"]


@dataclass(frozen=True, slots=True)
class RespError:
    """An error reply; ``code`` is the first word of the message (ERR, WRONGTYPE...)."""

    code: str
    message: str


def _arg(a: Any) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, str):
        return a.encode()
    if isinstance(a, int):
        return b"%d" % a
    raise TypeError(f"RESP argument must be bytes, str or int, got {type(a).__name__}")


def encode_command(*args: Any) -> bytes:
    """One command as a multibulk."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _arg(a)
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


class _Incomplete(Exception):
    pass


class ReplyParser:
    """Incremental reply parser (RESP2 and RESP3): ``feed(data)``, then ``replies()``.

    Status replies are str, bulks bytes, errors ``RespError``, nulls None, maps dict, sets
    lists, doubles float, booleans bool, verbatim strings bytes (without their ``txt:``).
    A client-side tool for trusted servers: no limits.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def replies(self) -> list[Any]:
        out = []
        while True:
            start = self._pos
            try:
                value = self._parse()
            except _Incomplete:
                self._pos = start
                break
            out.append(value)
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        return out

    def _line(self) -> bytes:
        end = self._buf.find(b"\r\n", self._pos)
        if end < 0:
            raise _Incomplete
        line = bytes(self._buf[self._pos:end])
        self._pos = end + 2
        return line

    def _blob(self, n: int) -> bytes:
        if len(self._buf) < self._pos + n + 2:
            raise _Incomplete
        value = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n + 2
        return value

    def _parse(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            text = rest.decode(errors="replace")
            return RespError(text.split(" ", 1)[0], text)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._blob(n)
        if kind in (b"*", b"~", b">"):
            n = int(rest)
            return None if n < 0 else [self._parse() for _ in range(n)]
        if kind == b"%":
            n = int(rest)
            out = {}
            for _ in range(n):
                k = self._parse()
                out[k] = self._parse()
            return out
        if kind == b"_":
            return None
        if kind == b",":
            return float(rest)
        if kind == b"#":
            return rest == b"t"
        if kind == b"(":
            return int(rest)
        if kind == b"=":
            return self._blob(int(rest))[4:]
        if kind == b"!":
            text = self._blob(int(rest)).decode(errors="replace")
            return RespError(text.split(" ", 1)[0], text)
        raise ValueError(f"not a RESP reply: {line[:40]!r}")


def parse_info(text: bytes | str) -> dict[str, str]:
    """The ``field:value`` lines of an INFO reply, as a flat dict."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            out[k] = v
    return out


class RespClient:
    """Blocking RESP client: one command or one pipeline at a time."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._parser = ReplyParser()

    def execute(self, *args: Any) -> Any:
        return self.pipeline([args])[0]

    def pipeline(self, commands: list) -> list:
        self._sock.sendall(b"".join(encode_command(*c) for c in commands))
        out: list = []
        while len(out) < len(commands):
            data = self._sock.recv(1 << 16)
            if not data:
                raise ConnectionError("redis closed the connection")
            self._parser.feed(data)
            out.extend(self._parser.replies())
        return out

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "RespClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
