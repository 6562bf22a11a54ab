"""The log actor's handles on the closer: ``CloserClient`` (the real one) and ``InlineCloser``.

Design:
- ``CloserClient`` never blocks. Jobs wait in a local backlog (with their fds) while the closer
  is away, and go out on ``tick``, which also reconnects (at most every 200 ms) and collects
  ``JobDone`` replies. The closer is a sibling actor, checked on connect
  (node/runtime/private_sockets.py).
- A close job is sent with its fd (SCM_RIGHTS); our copy is closed right after the send, while
  the message in flight still holds a reference, and then a ``Release`` tells the closer its
  copy is the last. See node/closer/actor.py for why.
- ``InlineCloser`` has the same two submit methods and does the work at once, in the caller:
  a stand-in for benchmarks only (``--aof-close-inline``), to measure what the closer saves.
"""
from __future__ import annotations

import collections
import os
import select
import socket
import time

import msgpack

from aofnode.runtime import messages as m
from aofnode.runtime import private_sockets

__all__ = ["CloserClient", "InlineCloser"]

RECONNECT_INTERVAL_S = 0.2


class CloserClient:
    def __init__(self, path: str, log) -> None:
        self.path = path
        self.log = log
        self.sock: socket.socket | None = None
        self.backlog: collections.deque = collections.deque()  # (message, fd or None) not sent
        self.in_flight: set[int] = set()
        self.failed_jobs = 0
        self._next_id = 1
        self._last_connect = -RECONNECT_INTERVAL_S

    @property
    def pending_jobs(self) -> int:
        return sum(1 for msg, _ in self.backlog if type(msg) is not m.Release) + len(self.in_flight)

    def submit_close(self, fd: int, path: str) -> int:
        """Hand ``fd`` over; the closer closes it (``path`` labels it in the closer's log)."""
        return self._submit(m.CloseJob(self._take_id(), path), fd)

    def submit_unlink(self, path: str) -> int:
        """Unlink a rewrite temp file of ours (the closer refuses any other path)."""
        return self._submit(m.UnlinkJob(self._take_id(), path), None)

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _submit(self, job, fd: int | None) -> int:
        self.backlog.append((job, fd))
        self.tick()
        return job.job_id

    def tick(self) -> None:
        """Connect if needed, send the backlog, collect replies. Non-blocking."""
        if self.sock is None and not self._connect():
            return
        self._read_replies()
        while self.backlog and self.sock is not None:
            msg, fd = self.backlog[0]
            data = msgpack.packb(m.encode(msg))
            try:
                if fd is None:
                    self.sock.send(data)
                else:
                    socket.send_fds(self.sock, [data], [fd])
            except BlockingIOError:
                return
            except OSError as exc:
                self.log.warning("closer_unreachable", errno=exc.errno)
                self._drop_connection()
                return
            self.backlog.popleft()
            if type(msg) is m.Release:
                continue
            self.in_flight.add(msg.job_id)
            if fd is not None:
                # The message in flight holds a reference now, so this close is never the last
                # one; the release that follows lets the closer drop the real last reference.
                os.close(fd)
                self.backlog.appendleft((m.Release(msg.job_id), None))

    def _connect(self) -> bool:
        now = time.monotonic()
        if now - self._last_connect < RECONNECT_INTERVAL_S:
            return False
        self._last_connect = now
        self.sock = private_sockets.connect(self.path, socket.SOCK_SEQPACKET)
        return self.sock is not None

    def _read_replies(self) -> None:
        while self.sock is not None:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._drop_connection()
                return
            try:
                done = m.decode(msgpack.unpackb(data, raw=False))
            except (ValueError, msgpack.UnpackException):
                continue
            if type(done) is m.JobDone:
                self.in_flight.discard(done.job_id)
                if not done.ok:
                    self.failed_jobs += 1
                    self.log.warning("closer_job_refused", job_id=done.job_id, error=done.error)

    def _drop_connection(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        # Jobs sent to a closer that died are gone with it (their fds died with the process).
        self.in_flight.clear()

    def drain(self, timeout: float, reconnect: bool = True) -> bool:
        """Wait (bounded) until every job is done: used at shutdown only. Without ``reconnect``
        it stops as soon as the closer cannot be reached: no one will start another."""
        deadline = time.monotonic() + timeout
        while self.pending_jobs and time.monotonic() < deadline:
            self.tick()
            if self.sock is not None:
                select.select([self.sock], [], [], 0.05)
            elif not reconnect:
                break
            else:
                time.sleep(0.05)  # waiting to reconnect; bounded by ``deadline``
        return self.pending_jobs == 0


class InlineCloser:
    """Benchmark stand-in: closes and unlinks in the caller, and logs how long it blocked."""

    pending_jobs = 0

    def __init__(self, log) -> None:
        self.log = log

    def submit_close(self, fd: int, path: str) -> int:
        started = time.perf_counter()
        os.close(fd)
        self.log.info("rewrite_inline_close", path=path, ms=round((time.perf_counter() - started) * 1000, 3))
        return 0

    def submit_unlink(self, path: str) -> int:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return 0

    def tick(self) -> None:
        pass

    def drain(self, timeout: float, reconnect: bool = True) -> bool:
        return True
