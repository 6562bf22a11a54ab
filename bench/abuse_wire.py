"""Raw abusive clients, one per wire: what a hostile or careless client sends, without a library.

Design
------
The project's clients read every reply and time out politely; an abuser must not. Here:

* ``NonReader``: pipelines requests and never reads. aofnode: a DEALER with ``RCVHWM=1`` and a
  4 KiB kernel receive buffer, so ZeroMQ stops taking replies after one and the node's pipe to
  it fills at once. redis: a TCP socket with the same receive buffer, commands written back to
  back (``redis-benchmark -P`` style) and never a ``recv``.
* ``one_message``: one big message (a pipeline or a raw frame), and the time to its whole reply.
  Writing and reading run together on redis (a thread writes), since redis starts answering
  before it has read the whole pipeline.
* ``load``: fill the keyspace with MSETs in pipelined batches, outside the measurement.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, Iterable, Iterator

import zmq

from aofnode.bench import resp
from aofnode.bench.abuse_node import Target
from aofnode import protocol

__all__ = ["NonReader", "one_message", "load", "encode_pipeline"]

# A small receive buffer on the abuser: the kernel holds ~this much of its replies, the rest
# stays on the server, which is where the limits under test apply.
ABUSER_RCVBUF = 4096


class NonReader:
    """A client that sends ``count`` copies of ``command`` and never reads a reply."""

    def __init__(self, target: Target) -> None:
        self.kind = target.kind
        if self.kind == "aofnode":
            self._ctx = zmq.Context()
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.RCVHWM, 1)
            sock.setsockopt(zmq.RCVBUF, ABUSER_RCVBUF)
            sock.setsockopt(zmq.SNDHWM, 0)  # queue every request we pipeline
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(target.spec.endpoint)
            self.sock = sock
        else:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, ABUSER_RCVBUF)
            sock.connect((target.spec.host, target.spec.port))
            self.sock = sock

    def send(self, command: tuple, count: int) -> None:
        if self.kind == "aofnode":
            frames = [b"", protocol.encode_request(*command)]
            for _ in range(count):
                self.sock.send_multipart(frames)
        else:
            data = resp.encode_command(*command) * count
            self.sock.settimeout(30)
            self.sock.sendall(data)  # small: GET commands are ~30 bytes each

    def closed_by_server(self) -> bool:
        """redis only: has the server closed our connection? (A write then fails.)"""
        try:
            self.sock.settimeout(0.001)
            self.sock.send(resp.encode_command("PING"))
            return False
        except (BrokenPipeError, ConnectionResetError):
            return True
        except (socket.timeout, TimeoutError, BlockingIOError):
            return False

    def close(self) -> None:
        if self.kind == "aofnode":
            self.sock.close(linger=0)
            self._ctx.term()
        else:
            self.sock.close()


def encode_pipeline(target: Target, commands: list[tuple]) -> bytes:
    if target.kind == "aofnode":
        return protocol.encode_batch(commands)
    return b"".join(resp.encode_command(*c) for c in commands)


def one_message(target: Target, body: bytes, replies: int, timeout: float) -> dict[str, Any]:
    """Send ``body`` (one aofnode message, or ``replies`` RESP commands) and wait for the answer.

    Returns ``{"seconds": time to the whole reply or None, "errors": {code: n}, "reply": ...}``
    where ``reply`` is the single error of a whole-message rejection (aofnode), if any.
    """
    if target.kind == "aofnode":
        return _zmq_message(target.spec.endpoint, body, timeout)
    return _resp_message(target.spec.host, target.spec.port, body, replies, timeout)


def _zmq_message(endpoint: str, body: bytes, timeout: float) -> dict[str, Any]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        start = time.monotonic()
        sock.send_multipart([b"", body], copy=False)
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            return {"seconds": None, "errors": {}, "reply": None}
        payload = sock.recv_multipart()[-1]
        seconds = time.monotonic() - start
    finally:
        sock.close(linger=0)
        ctx.term()
    try:
        decoded = protocol.decode_batch_reply(payload)
    except protocol.ProtocolError:  # not a batch reply: a single reply to a single request
        decoded = protocol.decode_reply(payload)
    if isinstance(decoded, protocol.Error):
        return {"seconds": seconds, "errors": {decoded.code: 1}, "reply": f"{decoded.code} {decoded.message}"}
    errors: dict[str, int] = {}
    for r in decoded if isinstance(decoded, list) else []:
        if isinstance(r, protocol.Error):
            errors[r.code] = errors.get(r.code, 0) + 1
    return {"seconds": seconds, "errors": errors, "reply": None}


def _resp_message(host: str, port: int, body: bytes, replies: int, timeout: float) -> dict[str, Any]:
    sock = socket.create_connection((host, port), timeout=timeout)
    parser = resp.ReplyParser()
    errors: dict[str, int] = {}
    got = 0
    failure: list[BaseException] = []

    def write() -> None:
        try:
            sock.sendall(body)
        except OSError as exc:
            failure.append(exc)
    writer = threading.Thread(target=write, daemon=True)
    start = time.monotonic()
    writer.start()
    deadline = start + timeout
    seconds = None
    try:
        while got < replies and time.monotonic() < deadline:
            try:
                data = sock.recv(1 << 20)
            except (socket.timeout, TimeoutError):
                break
            if not data:
                break
            parser.feed(data)
            for r in parser.replies():
                got += 1
                if isinstance(r, resp.RespError):
                    errors[r.code] = errors.get(r.code, 0) + 1
        if got >= replies:
            seconds = time.monotonic() - start
    finally:
        sock.close()
        writer.join(5)
    return {"seconds": seconds, "errors": errors, "reply": None if got >= replies else f"{got}/{replies} replies"}


def _chunks(items: Iterable[tuple[bytes, bytes]], size: int) -> Iterator[list[tuple[bytes, bytes]]]:
    chunk: list[tuple[bytes, bytes]] = []
    for kv in items:
        chunk.append(kv)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load(target: Target, pairs: Iterable[tuple[bytes, bytes]], per_mset: int = 1000,
         msets_per_batch: int = 20) -> int:
    """MSET every pair, ``per_mset`` pairs a command, ``msets_per_batch`` commands a round trip."""
    n = 0
    with target.client(timeout=60) as c:
        batch: list[tuple] = []
        for chunk in _chunks(pairs, per_mset):
            batch.append(("MSET", *[x for kv in chunk for x in kv]))
            n += len(chunk)
            if len(batch) == msets_per_batch:
                _run(target, c, batch)
                batch = []
        if batch:
            _run(target, c, batch)
    return n


def _run(target: Target, client, batch: list[tuple]) -> None:
    replies = client.execute_many(batch) if target.kind == "aofnode" else client.pipeline(batch)
    bad = [r for r in replies if r != "OK"]
    if bad:
        raise RuntimeError(f"loading the keyspace failed: {bad[0]!r}")
