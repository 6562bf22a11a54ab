"""Closer actor: performs blocking close(2) and unlink(2) jobs off the log actor's hot path.

Design (after Redis's bio.c BIO_CLOSE_FILE):
- Owns nothing but a queue of jobs. It serves one Unix SEQPACKET socket in the abstract
  namespace; the log actor connects and sends jobs, each a msgpack map
  ``{"id": n, "op": "close" | "unlink", "path": str}``. A ``close`` job carries the fd to close
  in SCM_RIGHTS, so the closer holds the last reference to the file and the kernel frees its
  blocks here (unlinking or closing the last reference of a 1 GiB file blocks ~270 ms on this
  machine).
- A ``close`` job is held until its ``{"op": "release", "id": n}`` message arrives: the
  submitter sends the job, closes its own copy of the fd, then sends the release. Without that
  step the closer could close its copy first, and the submitter's close(2) would be the last
  reference after all (seen here: 18 ms freeing a 70 MB file in the log actor). If the
  submitter's connection drops, its held jobs are released (its copies died with it).
- Jobs run one at a time in the order they were released (FIFO), like a bio job list.
- After each job it replies ``{"id": n, "ok": bool, "seconds": float}``; that is how the
  submitter learns the job is done (``closer_pending_jobs`` in INFO counts the missing replies).
- It never touches the keyspace or the live AOF. On SIGTERM it finishes the queued jobs, then
  exits 0. Jobs lost with a killed closer only leak an fd (gone with the process) or leave a
  file that start-up cleans (stale temp files).

``CloserClient`` is the submitting side, used by the log actor: it never blocks; while the
closer is away it keeps jobs (and their fds) in a local queue and reconnects on ``tick``.
"""
from __future__ import annotations

import array
import collections
import os
import select
import signal
import socket
import time

import msgpack

from node.config import Config
from node.logconfig import configure
from node.testhooks import pause_point

__all__ = ["run", "CloserClient"]

_MAX_JOB_BYTES = 64 * 1024


def _recv_job(conn: socket.socket) -> tuple[dict, int | None] | None:
    fds = array.array("i")
    msg, ancdata, _flags, _addr = conn.recvmsg(_MAX_JOB_BYTES, socket.CMSG_LEN(fds.itemsize))
    if not msg:
        return None
    fd = None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
            fd = fds[0]
    return msgpack.unpackb(msg, raw=False), fd


def _do_job(job: dict, fd: int | None, log, data_dir: str) -> bool:
    started = time.monotonic()
    ok = True
    try:
        if fd is not None:
            pause_point("closer_before_close", data_dir)
            os.close(fd)
        if job.get("op") == "unlink":
            try:
                os.unlink(job["path"])
            except FileNotFoundError:
                pass
    except OSError as exc:
        ok = False
        log.error("closer_job_failed", kind=job.get("op"), path=job.get("path"), errno=exc.errno)
    seconds = time.monotonic() - started
    log.info("closer_job_done", kind=job.get("op"), path=job.get("path"), seconds=round(seconds, 6))
    job["seconds"] = seconds
    return ok


def run(config: Config) -> int:
    log = configure("closer", config.log_format, config.log_file)
    stopping = False

    def on_term(_sig, _frm):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    listener.bind(config.closer_address)
    listener.listen(8)
    conns: list[socket.socket] = []
    queue: collections.deque = collections.deque()
    held: dict[tuple[int, object], tuple] = {}  # (conn fileno, job id) -> (conn, job, fd)
    log.info("actor_started", address=config.closer_address.lstrip("\0"))
    while not stopping or queue:
        if queue:
            conn, job, fd = queue.popleft()
            ok = _do_job(job, fd, log, config.dir)
            try:
                conn.send(msgpack.packb({"id": job.get("id"), "ok": ok, "seconds": job["seconds"]}))
            except OSError:
                pass  # the submitter went away; its replacement does not wait for this reply
            continue
        try:
            readable, _, _ = select.select([listener, *conns], [], [], 0.5)
        except InterruptedError:
            continue
        for sock in readable:
            if sock is listener:
                conn, _ = listener.accept()
                conns.append(conn)
                continue
            try:
                got = _recv_job(sock)
            except (OSError, ValueError, msgpack.UnpackException) as exc:
                log.warning("closer_bad_job", error=str(exc))
                got = None if isinstance(exc, OSError) else ({}, None)
            if got is None:
                for key in [k for k in held if k[0] == sock.fileno()]:
                    queue.append(held.pop(key))  # the submitter is gone: its copies are closed
                conns.remove(sock)
                sock.close()
                continue
            job, fd = got
            op = job.get("op") if isinstance(job, dict) else None
            if op == "release":
                entry = held.pop((sock.fileno(), job.get("id")), None)
                if entry is not None:
                    queue.append(entry)
                continue
            if op not in ("close", "unlink"):
                if fd is not None:
                    os.close(fd)
                continue
            if op == "close" and fd is not None:
                held[(sock.fileno(), job.get("id"))] = (sock, job, fd)
            else:
                queue.append((sock, job, fd))
    log.info("actor_stopped")
    return 0


class CloserClient:
    """The log actor's handle on the closer. Never blocks; see the module docstring."""

    def __init__(self, address: str, log) -> None:
        self.address = address
        self.log = log
        self.sock: socket.socket | None = None
        self.backlog: collections.deque = collections.deque()  # (job, fd) not yet sent
        self.in_flight: set[int] = set()
        self.done_jobs = 0
        self._next_id = 1
        self._last_connect = 0.0

    @property
    def pending_jobs(self) -> int:
        return len(self.backlog) + len(self.in_flight)

    def submit_close(self, fd: int, path: str) -> int:
        """Hand ``fd`` over; the closer closes it. Our own copy of the fd is closed here, which
        is cheap because the closer's copy (or the queue's) is still a reference."""
        return self._submit({"op": "close", "path": path}, fd)

    def submit_unlink(self, path: str) -> int:
        return self._submit({"op": "unlink", "path": path}, None)

    def _submit(self, job: dict, fd: int | None) -> int:
        job["id"] = self._next_id
        self._next_id += 1
        self.backlog.append((job, fd))
        self.tick()
        return job["id"]

    def fileno(self) -> int | None:
        return self.sock.fileno() if self.sock is not None else None

    def tick(self) -> None:
        """Connect if needed, send the backlog, collect replies. Non-blocking."""
        if self.sock is None and not self._connect():
            return
        self._read_replies()
        while self.backlog and self.sock is not None:
            job, fd = self.backlog[0]
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))] if fd is not None else []
            try:
                self.sock.sendmsg([msgpack.packb(job)], anc)
            except BlockingIOError:
                return
            except OSError as exc:
                self.log.warning("closer_unreachable", errno=exc.errno)
                self._drop_connection()
                return
            self.backlog.popleft()
            if job["op"] == "release":
                continue
            self.in_flight.add(job["id"])
            if fd is not None:
                # The message in flight holds a reference now, so this close is never the last
                # one; the release that follows lets the closer drop the real last reference.
                os.close(fd)
                self.backlog.appendleft(({"op": "release", "id": job["id"]}, None))

    def _connect(self) -> bool:
        now = time.monotonic()
        if now - self._last_connect < 0.2:
            return False
        self._last_connect = now
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.connect(self.address)
        except OSError:
            sock.close()
            return False
        sock.setblocking(False)
        self.sock = sock
        return True

    def _read_replies(self) -> None:
        while self.sock is not None:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                self._drop_connection()
                return
            if not data:
                self._drop_connection()
                return
            reply = msgpack.unpackb(data, raw=False)
            self.in_flight.discard(reply.get("id"))
            self.done_jobs += 1

    def _drop_connection(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        # Jobs sent to a closer that died are gone with it (their fds died with the process).
        self.in_flight.clear()

    def drain(self, timeout: float) -> bool:
        """Wait (bounded) until every job is done: used at shutdown only."""
        deadline = time.monotonic() + timeout
        while self.pending_jobs and time.monotonic() < deadline:
            self.tick()
            if self.sock is not None:
                select.select([self.sock], [], [], 0.05)
            else:
                time.sleep(0.05)
        return self.pending_jobs == 0
