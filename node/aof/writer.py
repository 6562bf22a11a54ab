"""The live append-only file: appends, fsync policies, group commit and write errors.

Design (docs/aof.md, "Durability and the fsync policies", is the same from a user's side):
- ``AofWriter`` owns the fd of the live AOF (mode 0600, see node/aof/fileops.py). The log actor
  calls ``append(data)`` once per cycle with every record of the cycle (group commit: one
  write(2), and under ``always`` one fdatasync, for all the clients of the cycle), and ``tick()``
  about every 100 ms. At open the directory is fsynced, so the file's name is durable before the
  first acknowledgement (a new file, or one a killed predecessor created).
- Policies, as Redis's ``flushAppendOnlyFile``: ``always``: ``append`` returns only after an
  fdatasync covered the data. ``everysec``: fdatasync runs at most once a second on a one-worker
  executor, its result read back on the log actor's thread (``check_bg_fsync``); a write waits
  for a running one at most 2 s (``delayed_fsyncs``). ``no``: the kernel decides.
- Errors: a failed write(2) (undone with ftruncate where possible, its bytes kept in
  ``pending``), fdatasync or directory fsync turns ``status`` to ``err`` (MISCONF for writes)
  until a retry from ``tick()`` succeeds. Under ``always`` the bytes since the last good
  fdatasync (``unsynced``) are written again after truncating back: after an fsync error the
  page cache may have dropped the dirty pages, so a second fsync alone would prove nothing.
- It never closes an old file on a switch: that is the closer actor's job.
"""
from __future__ import annotations

import errno
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor

from aofnode.aof import format as aof_format
from aofnode.aof.fileops import fsync_dir, open_dir, open_private, write_all

__all__ = ["AofWriter"]

# Redis's rule: hold a write back at most 2 s while the previous background fsync still runs.
MAX_FSYNC_POSTPONE_S = 2.0
# Log an fsync slower than this: on this machine fdatasync takes ~0.2 ms (p50), so 50 ms means
# the disk is in trouble.
SLOW_FSYNC_S = 0.050
# While the AOF is unwritable, retry at most this often.
WRITE_RETRY_INTERVAL_S = 1.0
# fsync_now and close_fd_later wait this long at most for a running background fsync.
BG_FSYNC_WAIT_S = 10.0


def _timed_fdatasync(fd: int) -> float:
    started = time.monotonic()
    os.fdatasync(fd)
    return time.monotonic() - started


class _FsyncWorker:
    """Redis's BIO_AOF_FSYNC: one background thread, at most one fdatasync in flight."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aof-fsync")
        self._future: Future | None = None
        self.target = 0  # the file size the fsync in flight covers

    @property
    def in_progress(self) -> bool:
        return self._future is not None and not self._future.done()

    def submit(self, fd: int, target: int) -> None:
        self.target = target
        self._future = self._pool.submit(_timed_fdatasync, fd)

    def take_result(self) -> tuple[bool, float, OSError | None] | None:
        """(ok, seconds, error) of a finished fsync not taken yet, else None."""
        future = self._future
        if future is None or not future.done():
            return None
        self._future = None
        exc = future.exception()
        return (False, 0.0, exc) if exc is not None else (True, future.result(), None)

    def wait_idle(self, timeout: float = BG_FSYNC_WAIT_S) -> bool:
        future = self._future
        if future is None:
            return True
        try:
            future.exception(timeout=timeout)
        except TimeoutError:
            return False
        return True

    def stop(self) -> None:
        self._pool.shutdown(wait=False)


class AofWriter:
    def __init__(self, path: str, policy: str, log) -> None:
        self.path = path
        self.policy = policy
        self.log = log
        # The data directory, held: the AOF is opened, renamed over and fsynced through this fd,
        # never through a path that a link could redirect (node/aof/fileops.py).
        self.dir_fd = open_dir(os.path.dirname(os.path.abspath(path)))
        # 0600 whatever the umask; an existing AOF with looser bits is tightened.
        try:
            self.fd, _ = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, dir_fd=self.dir_fd)
        except OSError:
            os.close(self.dir_fd)
            raise
        self.size = os.fstat(self.fd).st_size
        if self.size == 0:
            write_all(self.fd, aof_format.encode_header())
            os.fdatasync(self.fd)
            self.size = aof_format.HEADER_SIZE
        self.durable_size = self.size
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.unsynced: list[bytes] = []
        self.status = "ok"
        self.last_error: str | None = None
        self._last_retry = 0.0
        # The causes of ``status == "err"``; it turns ``ok`` only when none is left.
        self._write_failed = False   # pending bytes a write(2) could not write
        self._needs_truncate = False  # ``always``: an fdatasync failed, rewrite ``unsynced``
        self._bg_failed = False      # ``everysec``: a background fdatasync failed
        self._dir_unsynced = False   # the directory entry of the live file may not be durable
        self.delayed_fsyncs = 0
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        self.slow_fsyncs = 0
        self._postponed_since = 0.0
        # SAVE: the next append is fdatasync'ed before it returns, whatever the policy (the
        # entries of SAVE's own cycle, which are appended after it ran, before its reply).
        self.sync_next_append = False
        self._last_fsync = time.monotonic()
        self._bg = _FsyncWorker() if policy == "everysec" else None
        # The file may be new, or created by a predecessor killed before it fsynced the
        # directory: either way its name must be durable before we acknowledge anything.
        self.sync_directory()

    # -- the hot path -------------------------------------------------------------------------

    def append(self, data: bytes) -> bool:
        """Append ``data``; True once it is written (and, under ``always``, fdatasync'ed).

        False means the AOF is not writable: the data stays queued for a retry from ``tick``
        and the caller must not acknowledge it.
        """
        if data:
            self.pending.append(data)
            self.pending_bytes += len(data)
        if self.sync_next_append:  # SAVE ran in the cycle this data comes from
            self.sync_next_append = False
            return self.fsync_now()
        return self._flush()

    def tick(self) -> None:
        """Called about every 100 ms: retries after errors, starts the once-a-second fsync."""
        now = time.monotonic()
        if self.status == "err":
            if now - self._last_retry >= WRITE_RETRY_INTERVAL_S:
                self._last_retry = now
                self._retry()
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
            self.check_bg_fsync()
        return self._fdatasync()

    def set_policy(self, policy: str) -> bool:
        """CONFIG SET appendfsync: everything written so far is fdatasync'ed first, so no write
        acknowledged under the old policy is left waiting for a fsync the new one never does.
        False (the policy unchanged) if that fsync failed."""
        if policy == self.policy:
            return True
        if not self.fsync_now():
            return False
        if policy == "everysec" and self._bg is None:
            self._bg = _FsyncWorker()
        self.policy = policy
        return True

    @property
    def directory_durable(self) -> bool:
        """False while the live file's directory entry may not survive a power loss (the last
        directory fsync failed and no retry has succeeded yet)."""
        return not self._dir_unsynced

    @property
    def bg_fsync_in_progress(self) -> bool:
        """INFO's ``aof_pending_bio_fsync``."""
        return self._bg is not None and self._bg.in_progress

    def check_bg_fsync(self) -> None:
        """Fold a finished background fsync into the counters and ``status`` (log actor's
        thread; called from its tick and before any decision that depends on it)."""
        done = self._bg.take_result() if self._bg is not None else None
        if done is None:
            return
        ok, seconds, exc = done
        if not ok:
            self._bg_failed = True
            self._mark_err("fsync", exc)
            return
        self.durable_size = max(self.durable_size, self._bg.target)
        self._after_fsync(seconds)
        if self._bg_failed:
            self._bg_failed = False
            self._mark_ok()

    def sync_directory(self) -> bool:
        """fsync the directory of the live file: after creating it, and after the rewrite
        renamed a new file over it (step 4.4). On failure ``status`` is ``err`` (writes get
        MISCONF, reads are served) until a retry from ``tick`` succeeds."""
        try:
            fsync_dir(self.path, dir_fd=self.dir_fd)
        except OSError as exc:
            self._dir_unsynced = True
            self._mark_err("fsync_dir", exc)
            return False
        if self._dir_unsynced:
            self._dir_unsynced = False
            self._mark_ok()
        return True

    # -- the rewrite's switch -----------------------------------------------------------------

    def ready_to_switch(self) -> bool:
        """True when the fd can be switched (rewrite step 4.4) without losing or repeating a
        byte: nothing queued, no error, no background fsync running on the old fd."""
        self.check_bg_fsync()
        return (self.status == "ok" and not self.pending and not self._needs_truncate
                and not self.bg_fsync_in_progress)

    def switch_to(self, fd: int, size: int) -> int:
        """Rewrite step 4.4: append to ``fd`` from now on; return the old fd, not closed (the
        caller hands it to the closer). The new file was fdatasync'ed by the caller; its name
        is durable only after ``sync_directory``."""
        old, self.fd = self.fd, fd
        self.size = self.durable_size = size
        self.unsynced.clear()
        return old

    def close_fd_later(self) -> int:
        """Give up the fd without closing it; the caller hands it to the closer actor."""
        if self._bg is not None:
            self._bg.wait_idle()
            self.check_bg_fsync()
            self._bg.stop()
        fd, self.fd = self.fd, -1
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1
        return fd

    # -- internals ----------------------------------------------------------------------------

    def _retry(self) -> None:
        """One retry of whatever made ``status`` err, oldest cause first."""
        if self._dir_unsynced and not self.sync_directory():
            return
        if self._bg_failed:
            self.check_bg_fsync()
            if self._bg_failed:  # a new background fsync; its success clears the error
                self._start_bg_fsync(time.monotonic())
                return
        self._flush()

    def _flush(self, force: bool = False) -> bool:
        if self._needs_truncate and not self._retry_unsynced():
            return False
        if not self.pending:
            self._mark_ok()
            return self.status == "ok"
        if self.bg_fsync_in_progress and not force:
            now = time.monotonic()
            if self._postponed_since == 0.0:
                self._postponed_since = now
                return self.status == "ok"
            if now - self._postponed_since < MAX_FSYNC_POSTPONE_S:
                return self.status == "ok"
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
        return self.status == "ok"

    def _write_or_undo(self, data: bytes) -> bool:
        before = self.size
        try:
            write_all(self.fd, data)
        except OSError as exc:
            written = getattr(exc, "written", 0)
            self.size = before + written
            self.pending, self.pending_bytes = [data], len(data)
            if written:
                # Redis does the same: cut the partial record so the file ends on a record
                # boundary; if that fails too, keep what was written and queue the rest.
                try:
                    os.ftruncate(self.fd, before)
                    self.size = before
                except OSError:
                    self.pending, self.pending_bytes = [data[written:]], len(data) - written
            self._write_failed = True
            self._mark_err("write", exc)
            return False
        self.size = before + len(data)
        self._write_failed = False
        return True

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
                write_all(self.fd, chunk)
                self.size += len(chunk)
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
        self.check_bg_fsync()  # fold the previous result before it is replaced
        self._last_fsync = now
        self._bg.submit(self.fd, self.size)

    def _after_fsync(self, seconds: float) -> None:
        self.fsyncs += 1
        self.fsync_seconds += seconds
        if seconds >= SLOW_FSYNC_S:
            self.slow_fsyncs += 1
            self.log.warning("aof_fsync_slow", seconds=round(seconds, 4), slow_fsyncs=self.slow_fsyncs)

    def _mark_err(self, op: str, exc: BaseException) -> None:
        code = getattr(exc, "errno", None)
        if self.status != "err":
            self.log.error("aof_write_error", op=op, errno=code,
                           error=errno.errorcode.get(code or 0, str(exc)),
                           path=self.path, size=self.size)
        self.status = "err"
        self.last_error = f"{op}: {os.strerror(code) if code else exc}"
        self._last_retry = time.monotonic()

    def _mark_ok(self) -> None:
        """``status`` back to ``ok`` unless a cause of error is still outstanding."""
        if self._write_failed or self._needs_truncate or self._bg_failed or self._dir_unsynced:
            return
        if self.status == "err":
            self.log.info("aof_write_recovered", path=self.path, size=self.size)
        self.status = "ok"
        self.last_error = None
