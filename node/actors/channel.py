"""The front <-> log channel: msgpack messages over a Unix stream socket, never blocking.

Design:
- Why not ZeroMQ here: the peer's death must be seen at once, and a plain socket shows it as an
  EOF (a ZeroMQ ROUTER says nothing when a peer goes away; the supervisor had to tell the
  front). Also, a ZeroMQ hop goes app thread -> I/O thread -> kernel -> I/O thread -> app
  thread: between two bare Python processes here a ZeroMQ ipc round trip took ~43 us and a Unix
  socket one ~10 us. In the whole node the difference in a client's round trip (~400 us) was
  below the noise of this 2-vCPU machine, so latency is not the reason. Clients keep ZeroMQ;
  only this internal hop is a plain socket.
- The front listens (abstract namespace, nothing on disk), the log actor connects. A message is
  one msgpack array of bytes frames (``[kind, *frames]``, see node/messages.py); msgpack's
  streaming ``Unpacker`` does the framing.
- ``send`` never blocks: what the kernel does not take waits in an output buffer, flushed when
  the socket is writable (the owner polls ``wants_write``).
- The peer's death is an EOF: ``receive`` sets ``closed``. That is how the front learns that the
  log actor died, at once, with no help from the supervisor.
"""
from __future__ import annotations

import socket

import msgpack

__all__ = ["Channel", "listen", "connect"]

_RECV_BYTES = 1 << 20
# Trusted peer, but bound anyway: a batch is at most MAX_DRAIN client messages of at most
# codec.MAX_MESSAGE_BYTES each; 2 GiB is the msgpack Unpacker's own ceiling.
_MAX_BUFFER = (1 << 31) - 1


def listen(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    sock.bind(address)
    sock.listen(8)
    return sock


def connect(address: str) -> "Channel | None":
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        return None
    return Channel(sock)


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._out = bytearray()
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=_MAX_BUFFER)
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def wants_write(self) -> bool:
        return bool(self._out)

    def send(self, frames: list) -> bool:
        """Queue one message and write what the kernel takes. False if the peer is gone."""
        data = msgpack.packb(frames)
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

    def receive(self) -> list:
        """Every complete message readable now ([] if none yet). After the peer is gone,
        ``closed`` is True (check it after handling what was returned)."""
        got = []
        while True:
            try:
                chunk = self.sock.recv(_RECV_BYTES)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self._unpacker.feed(b"")
                got.extend(self._unpacker)
                self.close()
                return got
            self._unpacker.feed(chunk)
            if len(chunk) < _RECV_BYTES:
                break
        got.extend(self._unpacker)
        return got

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()
