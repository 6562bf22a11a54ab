"""Closer actor: performs blocking close(2) and unlink(2) jobs off the log actor's hot path.

Design (after Redis's bio.c BIO_CLOSE_FILE):
- Owns nothing but a queue of jobs. It listens on ``<dir>/run/closer.sock`` (SEQPACKET, only
  sibling actors get in: node/actors/private_sockets.py); the log actor connects and sends
  ``CloseJob``/``UnlinkJob``/``Release`` (node/actors/messages.py). A ``CloseJob`` carries the fd
  to close in SCM_RIGHTS, so the closer holds the last reference to the file and the kernel
  frees its blocks here (unlinking or closing the last reference of a 1 GiB file blocks
  ~270 ms on this machine).
- A ``CloseJob`` is held until its ``Release`` arrives: the submitter sends the job, closes its
  own copy of the fd, then sends the release. Without that step the closer could close its copy
  first, and the submitter's close(2) would be the last reference after all (seen here: 18 ms
  freeing a 70 MB file in the log actor). If the submitter's connection drops, its held jobs
  are released (its copies died with it).
- Trusts no path. An ``UnlinkJob`` runs only for a rewrite temp file (``temp-rewriteaof-*``)
  directly inside the data directory, checked after resolving the path; anything else is
  refused with an error reply. A ``CloseJob``'s path is only a label for the log.
- Every malformed job (bad msgpack, wrong types, a missing fd, extra fds) gets a ``JobDone``
  with ``ok=False`` and a reason, or a log line if it has no usable id; fds that came with it
  are closed. Nothing a peer sends can crash the loop.
- Jobs run one per turn, in the order they were released (FIFO), like a bio job list; after
  each it replies ``JobDone(id, ok, seconds, error)``: that is how the submitter learns a job is
  done (``closer_pending_jobs`` in INFO counts the missing replies).
- It never touches the keyspace or the live AOF. On SIGTERM it finishes the queued jobs, then
  exits 0. Jobs lost with a killed closer only leak an fd (gone with the process) or leave a
  temp file that start-up cleans.

``CloserClient`` is the submitting side, used by the log actor (node/actors/closer_client.py).
"""
from __future__ import annotations

import collections
import os
import socket
import time
from typing import Callable

import msgpack

from node.actors import messages as m
from node.actors import private_sockets
from node.actors.runtime import Actor, Runtime
from node.aof.rewrite import TEMP_PREFIX
from node.config import Config
from node.testhooks import make_pause

__all__ = ["Closer", "MAX_JOB_BYTES", "unlink_allowed", "main"]

# A job is a few dozen bytes; anything near this is garbage (and is cut by SEQPACKET).
MAX_JOB_BYTES = 64 * 1024
_MAX_FDS = 4


def unlink_allowed(path: str, data_dir: str) -> str | None:
    """None if the closer may unlink ``path``, else the reason it may not."""
    name = os.path.basename(path)
    if not (name.startswith(TEMP_PREFIX) and name.endswith(".aof")):
        return f"not a rewrite temp file: {name!r}"
    real_dir = os.path.realpath(data_dir)
    if os.path.realpath(os.path.dirname(os.path.abspath(path))) != real_dir:
        return "not directly inside the data directory"
    if os.path.islink(path):
        return "a symbolic link"
    return None


class _Conn:
    __slots__ = ("sock", "held")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.held: dict[int, tuple] = {}  # job id -> queued entry, waiting for its Release


class Closer(Actor):
    def __init__(self, data_dir: str, path: str, log, pause: Callable[[str], None] = lambda _s: None) -> None:
        self.data_dir = data_dir
        self.path = path
        self.log = log
        self.pause = pause
        self.queue: collections.deque = collections.deque()  # (conn, job, fd)
        self.conns: dict[int, _Conn] = {}
        self.stopping = False
        self.jobs_done = 0
        self.runtime: Runtime | None = None
        self.listener: private_sockets.SiblingListener | None = None

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.listener = private_sockets.SiblingListener(self.path, socket.SOCK_SEQPACKET, self.log, "closer")
        runtime.watch(self.listener.fileno(), self._accept)
        self.log.info("actor_started", address=self.path)

    @property
    def busy(self) -> bool:
        return bool(self.queue)

    def on_turn(self) -> None:
        if self.queue:
            self._run_one()

    def on_stop_requested(self) -> None:
        self.stopping = True

    def finished(self) -> bool:
        return not self.queue

    def on_stop(self) -> int:
        for conn in list(self.conns.values()):
            self._drop(conn)
        if self.listener is not None:
            self.listener.close()
        self.log.info("actor_stopped", jobs_done=self.jobs_done)
        return 0

    # -- connections ----------------------------------------------------------------------------

    def _accept(self) -> None:
        for sock in self.listener.accept():
            conn = _Conn(sock)
            self.conns[sock.fileno()] = conn
            self.runtime.watch(sock.fileno(), lambda c=conn: self._read(c))

    def _drop(self, conn: _Conn) -> None:
        """The submitter is gone: its copies of held fds are closed, so run those jobs now."""
        self.queue.extend(conn.held.values())
        conn.held.clear()
        self.runtime.unwatch(conn.sock.fileno())
        self.conns.pop(conn.sock.fileno(), None)
        conn.sock.close()

    def _read(self, conn: _Conn) -> None:
        while True:
            try:
                data, fds, flags, _ = socket.recv_fds(conn.sock, MAX_JOB_BYTES, _MAX_FDS)
            except BlockingIOError:
                return
            except OSError:
                data, fds, flags = b"", [], 0
            if not data and not fds:
                self._drop(conn)
                return
            self._on_job(conn, data, fds, flags)

    # -- jobs -----------------------------------------------------------------------------------

    def _on_job(self, conn: _Conn, data: bytes, fds: list[int], flags: int) -> None:
        try:
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise m.BadMessage("job too large")
            job = m.decode(msgpack.unpackb(data, raw=False))
        except (ValueError, msgpack.UnpackException, m.BadMessage) as exc:
            job_id = _peek_id(data)
            self._refuse(conn, job_id, f"malformed job: {exc}", fds)
            return
        kind = type(job)
        if kind is m.Release:
            _close_all(fds)
            entry = conn.held.pop(job.job_id, None)
            if entry is not None:
                self.queue.append(entry)
            return
        if kind is m.CloseJob and len(fds) == 1:
            conn.held[job.job_id] = (conn, job, fds[0])
            return
        if kind is m.UnlinkJob and not fds:
            reason = unlink_allowed(job.path, self.data_dir)
            if reason is None:
                self.queue.append((conn, job, None))
            else:
                self._refuse(conn, job.job_id, f"refused to unlink {job.path!r}: {reason}", fds)
            return
        self._refuse(conn, getattr(job, "job_id", None),
                     f"{kind.__name__} with {len(fds)} fds is not a job the closer runs", fds)

    def _refuse(self, conn: _Conn, job_id, reason: str, fds: list[int]) -> None:
        _close_all(fds)
        self.log.warning("closer_bad_job", reason=reason, job_id=job_id)
        if type(job_id) is int:
            self._reply(conn, m.JobDone(job_id, False, 0.0, reason))

    def _run_one(self) -> None:
        conn, job, fd = self.queue.popleft()
        started = time.monotonic()
        error = ""
        try:
            if fd is not None:
                self.pause("closer_before_close")
                os.close(fd)
            if type(job) is m.UnlinkJob:
                try:
                    os.unlink(job.path)
                except FileNotFoundError:
                    pass
        except OSError as exc:
            error = f"{os.strerror(exc.errno or 0)} (errno {exc.errno})"
            self.log.error("closer_job_failed", kind=type(job).__name__, path=job.path, errno=exc.errno)
        seconds = time.monotonic() - started
        self.jobs_done += 1
        self.log.info("closer_job_done", kind="close" if fd is not None else "unlink", path=job.path,
                      seconds=round(seconds, 6))
        self._reply(conn, m.JobDone(job.job_id, not error, seconds, error))

    def _reply(self, conn: _Conn, done: m.JobDone) -> None:
        if conn.sock.fileno() < 0:
            return  # the submitter went away; its replacement does not wait for this reply
        try:
            conn.sock.send(msgpack.packb(m.encode(done)))
        except OSError:
            pass


def _peek_id(data: bytes):
    try:
        obj = msgpack.unpackb(data, raw=False)
        return obj[1] if type(obj) is list and len(obj) > 1 and type(obj[1]) is int else None
    except Exception:  # noqa: BLE001 - any garbage: there is simply no id to answer to
        return None


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def main(config: Config, log) -> int:
    private_sockets.prepare_run_dir(config.dir)
    return Runtime(Closer(config.dir, config.closer_path, log, pause=make_pause(config.dir))).run()
