"""A small blocking RESP client for driving redis-server (and aofnode's RESP front) in
benchmarks: PING, preload, INFO, BGREWRITEAOF; not for the measured load.

The codec is protocol/resp.py (``encode_command``, ``ReplyParser``, ``RespError``), the one RESP
codec of the project; it is re-exported here for the benchmark modules that import it from here.
"""
from __future__ import annotations

import socket
from typing import Any

from aofnode.protocol.resp import ReplyParser, RespError, encode_command

__all__ = ["RespError", "encode_command", "ReplyParser", "RespClient", "parse_info"]


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
