"""Background AOF rewrite: forked child, diff queue, atomic switch, old file closed elsewhere.

Design (after Redis's ``rewriteAppendOnlyFileBackground`` and ``backgroundRewriteDoneHandler``;
docs/aof.md has the same numbered steps and a crash-consistency table):

  1. Start. The log actor forks between two cycles, so the child's memory image is exactly the
     state after the last acknowledged batch. ``gc.freeze()`` first: the parent's collector then
     never walks (and dirties) the containers the child shares. A ``RewriteRun`` is created
     here and dropped at 4.5 or 5: no run sees another's temp file, times or diff.
  2. Child (node/aof/rewrite_child.py). Writes ``temp-rewriteaof-bg-<pid>.aof`` (0600) from its
     image, reports through a pipe and exits 0 only if every write and fdatasync succeeded.
  3. Parent during the rewrite. Every record still goes to the live AOF first (durability never
     depends on the rewrite) and is also kept in the diff queue (the same bytes). Past
     ``diff_limit`` bytes the rewrite is aborted: nothing is lost, the live AOF is complete.
  4. Child exited 0:
     4.1 the diff is appended to the temp file in slices between cycles (``SLICE_BYTES``, ~1 ms
         each), with a background fdatasync every ``CATCHUP_FSYNC_BYTES`` whose error fails the
         rewrite (Linux reports a write-back error once per open file: the final fdatasync
         could succeed over lost bytes); new writes keep going to the live AOF and the diff;
     4.2 when what is left is under ``FINAL_BYTES``, it is appended and the temp file fdatasync'ed;
     4.3 rename(2) over the live file. A failed rename changed nothing: step 5;
     4.4 the writer's append fd switches to the new file and the writer fsyncs the directory.
         From a successful rename on, the switch always completes: if the directory fsync
         fails, the writer's status is ``err`` (MISCONF for writes) until its retry succeeds;
     4.5 the fd of the old file goes to the closer, which drops the last reference, so the
         slow freeing of a big file never runs here (~270 ms for 1 GiB on this machine). Only
         once the rename is durable: while the directory fsync of 4.4 has not succeeded, a power
         cut could bring back the old name on the old file, and the closer cuts big files down
         in steps. The fd is held here meanwhile and handed over from ``tick`` after the
         writer's retry of the directory fsync succeeded (a node stopped before that closes it
         at exit, without cutting it).
         Redis's two scenarios: the AOF is live (the writer's fd is the old file's last
         reference), or the old file is on disk with no fd open on it (a one-time rewrite):
         then ``fileops.replace_file`` opens it before the rename, so the rename is not the unlink.
  5. Failure (fork error, child exit or signal, any write or fdatasync error on the temp file,
     the rename): the closer unlinks that run's temp file, status ``err``, automatic rewrites
     back off 1, 2, 4 ... minutes (capped at an hour). The live AOF is untouched.
  6. Crash anywhere: the live AOF always holds every acknowledged write; start-up removes stale
     temp files (the log actor).

Every file is opened, and the rename done, relative to the writer's fd on the data directory,
never following a link (node/aof/fileops.py).

Test hook: the ``pause`` callable (node/testhooks.py) is called at the steps docs/aof.md lists
under "Test hook" (``forked``, ``diff_catching_up``, ``before_rename`` ...).
"""
from __future__ import annotations

import gc
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import msgpack

from aofnode import sysmem
from aofnode.aof import fileops
from aofnode.aof.rewrite_child import child_main
from aofnode.aof.rewrite_run import (CATCHUP_FSYNC_BYTES, FINAL_BYTES, TEMP_PREFIX, RewriteRun,
                                  fdatasync_and_close, temp_path_for)
from aofnode.retry import backoff_delay
from aofnode.protocol.errors import BUSY, BUSY_REWRITE_MESSAGE, ERR, Error
from aofnode.store.keyspace import Keyspace

__all__ = ["Rewriter", "RewriteRun", "TEMP_PREFIX"]

# Automatic rewrite backoff after failures (Redis 7): 1 min doubling, at most 1 h.
BACKOFF_BASE_S, BACKOFF_MAX_S = 60.0, 3600.0


class Rewriter:
    """The log actor's side of the rewrite. All methods run on the log actor's thread and never
    block for more than one slice of work (the fork itself apart)."""

    def __init__(self, keyspace: Keyspace, writer, closer, aof_path: str, data_dir: str, log,
                 diff_limit: int, auto_percentage: int, auto_min_size: int,
                 child_nice: int = 10, pause=None, memory=None, child_sched: str = "normal") -> None:
        self.keyspace = keyspace
        self.writer = writer
        self.closer = closer  # submit_close(fd, path), submit_unlink(path): never blocks here
        self.aof_path = aof_path
        self.data_dir = data_dir
        self.log = log
        self.diff_limit = diff_limit
        self.auto_percentage = auto_percentage
        self.auto_min_size = auto_min_size
        self.child_nice = child_nice
        self.child_sched = child_sched
        self.pause = pause or (lambda step: None)
        # (rss, available) in bytes, for the copy-on-write check before a fork; tests pass a fake.
        self.memory = memory or (lambda: (sysmem.process_rss(), sysmem.available_memory()))
        self.refusal = ""  # why the last start was refused for memory ("" if it was not)
        self.memory_refusals = 0
        self.run: RewriteRun | None = None
        self.scheduled = False
        self.dying: set[int] = set()  # children killed on abort, not reaped yet
        self._sync_pool: ThreadPoolExecutor | None = None
        # Old AOFs renamed over but not yet durably gone from the directory (4.5): their fds wait
        # here for a successful directory fsync before they go to the closer.
        self.held_old: list[int] = []
        # INFO
        self.base_size = writer.size
        self.latest_fork_usec = 0
        self.total_forks = 0
        self.rewrites = 0
        self.consecutive_failures = 0
        self.last_status = "ok"
        self.last_time_s = -1
        self.last_cow_size = 0
        self.next_auto_at = 0.0

    @property
    def in_progress(self) -> bool:
        """A rewrite runs (steps 1-4): BGREWRITEAOF gets BUSY."""
        return self.run is not None

    @property
    def catching_up(self) -> bool:
        """Step 4 has work left: the log actor polls without waiting, one slice per turn."""
        return self.run is not None and self.run.phase == "catchup"

    # -- requests ---------------------------------------------------------------------------

    def request(self) -> str | Error:
        """BGREWRITEAOF: the reply value, or the ``Error`` to answer."""
        if self.in_progress:
            return Error(BUSY, BUSY_REWRITE_MESSAGE)
        self._reap_dying()
        if self.dying:
            self.scheduled = True
            return "Background append only file rewriting scheduled"
        if self.start("manual"):
            return "Background append only file rewriting started"
        if self.refusal:
            return Error(ERR, f"Can't execute an AOF background rewriting: {self.refusal}")
        return Error(ERR, "Can't execute an AOF background rewriting. "
                          "Please check the server logs for more information.")

    def start(self, trigger: str) -> bool:
        """Step 1: fork the child. False (status err, logged) if the fork failed, or (logged,
        ``refusal`` set) if its copy-on-write would not fit in the free memory."""
        self.scheduled = False
        self.refusal = self._memory_refusal()
        if self.refusal:
            self.memory_refusals += 1
            self.next_auto_at = time.monotonic() + BACKOFF_BASE_S  # auto: look again in a minute
            self.log.warning("rewrite_refused_memory", trigger=trigger, reason=self.refusal,
                             refusals=self.memory_refusals)
            return False
        r, w = os.pipe()
        gc.freeze()
        t0 = time.perf_counter()
        try:
            pid = os.fork()
        except OSError as exc:
            gc.unfreeze()
            os.close(r)
            os.close(w)
            self._failed(f"fork: {os.strerror(exc.errno or 0)}", errno=exc.errno)
            return False
        if pid == 0:
            os.close(r)
            child_main(self.keyspace, temp_path_for(self.data_dir, os.getpid()), w,
                       self.child_nice, self.pause, self.child_sched, dir_fd=self.writer.dir_fd)
        fork_usec = int((time.perf_counter() - t0) * 1e6)
        os.close(w)
        self.latest_fork_usec = fork_usec
        self.total_forks += 1
        self.run = RewriteRun(trigger, pid, r, temp_path_for(self.data_dir, pid))
        self.log.info("rewrite_started", trigger=trigger, fork_usec=fork_usec, child_pid=pid,
                      aof_size=self.writer.size)
        self.pause("forked")
        return True

    def _memory_refusal(self) -> str:
        """Why a child would not fit now ("" if it would). The child shares the parent's pages
        and copies those either side writes to while it runs: the last run's copy-on-write with
        half again of margin, and at least a quarter of the parent's RSS (a write-heavy load
        with a slow child once dirtied ~84% of it) must fit in the memory still available,
        else the fork is an invitation to the OOM killer. Unknown figures (0) never refuse."""
        rss, available = self.memory()
        need = max(int(self.last_cow_size * 1.5), rss // 4)
        if not available or need <= available:
            return ""
        return (f"not enough free memory for the rewrite child's copy-on-write "
                f"(~{need >> 20} MiB needed, {available >> 20} MiB available)")

    # -- step 3 -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Every record the log actor appends to the live AOF, while a rewrite runs."""
        run = self.run
        if run is None or not data:
            return
        run.queue(data)
        if run.diff_bytes > self.diff_limit:
            self.abort("diff_limit", diff_bytes=run.diff_bytes, limit=self.diff_limit)

    # -- the loop's hooks -------------------------------------------------------------------

    def tick(self) -> None:
        if self.held_old and self.writer.directory_durable:
            self._release_old()
        if self.dying:
            self._reap_dying()
            if self.scheduled and not self.dying and self.run is None:
                self.start("scheduled")
        if self.run is None:
            return
        if self.run.phase == "child":
            self._check_child(self.run)
        else:
            self._catch_up(self.run)

    def maybe_auto_start(self) -> None:
        """Growth trigger, checked from the log actor's cron."""
        if self.run is not None or self.dying or self.auto_percentage <= 0:
            return
        size = self.writer.size
        if size < self.auto_min_size or time.monotonic() < self.next_auto_at:
            return
        base = max(self.base_size, 1)
        if (size - base) * 100 // base >= self.auto_percentage:
            self.start("auto")

    def _check_child(self, run: RewriteRun) -> None:
        try:
            pid, status = os.waitpid(run.child_pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = run.child_pid, 1 << 8
        if pid == 0:
            return
        raw = b""
        try:
            os.set_blocking(run.result_fd, False)
            raw = os.read(run.result_fd, 65536)
        except OSError:
            pass
        os.close(run.result_fd)
        run.result_fd = run.child_pid = None
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or not raw:
            reason = f"child killed by signal {-code}" if code < 0 else f"child exited with {code}"
            self._failed(reason, child_exit=code)
            return
        run.child_result = msgpack.unpackb(raw, raw=False)
        self.last_cow_size = run.child_result["cow_bytes"]
        self.log.info("rewrite_child_done", keys=run.child_result["keys"],
                      bytes=run.child_result["bytes"],
                      seconds=round(run.child_result["seconds"], 3),
                      cow_bytes=run.child_result["cow_bytes"], diff_bytes=run.diff_bytes)
        try:
            run.temp_fd, _ = fileops.open_private(run.temp_path, os.O_WRONLY | os.O_APPEND,
                                                  dir_fd=self.writer.dir_fd)
        except OSError as exc:
            self._failed(f"open temp file: {os.strerror(exc.errno or 0)}", errno=exc.errno)
            return
        run.phase = "catchup"
        # Before the first slice: with a small diff that slice already renames and switches, so
        # a pause after it would never stop the node inside 4.1.
        self.pause("diff_catching_up")
        self._catch_up(run)

    # -- step 4 -----------------------------------------------------------------------------

    def _catch_up(self, run: RewriteRun) -> None:
        """4.1: one slice; 4.2-4.5 once what is left is small."""
        exc = run.take_sync_error()
        if exc is not None:
            code = getattr(exc, "errno", None)
            self._failed(f"catch-up fsync: {os.strerror(code) if code else exc}", errno=code)
            return
        t0 = time.perf_counter()
        data = run.take_slice()
        if data:
            try:
                fileops.write_all(run.temp_fd, data)
            except OSError as exc:
                self._failed(f"catch-up write: {os.strerror(exc.errno or 0)}", errno=exc.errno)
                return
            run.unsynced += len(data)
            run.note_slice(time.perf_counter() - t0)
            if run.unsynced >= CATCHUP_FSYNC_BYTES and run.sync is None:
                self._start_catchup_sync(run)
            return
        if run.diff_bytes > FINAL_BYTES or run.sync is not None:
            return  # next turn (a sync's result is read first); new writes keep arriving
        if run.unsynced > FINAL_BYTES:
            # Make the final fdatasync (4.2) small: sync what the slices wrote first, off thread.
            self._start_catchup_sync(run)
            return
        if not self.writer.ready_to_switch():
            return
        self._finish(run)

    def _start_catchup_sync(self, run: RewriteRun) -> None:
        if self._sync_pool is None:
            self._sync_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewrite-fsync")
        try:
            fd = os.dup(run.temp_fd)
        except OSError as exc:
            self._failed(f"catch-up fsync: {os.strerror(exc.errno or 0)}", errno=exc.errno)
            return
        run.unsynced = 0
        run.sync = self._sync_pool.submit(fdatasync_and_close, fd)

    def _finish(self, run: RewriteRun) -> None:
        t0 = time.perf_counter()
        try:
            # 4.2: the rest of the diff, then the temp file is durable.
            fileops.write_all(run.temp_fd, run.take_rest())
            t_write = time.perf_counter()
            os.fdatasync(run.temp_fd)
        except OSError as exc:
            self._failed(f"final write: {os.strerror(exc.errno or 0)}", errno=exc.errno)
            return
        t_sync = time.perf_counter()
        run.note_slice(t_sync - t0)
        self.log.info("rewrite_diff_flushed", bytes=run.diff_total, slices=run.slices,
                      longest_slice_ms=round(run.longest_slice_s * 1000, 3))
        self.pause("before_rename")
        old_size = self.writer.size
        new_size = os.fstat(run.temp_fd).st_size
        try:
            held = fileops.replace_file(run.temp_path, self.aof_path, self.writer.fd,
                                        dir_fd=self.writer.dir_fd)  # 4.3
        except OSError as exc:
            self._failed(f"rename: {os.strerror(exc.errno or 0)}", errno=exc.errno)
            return
        t_rename = time.perf_counter()
        self.pause("after_rename")
        # From here on the switch always completes: the new file *is* the AOF now.
        old_fd = self.writer.switch_to(run.temp_fd, new_size)  # 4.4
        run.temp_fd = None
        self.writer.sync_directory()  # 4.4: on failure the writer is err and retries
        t_dir = time.perf_counter()
        if held is not None and held != old_fd:
            os.close(old_fd)  # not the last reference: ``held`` still is
            old_fd = held
        self.held_old.append(old_fd)
        if self.writer.directory_durable:
            self._release_old()  # 4.5
        else:
            self.log.warning("rewrite_old_file_held", reason="directory fsync failed", held=len(self.held_old))
        self.pause("after_switch")
        self.run = None
        self.base_size = new_size
        self.rewrites += 1
        self.consecutive_failures = 0
        self.last_status = "ok"
        self.last_time_s = int(time.monotonic() - run.started_at)
        gc.unfreeze()
        self.log.info("rewrite_switched", old_size=old_size, new_size=new_size,
                      seconds=round(time.monotonic() - run.started_at, 3),
                      switch_ms=round((time.perf_counter() - t0) * 1000, 3),
                      final_write_ms=round((t_write - t0) * 1000, 3),
                      final_fsync_ms=round((t_sync - t_write) * 1000, 3),
                      rename_ms=round((t_rename - t_sync) * 1000, 3),
                      dir_fsync_ms=round((t_dir - t_rename) * 1000, 3), trigger=run.trigger,
                      writer_status=self.writer.status)

    def _release_old(self) -> None:
        """4.5: the old files go to the closer, once the rename over them is durable."""
        held, self.held_old = self.held_old, []
        for fd in held:
            self.closer.submit_close(fd, self.aof_path)

    # -- step 5 -----------------------------------------------------------------------------

    def abort(self, reason: str, **fields) -> None:
        """Stop the rewrite (diff limit, shutdown): kill the child, drop the temp file."""
        run = self.run
        if run is None:
            return
        if run.child_pid is not None:
            try:
                os.kill(run.child_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.dying.add(run.child_pid)
            run.child_pid = None
        self._failed(reason, **fields)

    def _failed(self, reason: str, **fields) -> None:
        """Step 5 for the current run, or for a fork that made none."""
        run, self.run = self.run, None
        if run is not None:
            run.close_files()
            self.closer.submit_unlink(run.temp_path)
            self.last_time_s = int(time.monotonic() - run.started_at)
        self.last_status = "err"
        self.consecutive_failures += 1
        delay = backoff_delay(BACKOFF_BASE_S, self.consecutive_failures, BACKOFF_MAX_S)
        self.next_auto_at = time.monotonic() + delay
        gc.unfreeze()
        self.log.warning("rewrite_failed", reason=reason, consecutive_failures=self.consecutive_failures,
                         auto_retry_in_s=delay, **fields)

    def _reap_dying(self) -> None:
        for pid in list(self.dying):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.dying.discard(pid)

    def info(self) -> dict:
        run = self.run
        return {
            "aof_rewrite_in_progress": int(run is not None),
            "aof_rewrite_scheduled": int(self.scheduled),
            "aof_last_rewrite_time_sec": self.last_time_s,
            "aof_current_rewrite_time_sec": int(time.monotonic() - run.started_at) if run else -1,
            "aof_last_bgrewrite_status": self.last_status,
            "aof_rewrites": self.rewrites,
            "aof_rewrites_consecutive_failures": self.consecutive_failures,
            "aof_base_size": self.base_size,
            "aof_rewrite_buffer_length": run.diff_bytes if run else 0,
            "aof_last_cow_size": self.last_cow_size,
            "aof_rewrite_child_pid": (run.child_pid or 0) if run else 0,
            "aof_rewrite_memory_refusals": self.memory_refusals,
            "aof_rewrite_child_sched": self.child_sched,
            "aof_last_rewrite_refusal": self.refusal,
        }
