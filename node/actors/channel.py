"""The front <-> log channel: typed messages over a Unix stream socket, never blocking.

Design:
- Why not ZeroMQ here: the peer's death must be seen at once, and a plain socket shows it as an
  EOF (a ZeroMQ ROUTER says nothing when a peer goes away). Also, a ZeroMQ hop goes app thread
  -> I/O thread -> kernel -> I/O thread -> app thread: between two bare Python processes here a
  ZeroMQ ipc round trip took ~43 us and a Unix socket one ~10 us. Clients keep ZeroMQ; only
  this internal hop is a plain socket.
- The front listens on ``<dir>/run/backend.sock``, the log actor connects; only siblings get in
  (node/actors/private_sockets.py). A message is one msgpack array (node/actors/messages.py);
  msgpack's streaming ``Unpacker`` does the framing.
- ``send`` never blocks: what the kernel does not take waits in an output buffer, flushed when
  the socket is writable (the owner asks for POLLOUT while ``wants_write``).
- ``receive`` reads into one reused buffer (``recv_into``): a fresh 1 MiB ``recv`` each time
  cost an mmap, an mremap, a munmap and page faults, 10-20 us per receive (profiled).
- The peer's death is an EOF: ``receive`` sets ``closed``. A malformed message from the peer is
  counted in ``bad_messages`` and dropped.
"""
from __future__ import annotations

import socket

import msgpack

from node.actors import messages
from node.actors import private_sockets

__all__ = ["Channel", "connect"]

_RECV_BYTES = 1 << 20
# Sibling peer, but bound anyway: a batch is at most MAX_DRAIN client messages of at most
# codec.MAX_MESSAGE_BYTES each; 2 GiB is the msgpack Unpacker's own ceiling.
_MAX_BUFFER = (1 << 31) - 1


def connect(path: str) -> "Channel | None":
    sock = private_sockets.connect(path, socket.SOCK_STREAM)
    return Channel(sock) if sock is not None else None


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._out = bytearray()
        self._buf = bytearray(_RECV_BYTES)
        self._view = memoryview(self._buf)
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=_MAX_BUFFER)
        self.closed = False
        self.bad_messages = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def wants_write(self) -> bool:
        return bool(self._out)

    def send(self, msg: messages.Message) -> bool:
        """Queue one message and write what the kernel takes. False if the peer is gone."""
        if self.closed:
            return False
        data = msgpack.packb(messages.encode(msg))
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
        eof = False
        while True:
            try:
                n = self.sock.recv_into(self._buf)
            except BlockingIOError:
                break
            except OSError:
                n = 0
            if n == 0:
                eof = True
                break
            self._unpacker.feed(self._view[:n])
            if n < _RECV_BYTES:
                break
        got = []
        try:
            for obj in self._unpacker:
                try:
                    got.append(messages.decode(obj))
                except messages.BadMessage:
                    self.bad_messages += 1
        except (ValueError, msgpack.UnpackException):
            self.bad_messages += 1  # a broken stream cannot be resynchronised: drop the peer
            eof = True
        if eof:
            self.close()
        return got

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()
