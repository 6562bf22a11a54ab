"""Closer actor: performs blocking close(2) and unlink(2) jobs off the log actor's hot path.

Design (after Redis's bio.c BIO_CLOSE_FILE; docs/design.md, "The closer", gives the reasons and
the measurements):
- Owns a queue of jobs from the log actor on ``<dir>/run/closer.sock`` (SEQPACKET, siblings
  only): ``CloseJob`` (its fd in SCM_RIGHTS), ``UnlinkJob``, ``Release``. A ``CloseJob`` is held
  until its ``Release``, so the closer's close is the file's last reference.
- Runs jobs one per turn in release order (FIFO) and answers each with ``JobDone(id, ok,
  seconds, error)``: that is how the submitter learns a job is done.
- Frees a big file with no name left in ftruncate+fdatasync steps, ``free_step_pause_s`` apart.
- Trusts no path: unlinks only a rewrite temp file directly inside the data directory, by name
  through an fd on it. A malformed job gets ``JobDone(ok=False)``; nothing crashes the loop.
- Never touches the keyspace or the live AOF (never truncates a file that still has a name).
  On SIGTERM it finishes the queued jobs, then exits 0.
"""
from __future__ import annotations

import collections
import fcntl
import os
import socket
import stat
import time
from typing import Callable

import msgpack

from aofnode.runtime import messages as m
from aofnode.runtime import private_sockets
from aofnode.runtime.actor import Actor, Runtime
from aofnode.aof.fileops import open_dir
from aofnode.aof.rewrite import TEMP_PREFIX
from aofnode.config import Config
from aofnode.testhooks import make_pause

__all__ = ["Closer", "MAX_JOB_BYTES", "FREE_STEP_BYTES", "FREE_STEP_PAUSE_S", "unlink_allowed", "main"]

# A job is a few dozen bytes; anything near this is garbage (and is cut by SEQPACKET).
MAX_JOB_BYTES = 64 * 1024
_MAX_FDS = 4
# Freeing in steps (see the docstring; figures in docs/benchmarks.md). 0 bytes: one close(2).
# 64 MiB: a 1 GiB file in ~17 steps; unloaded, a concurrent fdatasync waited up to 9-11 ms per
# 64 MiB step against 30 ms for the whole file at once (24 ms in 128 MiB steps). 20 ms apart,
# the old AOF is gone in 0.6-0.9 s, well before the next rewrite could want the closer.
FREE_STEP_BYTES = 64 << 20
FREE_STEP_PAUSE_S = 0.02


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


class _Freeing:
    """A job whose file is being cut down, one ``ftruncate`` step per turn."""
    __slots__ = ("conn", "job", "fds", "fd", "size", "started", "next_at", "steps", "longest_step",
                 "bytes", "step_error")

    def __init__(self, conn: _Conn, job, fds: list[int], fd: int, size: int, started: float) -> None:
        self.conn, self.job, self.fds, self.fd = conn, job, fds, fd
        self.size = self.bytes = size
        self.started = self.next_at = started
        self.steps = 0
        self.longest_step = 0.0
        self.step_error: int | None = None


class Closer(Actor):
    def __init__(self, data_dir: str, path: str, log, pause: Callable[[str], None] = lambda _s: None,
                 free_step_bytes: int = FREE_STEP_BYTES, free_step_pause_s: float = FREE_STEP_PAUSE_S) -> None:
        self.data_dir = data_dir
        self.path = path
        self.log = log
        self.pause = pause
        self.free_step_bytes = free_step_bytes
        self.free_step_pause_s = free_step_pause_s
        self.freeing: _Freeing | None = None  # the job at work, between two of its steps
        self.queue: collections.deque = collections.deque()  # (conn, job, fd)
        self.conns: dict[int, _Conn] = {}
        self.stopping = False
        self.jobs_done = 0
        self.runtime: Runtime | None = None
        self.listener: private_sockets.SiblingListener | None = None
        self._dir_fd: int | None = None

    def _data_dir_fd(self) -> int:
        if self._dir_fd is None:
            self._dir_fd = open_dir(self.data_dir)
        return self._dir_fd

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.listener = private_sockets.SiblingListener(self.path, socket.SOCK_SEQPACKET, self.log, "closer")
        runtime.watch(self.listener.fileno(), self._accept)
        self.log.info("actor_started", address=self.path)

    @property
    def busy(self) -> bool:
        if self.freeing is not None:
            return self.stopping or time.monotonic() >= self.freeing.next_at
        return bool(self.queue)

    @property
    def max_wait(self) -> float | None:
        return None if self.freeing is None else max(0.0, self.freeing.next_at - time.monotonic())

    def on_turn(self) -> None:
        if self.freeing is not None:
            if self.stopping or time.monotonic() >= self.freeing.next_at:
                self._step(self.freeing)
        elif self.queue:
            self._run_one()

    def on_stop_requested(self) -> None:
        self.stopping = True

    def finished(self) -> bool:
        return not self.queue and self.freeing is None

    def on_stop(self) -> int:
        for conn in list(self.conns.values()):
            self._drop(conn)
        if self.freeing is not None:  # only if stopped without ``finished()`` (a test's teardown)
            _close_all(self.freeing.fds)
            self.freeing = None
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
        fds = [] if fd is None else [fd]
        try:
            if fd is not None:
                self.pause("closer_before_close")
            else:  # an UnlinkJob: hold the file open across the unlink, to free it in steps
                fds = self._open_to_free(job.path)
                try:
                    os.unlink(os.path.basename(job.path), dir_fd=self._data_dir_fd())
                except FileNotFoundError:
                    pass
            freeing = self._start_freeing(conn, job, fds, started)
            if freeing is not None:
                self.freeing = freeing
                self._step(freeing)
                return
            _close_fds(fds)
        except OSError as exc:
            _close_all(fds)
            error = f"{os.strerror(exc.errno or 0)} (errno {exc.errno})"
            self.log.error("closer_job_failed", kind=type(job).__name__, path=job.path, errno=exc.errno)
        self._done(conn, job, started, error, kind="close" if fd is not None else "unlink")

    def _open_to_free(self, path: str) -> list[int]:
        """An fd on the temp file ``path`` if it is a regular file big enough to step, else []."""
        if self.free_step_bytes <= 0:
            return []
        try:
            name, dir_fd = os.path.basename(path), self._data_dir_fd()
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_size <= self.free_step_bytes:
                return []
            # O_NOFOLLOW: never a link swapped in since ``unlink_allowed``; O_NONBLOCK: never
            # wait on a FIFO. Whatever fails here leaves the plain unlink to do the job.
            fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return []
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            os.close(fd)
            return []
        return [fd]

    def _start_freeing(self, conn: _Conn, job, fds: list[int], started: float) -> _Freeing | None:
        """A ``_Freeing`` if the file behind ``fds`` is big, nameless and can be truncated."""
        if not fds or self.free_step_bytes <= 0:
            return None
        st = os.fstat(fds[0])
        # st_nlink == 0: only a file nobody can open by name any more is cut (never the live AOF).
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 0 or st.st_size <= self.free_step_bytes:
            return None
        fd = fds[0]
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            try:  # a read-only fd (fileops.replace_file's held copy): the same inode, for writing
                fd = os.open(f"/proc/self/fd/{fds[0]}", os.O_WRONLY | os.O_CLOEXEC)
            except OSError:
                return None
            fds.append(fd)
            wst = os.fstat(fd)
            if (wst.st_dev, wst.st_ino) != (st.st_dev, st.st_ino):
                return None
        return _Freeing(conn, job, fds, fd, st.st_size, started)

    def _step(self, f: _Freeing) -> None:
        """One step: cut the file by ``free_step_bytes``; once that much is left, the close."""
        if f.size > self.free_step_bytes and f.step_error is None:
            # Cut to a multiple of the step, so every cut but the first frees a whole step.
            target = (f.size - 1) // self.free_step_bytes * self.free_step_bytes
            t0 = time.monotonic()
            try:
                os.ftruncate(f.fd, target)
                f.size = target
                f.steps += 1
                # Commit this step's free now, in the closer's own wait: otherwise (everysec) the
                # steps pile up in one journal transaction until the log actor's next fdatasync.
                os.fdatasync(f.fd)
            except OSError as exc:
                f.step_error = exc.errno  # the close frees the rest at once
            now = time.monotonic()
            f.longest_step = max(f.longest_step, now - t0)
            f.next_at = now + self.free_step_pause_s
            return
        self.freeing = None
        error = ""
        t0 = time.monotonic()
        try:
            _close_fds(f.fds)
        except OSError as exc:
            error = f"{os.strerror(exc.errno or 0)} (errno {exc.errno})"
            self.log.error("closer_job_failed", kind=type(f.job).__name__, path=f.job.path, errno=exc.errno)
        f.longest_step = max(f.longest_step, time.monotonic() - t0)
        self._done(f.conn, f.job, f.started, error, kind="close" if type(f.job) is m.CloseJob else "unlink",
                   steps=f.steps, bytes=f.bytes, longest_step_ms=round(f.longest_step * 1000, 3),
                   step_errno=f.step_error)

    def _done(self, conn: _Conn, job, started: float, error: str, kind: str, **fields) -> None:
        seconds = time.monotonic() - started
        self.jobs_done += 1
        self.log.info("closer_job_done", kind=kind, path=job.path, seconds=round(seconds, 6), **fields)
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


def _close_fds(fds: list[int]) -> None:
    """Close every fd (each is gone even if its close(2) fails); raise the first error: the
    errors of these closes are the job's, the caller reports them."""
    first = None
    for fd in fds:
        try:
            os.close(fd)
        except OSError as exc:
            first = first or exc
    if first is not None:
        raise first


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def main(config: Config, log) -> int:
    private_sockets.prepare_run_dir(config.dir)
    return Runtime(Closer(config.dir, config.closer_path, log, pause=make_pause(config.dir))).run()
