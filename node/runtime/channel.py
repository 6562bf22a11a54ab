"""The front <-> log channel: typed messages over a Unix stream socket, never blocking.

Design:
- Why not ZeroMQ here: the peer's death must be seen at once, and a plain socket shows it as an
  EOF (a ZeroMQ ROUTER says nothing when a peer goes away). Also, a ZeroMQ hop goes app thread
  -> I/O thread -> kernel -> I/O thread -> app thread: between two bare Python processes here a
  ZeroMQ ipc round trip took ~43 us and a Unix socket one ~10 us. Clients keep ZeroMQ; only
  this internal hop is a plain socket.
- The front listens on ``<dir>/run/backend.sock``, the log actor connects; only siblings get in
  (node/runtime/private_sockets.py). A frame is a 4-byte big-endian length, then one msgpack
  array (node/runtime/messages.py). Not msgpack's streaming ``Unpacker``: its buffer never
  shrinks, so one 1 GiB message would leave the front holding 1 GiB for good. Here a message that spans
  reads is gathered in a bytearray of its exact size and dropped once decoded; a message inside
  one read is decoded in place.
- ``send`` never blocks: what the kernel does not take waits in an output buffer, flushed when
  the socket is writable (the owner asks for POLLOUT while ``wants_write``).
- ``receive`` reads into one reused buffer (``recv_into``): a fresh 1 MiB ``recv`` each time
  costs an mmap, an mremap, a munmap and page faults, 10-20 us per receive (profiled).
- The peer's death is an EOF: ``receive`` sets ``closed``. A malformed message from the peer is
  counted in ``bad_messages`` and dropped.
"""
from __future__ import annotations

import socket
import struct

import msgpack

from aofnode.runtime import messages
from aofnode.runtime import private_sockets

__all__ = ["Channel", "connect"]

_RECV_BYTES = 1 << 20
_LENGTH = struct.Struct(">I")
# The length prefix caps a frame at 4 GiB - 1; the log actor's replies per turn and the front's
# batches stay far below (MAX_CYCLE_REPLY_BYTES, MAX_DRAIN x wire.MAX_MESSAGE_BYTES).


def connect(path: str) -> "Channel | None":
    sock = private_sockets.connect(path, socket.SOCK_STREAM)
    return Channel(sock) if sock is not None else None


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        # The number stays known after close: the owner unwatches it from its poller then
        # (a closed socket's fileno() is -1, which would leave a stale registration behind: the
        # actor would later poll a dead fd and crash on a channel that is gone).
        self.fd = sock.fileno()
        self._out = bytearray()
        self._buf = bytearray(_RECV_BYTES)
        self._view = memoryview(self._buf)
        self._head = bytearray()  # a length prefix split across reads
        self._body: bytearray | None = None  # a frame split across reads, and how much is in
        self._filled = 0
        self.closed = False
        self.bad_messages = 0

    def fileno(self) -> int:
        return self.fd

    @property
    def wants_write(self) -> bool:
        return bool(self._out)

    @property
    def pending_bytes(self) -> int:
        """Bytes sent but not yet taken by the kernel (the owner bounds this: back-pressure)."""
        return len(self._out)

    def send(self, msg: messages.Message) -> bool:
        """Queue one message and write what the kernel takes. False if the peer is gone."""
        if self.closed:
            return False
        payload = msgpack.packb(messages.encode(msg))
        data = _LENGTH.pack(len(payload)) + payload
        if self._out:
            self._out += data
            return self.flush()
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close()
            return False
        if n < len(data):
            self._out += memoryview(data)[n:]
        return True

    def flush(self) -> bool:
        while self._out:
            try:
                n = self.sock.send(self._out)
            except BlockingIOError:
                return True
            except OSError:
                self.close()
                return False
            del self._out[:n]
        return True

    def receive(self) -> list[messages.Message]:
        """Every complete message readable now ([] if none yet). After the peer is gone,
        ``closed`` is True (check it after handling what was returned)."""
        got: list[messages.Message] = []
        while True:
            try:
                n = self.sock.recv_into(self._buf)
            except BlockingIOError:
                break
            except OSError:
                n = 0
            if n == 0 or not self._take(self._view[:n], got):
                self.close()
                break
            if n < _RECV_BYTES:
                break
        return got

    def _take(self, view: memoryview, got: list) -> bool:
        """Frame the bytes of one read; False if the stream is broken."""
        pos, end = 0, len(view)
        while pos < end:
            if self._body is not None:  # finish a frame begun in an earlier read
                take = min(end - pos, len(self._body) - self._filled)
                self._body[self._filled:self._filled + take] = view[pos:pos + take]
                self._filled += take
                pos += take
                if self._filled == len(self._body):
                    body, self._body = self._body, None
                    self._decode(body, got)
                continue
            need = _LENGTH.size - len(self._head)
            if self._head or end - pos < _LENGTH.size:
                self._head += view[pos:pos + need]
                pos += min(need, end - pos)
                if len(self._head) < _LENGTH.size:
                    continue
                (length,), self._head = _LENGTH.unpack(self._head), bytearray()
            else:
                (length,) = _LENGTH.unpack_from(view, pos)
                pos += _LENGTH.size
            if end - pos >= length:  # the whole frame is in this read: decode in place
                self._decode(view[pos:pos + length], got)
                pos += length
            else:
                self._body, self._filled = bytearray(length), 0
        return True

    def _decode(self, data, got: list) -> None:
        try:
            got.append(messages.decode(msgpack.unpackb(data, raw=False)))
        except (ValueError, msgpack.UnpackException, messages.BadMessage):
            self.bad_messages += 1

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()
