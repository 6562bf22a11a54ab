"""The two targets, aofnode (ZeroMQ + msgpack) and redis-server (RESP over TCP), behind one face.

Design
------
A worker drives many connections from one poll loop, so a connection here is non-blocking:

* ``send(batch)`` queues one message (aofnode: a msgpack batch, or a single request when the
  pipeline is 1; redis: ``len(batch)`` RESP commands back to back, like ``redis-benchmark -P``);
* ``read()`` returns the batches completed so far, each as a list with one entry per request:
  ``None`` for a success, the error code (``"ERR"``, ``"WRONGTYPE"``, ...) for an error reply.

``Mux`` waits on all connections of a worker: ``zmq.Poller`` for aofnode's DEALER sockets,
``selectors`` for redis's TCP sockets (which also flushes partially written commands). A
connection that timed out is replaced by a new one (``reopen()``, Lazy Pirate): a late reply
then lands on a closed socket and can never be taken for the reply to a later batch.

``Control`` is the blocking side channel used outside the measurement: PING, preload, INFO,
BGREWRITEAOF. Only this module knows how the two targets differ.
"""
from __future__ import annotations

import selectors
import socket
from dataclasses import dataclass
from typing import Any

import zmq

from aofnode.bench import resp
from aofnode import protocol
from aofnode.client import Client, CommandError

__all__ = ["TargetSpec", "open_connection", "new_mux", "Control"]

AOFNODE = "aofnode"
REDIS = "redis"


@dataclass(frozen=True, slots=True)
class TargetSpec:
    kind: str  # "aofnode" | "redis"
    endpoint: str = "tcp://127.0.0.1:7700"  # aofnode
    host: str = "127.0.0.1"  # redis
    port: int = 6379

    @property
    def address(self) -> str:
        return self.endpoint if self.kind == AOFNODE else f"{self.host}:{self.port}"


# --- measured connections --------------------------------------------------------------------

def open_dealer(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    """A DEALER to ``endpoint`` that drops unsent messages at close (Lazy Pirate: a new socket
    per retry, never a late reply taken for a later request)."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


class ZmqConnection:
    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self._ctx = ctx
        self._endpoint = endpoint
        self.sock = self._open()

    def _open(self) -> zmq.Socket:
        return open_dealer(self._ctx, self._endpoint)

    def send(self, batch: list[tuple]) -> None:
        body = protocol.encode_batch(batch) if len(batch) > 1 else protocol.encode_request(*batch[0])
        self._batch = len(batch) > 1
        self._size = len(batch)
        # DEALER: ["", body]; NOBLOCK never fails here, one message in flight is far below HWM.
        self.sock.send_multipart([b"", body], zmq.NOBLOCK)

    def read(self) -> list[list[str | None]]:
        out = []
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            body = frames[-1]
            if self._batch:
                replies = protocol.decode_batch_reply(body)
                if type(replies) is protocol.Error:  # the whole batch was rejected
                    out.append([replies.code] * self._size)
                else:
                    out.append([r.code if type(r) is protocol.Error else None for r in replies])
            else:
                r = protocol.decode_reply(body)
                out.append([r.code if type(r) is protocol.Error else None])

    def reopen(self, mux: "Mux") -> None:
        mux.unregister(self)
        self.sock.close(linger=0)
        self.sock = self._open()
        mux.register(self)

    def close(self) -> None:
        self.sock.close(linger=0)


class RespConnection:
    def __init__(self, host: str, port: int) -> None:
        self._addr = (host, port)
        self.sock = self._open()
        self._parser = resp.ReplyParser()
        self._out = b""
        self._expect: list[int] = []  # requests per batch sent and not yet answered
        self._got: list = []

    def _open(self) -> socket.socket:
        sock = socket.create_connection(self._addr, timeout=5.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        return sock

    def send(self, batch: list[tuple]) -> None:
        self._out += b"".join([resp.encode_command(*cmd) for cmd in batch])
        self._expect.append(len(batch))
        self.flush()

    def flush(self) -> bool:
        """Write what the socket takes; True when nothing is left to write."""
        if self._out:
            try:
                n = self.sock.send(self._out)
            except BlockingIOError:
                n = 0
            self._out = self._out[n:]
        return not self._out

    def read(self) -> list[list[str | None]]:
        try:
            data = self.sock.recv(1 << 18)
        except BlockingIOError:
            return []
        if not data:
            raise ConnectionError("redis closed the connection")
        self._parser.feed(data)
        self._got.extend(self._parser.replies())
        out = []
        while self._expect and len(self._got) >= self._expect[0]:
            n = self._expect.pop(0)
            batch, self._got = self._got[:n], self._got[n:]
            out.append([r.code if type(r) is resp.RespError else None for r in batch])
        return out

    def reopen(self, mux: "Mux") -> None:
        mux.unregister(self)
        self.sock.close()
        self.sock = self._open()
        self._parser = resp.ReplyParser()
        self._out, self._expect, self._got = b"", [], []
        mux.register(self)

    def close(self) -> None:
        self.sock.close()


class _ZmqMux:
    def __init__(self) -> None:
        self._poller = zmq.Poller()
        self._by_sock: dict[Any, ZmqConnection] = {}

    def register(self, conn: ZmqConnection) -> None:
        self._poller.register(conn.sock, zmq.POLLIN)
        self._by_sock[conn.sock] = conn

    def unregister(self, conn: ZmqConnection) -> None:
        self._poller.unregister(conn.sock)
        del self._by_sock[conn.sock]

    def poll(self, timeout_s: float) -> list[ZmqConnection]:
        # zmq polls in whole ms: round down so a due send is never late by a rounding.
        events = self._poller.poll(max(0, int(timeout_s * 1000)))
        return [self._by_sock[s] for s, _ in events]


class _SelectorMux:
    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._writing: set[RespConnection] = set()

    def register(self, conn: RespConnection) -> None:
        self._sel.register(conn.sock, selectors.EVENT_READ, conn)

    def unregister(self, conn: RespConnection) -> None:
        self._sel.unregister(conn.sock)
        self._writing.discard(conn)

    def poll(self, timeout_s: float) -> list[RespConnection]:
        # A command that did not fit the socket buffer waits for EVENT_WRITE; rare for small
        # batches, usual for big values with deep pipelines.
        for conn in list(self._writing):
            if conn.flush():
                self._writing.discard(conn)
                self._sel.modify(conn.sock, selectors.EVENT_READ, conn)
        for key in self._sel.get_map().values():
            conn = key.data
            if conn._out and conn not in self._writing:
                self._writing.add(conn)
                self._sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
        ready = []
        for key, events in self._sel.select(max(0.0, timeout_s)):
            if events & selectors.EVENT_READ:
                ready.append(key.data)
        return ready


Mux = _ZmqMux | _SelectorMux


def new_mux(spec: TargetSpec) -> Mux:
    return _ZmqMux() if spec.kind == AOFNODE else _SelectorMux()


def open_connection(spec: TargetSpec, ctx: zmq.Context | None = None):
    if spec.kind == AOFNODE:
        return ZmqConnection(ctx or zmq.Context.instance(), spec.endpoint)
    return RespConnection(spec.host, spec.port)


# --- control ---------------------------------------------------------------------------------

class Control:
    """Blocking commands outside the measured load. Errors come back as ``(code, message)``."""

    def __init__(self, spec: TargetSpec, timeout: float = 5.0) -> None:
        self.spec = spec
        if spec.kind == AOFNODE:
            self._client = Client(spec.endpoint, timeout=timeout, retries=1)
        else:
            self._client = resp.RespClient(spec.host, spec.port, timeout=timeout)

    def execute(self, *args: Any) -> Any:
        """The reply value, or an ``(code, message)`` tuple for an error reply."""
        if self.spec.kind == AOFNODE:
            try:
                return self._client.execute(*args)
            except CommandError as exc:
                return (exc.code, exc.message)
        reply = self._client.execute(*args)
        return (reply.code, reply.message) if isinstance(reply, resp.RespError) else reply

    def pipeline(self, commands: list) -> int:
        """Run ``commands`` in one round trip; return how many got an error reply."""
        if self.spec.kind == AOFNODE:
            replies = self._client.execute_many(commands)
            return sum(isinstance(r, CommandError) for r in replies)
        replies = self._client.pipeline(commands)
        return sum(isinstance(r, resp.RespError) for r in replies)

    def ping(self) -> bool:
        return self.execute("PING") == "PONG"

    def persistence(self) -> dict[str, str]:
        """The fields of ``INFO persistence`` as strings, for either target."""
        reply = self.execute("INFO", "persistence")
        if self.spec.kind == AOFNODE:
            if isinstance(reply, tuple):
                return {}
            return {str(k): str(v) for k, v in reply.get("persistence", {}).items()}
        return resp.parse_info(reply) if isinstance(reply, (bytes, str)) else {}

    def rewrite_in_progress(self) -> bool:
        info = self.persistence()
        return (info.get("aof_rewrite_in_progress", "0") != "0"
                or info.get("aof_rewrite_scheduled", "0") != "0")

    def close(self) -> None:
        self._client.close()
