"""The live append-only file: appends, fsync policies, group commit and write errors.

Design:
- ``AofWriter`` owns the fd of the live AOF. The log actor calls ``append(data)`` once per
  cycle with every record of the cycle (group commit: one write(2), and under ``always`` one
  fdatasync, for all the clients of the cycle), and ``tick()`` about every 100 ms.
- Policies (as Redis's ``flushAppendOnlyFile``):
  * ``always``: ``append`` returns only after fdatasync covered the data; the caller acknowledges
    after that and never before.
  * ``everysec``: fdatasync runs on a background thread at most once a second, so the log actor
    never waits on the disk. While the previous fsync still runs, a write is held back (kept in
    ``pending``) for up to 2 s, then written anyway and counted in ``delayed_fsyncs``.
  * ``no``: the kernel decides.
- Errors: a failed or short write(2) (ENOSPC, EIO, EFBIG) is undone with ftruncate where
  possible, the bytes stay in ``pending`` and ``status`` turns ``err``. The caller then refuses
  new writes (MISCONF) until a retry from ``tick()`` succeeds. Under ``always`` the bytes since
  the last good fdatasync are kept too (``unsynced``), so a failed fdatasync is retried by
  truncating back to the last durable size and writing them again: after an fsync error the page
  cache may have dropped the dirty pages, so a plain second fsync would prove nothing.
- It never closes an old file on a switch: that is the closer actor's job (see node/closer.py).
"""
from __future__ import annotations

import errno
import os
import threading
import time

from node.aof import format as aof_format

__all__ = ["AofWriter"]

# Redis's rule: hold a write back at most 2 s while the previous background fsync still runs.
MAX_FSYNC_POSTPONE_S = 2.0
# Log an fsync slower than this: on this machine fdatasync takes ~0.2 ms (p50), so 50 ms means
# the disk is in trouble.
SLOW_FSYNC_S = 0.050
# While the AOF is unwritable, retry at most this often.
WRITE_RETRY_INTERVAL_S = 1.0


class _FsyncThread:
    """A single background thread that runs fdatasync jobs (Redis's BIO_AOF_FSYNC)."""

    def __init__(self, on_done) -> None:
        self._cond = threading.Condition()
        self._job: int | None = None
        self._stop = False
        self.in_progress = False
        self._on_done = on_done
        self._thread = threading.Thread(target=self._run, name="aof-fsync", daemon=True)
        self._thread.start()

    def submit(self, fd: int) -> None:
        with self._cond:
            self._job = fd
            self.in_progress = True
            self._cond.notify()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.in_progress:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                fd = self._job
                self._job = None
            started = time.monotonic()
            err: OSError | None = None
            try:
                os.fdatasync(fd)
            except OSError as exc:
                err = exc
            self._on_done(err, time.monotonic() - started)
            with self._cond:
                self.in_progress = False
                self._cond.notify_all()


class AofWriter:
    def __init__(self, path: str, policy: str, log) -> None:
        self.path = path
        self.policy = policy
        self.log = log
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.size = os.fstat(self.fd).st_size
        if self.size == 0:
            self._write_all(aof_format.encode_header())
            os.fdatasync(self.fd)
            self.size = aof_format.HEADER_SIZE
        self.durable_size = self.size
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.unsynced: list[bytes] = []
        self.status = "ok"
        self.last_error: str | None = None
        self._last_retry = 0.0
        self._needs_truncate = False
        self.delayed_fsyncs = 0
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        self.slow_fsyncs = 0
        self._postponed_since = 0.0
        self._last_fsync = time.monotonic()
        self._bg_fsync_error: OSError | None = None
        self._bg_target = 0  # the size the running background fsync covers
        self._bg = _FsyncThread(self._on_bg_fsync_done) if policy == "everysec" else None

    # -- the hot path -------------------------------------------------------------------------

    def append(self, data: bytes) -> bool:
        """Append ``data``; True once it is written (and, under ``always``, fdatasync'ed).

        False means the AOF is not writable: the data stays queued for a retry from ``tick``
        and the caller must not acknowledge it.
        """
        if data:
            self.pending.append(data)
            self.pending_bytes += len(data)
        return self._flush()

    def tick(self) -> None:
        """Called about every 100 ms: retries after errors, starts the once-a-second fsync."""
        now = time.monotonic()
        if self.status == "err":
            if now - self._last_retry >= WRITE_RETRY_INTERVAL_S:
                self._last_retry = now
                self._flush()
            return
        if self.pending:
            self._flush()
        if self.policy == "everysec" and now - self._last_fsync >= 1.0 and self.size > self.durable_size:
            self._start_bg_fsync(now)

    def fsync_now(self) -> bool:
        """Flush and fdatasync in the caller's thread (shutdown, rewrite switch)."""
        if not self._flush(force=True):
            return False
        if self._bg is not None:
            self._bg.wait_idle()
        return self._fdatasync()

    # -- internals ----------------------------------------------------------------------------

    def _flush(self, force: bool = False) -> bool:
        if self._needs_truncate and not self._retry_unsynced():
            return False
        if not self.pending:
            return self.status == "ok"
        if self._bg is not None and self._bg.in_progress and not force:
            now = time.monotonic()
            if self._postponed_since == 0.0:
                self._postponed_since = now
                return True
            if now - self._postponed_since < MAX_FSYNC_POSTPONE_S:
                return True
            self.delayed_fsyncs += 1
            self.log.warning("aof_fsync_delayed", waited_s=round(now - self._postponed_since, 3),
                             delayed_fsyncs=self.delayed_fsyncs)
        self._postponed_since = 0.0
        data = self.pending[0] if len(self.pending) == 1 else b"".join(self.pending)
        if not self._write_or_undo(data):
            return False
        self.pending.clear()
        self.pending_bytes = 0
        if self.policy == "always":
            self.unsynced.append(data)
            if not self._fdatasync():
                return False
        elif self.policy == "everysec":
            now = time.monotonic()
            if now - self._last_fsync >= 1.0:
                self._start_bg_fsync(now)
        self._mark_ok()
        return True

    def _write_or_undo(self, data: bytes) -> bool:
        before = self.size
        try:
            self._write_all(data)
            return True
        except OSError as exc:
            written = self.size - before
            if written:
                # Redis does the same: cut the partial record so the file ends on a record
                # boundary; if that fails too, keep what was written and queue the rest.
                try:
                    os.ftruncate(self.fd, before)
                    self.size = before
                except OSError:
                    self.pending = [data[written:]]
                    self.pending_bytes = len(data) - written
                    self._mark_err("write", exc)
                    return False
            self.pending = [data]
            self.pending_bytes = len(data)
            self._mark_err("write", exc)
            return False

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            self.size += n
            view = view[n:]

    def _fdatasync(self) -> bool:
        started = time.monotonic()
        try:
            os.fdatasync(self.fd)
        except OSError as exc:
            # The kernel may have dropped the dirty pages (fsyncgate): the retry rewrites them.
            self._needs_truncate = self.policy == "always"
            self._mark_err("fsync", exc)
            return False
        self._after_fsync(time.monotonic() - started)
        self.durable_size = self.size
        self.unsynced.clear()
        return True

    def _retry_unsynced(self) -> bool:
        try:
            os.ftruncate(self.fd, self.durable_size)
            self.size = self.durable_size
            for chunk in self.unsynced:
                self._write_all(chunk)
            os.fdatasync(self.fd)
        except OSError as exc:
            self._mark_err("fsync", exc)
            return False
        self._needs_truncate = False
        self.durable_size = self.size
        self.unsynced.clear()
        self._mark_ok()
        return True

    def _start_bg_fsync(self, now: float) -> None:
        if self._bg is None or self._bg.in_progress:
            return
        self._last_fsync = now
        self._bg_target = self.size
        self._bg.submit(self.fd)

    def _on_bg_fsync_done(self, err: OSError | None, seconds: float) -> None:
        # Runs on the fsync thread: only plain attribute stores, read by the log actor's thread.
        if err is None:
            self.durable_size = max(self.durable_size, self._bg_target)
            self._after_fsync(seconds)
        self._bg_fsync_error = err

    def _after_fsync(self, seconds: float) -> None:
        self.fsyncs += 1
        self.fsync_seconds += seconds
        if seconds >= SLOW_FSYNC_S:
            self.slow_fsyncs += 1
            self.log.warning("aof_fsync_slow", seconds=round(seconds, 4), slow_fsyncs=self.slow_fsyncs)

    def check_bg_fsync(self) -> None:
        """Fold the background thread's last result into ``status`` (log actor's thread)."""
        err, self._bg_fsync_error = self._bg_fsync_error, None
        if err is not None:
            self._mark_err("fsync", err)

    def _mark_err(self, op: str, exc: OSError) -> None:
        if self.status != "err":
            self.log.error("aof_write_error", op=op, errno=exc.errno,
                           error=errno.errorcode.get(exc.errno or 0, str(exc)),
                           path=self.path, size=self.size)
        self.status = "err"
        self.last_error = f"{op}: {os.strerror(exc.errno) if exc.errno else exc}"
        self._last_retry = time.monotonic()

    def _mark_ok(self) -> None:
        if self.status == "err":
            self.log.info("aof_write_recovered", path=self.path, size=self.size)
        self.status = "ok"
        self.last_error = None

    def ready_to_switch(self) -> bool:
        """True when the fd can be switched (rewrite step 4.4) without losing or repeating a
        byte: nothing queued, no error, no background fsync running on the old fd."""
        return (self.status == "ok" and not self.pending and not self._needs_truncate
                and not (self._bg is not None and self._bg.in_progress))

    def switch_to(self, fd: int, size: int) -> int:
        """Rewrite step 4.4: append to ``fd`` from now on; return the old fd, not closed (the
        caller hands it to the closer). The new file was fdatasync'ed by the caller."""
        old, self.fd = self.fd, fd
        self.size = self.durable_size = size
        self.unsynced.clear()
        return old

    def close_fd_later(self) -> int:
        """Give up the fd without closing it; the caller hands it to the closer actor."""
        if self._bg is not None:
            self._bg.wait_idle()
            self._bg.stop()
        fd, self.fd = self.fd, -1
        return fd
