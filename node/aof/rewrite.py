"""Background AOF rewrite: forked child, diff queue, atomic switch, old file closed elsewhere.

Design (after Redis's ``rewriteAppendOnlyFileBackground`` and ``backgroundRewriteDoneHandler``;
docs/aof.md has the same numbered steps):

  1. Start. The log actor forks between two cycles, so the child's memory image is exactly the
     state after the last acknowledged batch. ``gc.freeze()`` first: the parent's collector then
     never walks (and dirties) the containers the child shares.
  2. Child. Writes ``temp-rewriteaof-bg-<pid>.aof`` from its image, one shard at a time through
     ``Keyspace.snapshot_shard`` (marshal copies: the parent's pages stay shared), one entry per
     live key with TTLs as absolute times, fdatasync every ``CHILD_FSYNC_BYTES``. It reports
     keys, bytes, seconds and its copy-on-write cost (Private_Dirty) through a pipe and ends with
     ``os._exit``. It never logs, never touches ZeroMQ, and dies with its parent (PDEATHSIG).
  3. Parent during the rewrite. Every record still goes to the live AOF first (durability never
     depends on the rewrite) and is also kept in the diff queue (the same bytes). Past
     ``diff_limit`` bytes the rewrite is aborted: nothing is lost, the live AOF is complete.
  4. Child exited 0:
     4.1 the diff is appended to the temp file in slices between cycles (``SLICE_BYTES``, ~1 ms
         each), with a background fdatasync every ``CATCHUP_FSYNC_BYTES``; new writes keep going
         to the live AOF and the diff;
     4.2 when what is left is under ``FINAL_BYTES``, it is appended and the temp file fdatasync'ed;
     4.3 rename(2) over the live file, then fsync of the directory;
     4.4 the writer's append fd switches to the new file;
     4.5 the fd of the old file goes to the closer actor, which drops the last reference, so the
         slow freeing of a big file never runs here (~270 ms for 1 GiB on this machine).
         Redis's two scenarios: the AOF is live (the writer's fd is the old file's last
         reference), or the old file is on disk with no fd open on it (a one-time rewrite):
         then ``replace_file`` opens it before the rename, so the rename is not the unlink.
  5. Child failed (non-zero exit, signal, fork error): the closer unlinks the temp file, status
     ``err``, automatic rewrites back off 1, 2, 4 ... minutes (capped at an hour).
  6. Crash anywhere: the live AOF always holds every acknowledged write; start-up removes stale
     temp files (``node/log.py``).

Test hook: with ``AOFNODE_TEST_PAUSE_AT=<step>`` the process reaching that step creates
``<dir>/paused-at-<step>`` (holding its pid) and waits until the file is removed. Steps:
``forked``, ``diff_catching_up``, ``before_rename``, ``after_rename``, ``after_switch`` (parent),
``child_done`` (child, before it exits), ``closer_before_close`` (closer).
"""
from __future__ import annotations

import collections
import gc
import os
import signal
import threading
import time

import msgpack

from node.aof import format as aof_format
from node.store.keyspace import NUM_DBS, SHARDS, Keyspace
from node.testhooks import pause_point

__all__ = ["Rewriter", "replace_file", "TEMP_PREFIX"]

TEMP_PREFIX = "temp-rewriteaof-"
# Child: fdatasync every 8 MiB so the kernel never holds a huge dirty backlog (Redis issue
# #1019 saw 7-14 s stalls when a rewrite's whole file was flushed at once).
CHILD_FSYNC_BYTES = 8 << 20
# Child: records of ~1 MiB of entries (CRC and framing amortised, records stay far below the
# format's 256 MiB limit).
CHILD_RECORD_BYTES = 1 << 20
# Child: a string value larger than this goes out as SET + APPENDs, one record each.
HUGE_VALUE_BYTES = 16 << 20
# Parent: one catch-up slice writes at most 1 MiB to the page cache: ~0.5-1 ms here.
SLICE_BYTES = 1 << 20
# Parent: background fdatasync of the temp file after this much catch-up, so the final one is
# small.
CATCHUP_FSYNC_BYTES = 4 << 20
# Parent: finish (4.2-4.5) once this little is left: one write and one small fdatasync.
FINAL_BYTES = 256 << 10
# Automatic rewrite backoff after failures (Redis 7): 1 min doubling, at most 1 h.
BACKOFF_BASE_S, BACKOFF_MAX_S = 60.0, 3600.0


def replace_file(temp_path: str, live_path: str, live_fd: int | None) -> int | None:
    """Steps 4.3: rename ``temp_path`` over ``live_path`` and fsync the directory.

    Returns an fd that holds the old file (``live_fd`` if it is the file at ``live_path``,
    else one opened here before the rename), or None if there was no old file. The caller hands
    it to the closer, so the rename never frees the old file's blocks in this process.
    """
    held = None
    try:
        st = os.stat(live_path)
        if live_fd is not None and os.fstat(live_fd).st_ino == st.st_ino:
            held = live_fd
        else:
            held = os.open(live_path, os.O_RDONLY | os.O_CLOEXEC)  # scenario 2: keep it alive
    except FileNotFoundError:
        pass
    os.rename(temp_path, live_path)
    dir_fd = os.open(os.path.dirname(os.path.abspath(live_path)), os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return held


# -- step 2: the child ---------------------------------------------------------------------------

def _private_dirty_bytes() -> int:
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("Private_Dirty:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _child_write(keyspace: Keyspace, path: str, now_ms: int) -> tuple[int, int]:
    """Write the compact AOF of ``keyspace`` to ``path``; return (keys, bytes).

    One entry per live key: ``SET k v`` (+ ``PXAT ms``), or ``HSET k f v ...`` (+ a
    ``PEXPIREAT``). The common shard (strings, no TTLs) is built by one list comprehension: the
    per-key cost is what bounds the child's keys/s.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    encode = aof_format.encode_entries
    written = unsynced = keys = 0

    def emit(entries: list) -> None:
        nonlocal written, unsynced
        data = encode(entries)
        _write_all(fd, data)
        written += len(data)
        unsynced += len(data)
        if unsynced >= CHILD_FSYNC_BYTES:
            os.fdatasync(fd)
            unsynced = 0

    header = aof_format.encode_header()
    _write_all(fd, header)
    written = len(header)
    for db in range(NUM_DBS):
        if not keyspace.dbsize(db):
            continue
        for i in range(SHARDS):
            data, expires = keyspace.snapshot_shard(db, i)
            if not data:
                continue
            entries = _shard_entries(db, data, expires, now_ms)
            if not entries:
                continue  # every key of the shard has expired
            keys += len(data) if not expires else sum(1 for e in entries if e[1] != "PEXPIREAT")
            # Records of ~CHILD_RECORD_BYTES: a shard of large values is split.
            approx = sum(map(len, data.values())) + 16 * len(data)
            parts = approx // CHILD_RECORD_BYTES + 1
            step = -(-len(entries) // parts)
            for start in range(0, len(entries), step):
                part = entries[start:start + step]
                if len(part) == 1 and len(part[0]) >= 4 and part[0][1] == "SET" and len(part[0][3]) > HUGE_VALUE_BYTES:
                    for piece in _split_huge_set(part[0]):
                        emit([piece])
                else:
                    emit(part)
    os.fdatasync(fd)
    os.close(fd)
    return keys, written


def _shard_entries(db: int, data: dict, expires: dict, now_ms: int) -> list:
    if not expires:
        entries = [[db, "SET", k, v] for k, v in data.items() if type(v) is bytes]
        if len(entries) == len(data):
            return entries
        for key, value in data.items():
            if type(value) is not bytes:
                entries.append(_hset_entry(db, key, value))
        return entries
    entries = []
    for key, value in data.items():
        when = expires.get(key)
        if when is not None and when <= now_ms:
            continue  # expired: the parent logs its DEL (in the diff, or later)
        if type(value) is bytes:
            entries.append([db, "SET", key, value] if when is None
                           else [db, "SET", key, value, b"PXAT", b"%d" % when])
        else:
            entries.append(_hset_entry(db, key, value))
            if when is not None:
                entries.append([db, "PEXPIREAT", key, b"%d" % when])
    return entries


def _split_huge_set(entry: list) -> list[list]:
    """``SET k v ...`` with a value too large for one record (APPEND can grow one past the
    256 MiB record limit) as ``SET k <first piece> ...`` then ``APPEND k <piece>``s."""
    db, _, key, value, *rest = entry
    pieces = [value[i:i + HUGE_VALUE_BYTES] for i in range(0, len(value), HUGE_VALUE_BYTES)]
    return [[db, "SET", key, pieces[0], *rest]] + [[db, "APPEND", key, p] for p in pieces[1:]]


def _hset_entry(db: int, key: bytes, value: dict) -> list:
    flat = [db, "HSET", key]
    for field, fvalue in value.items():
        flat.append(field)
        flat.append(fvalue)
    return flat


def _child_main(keyspace: Keyspace, path: str, data_dir: str, result_fd: int, nice: int) -> None:
    """Step 2, in the forked child. Never returns."""
    code = 1
    try:
        gc.disable()  # a collection would walk (and dirty) every shared container
        # Below the actors that serve clients: with 2 cores, a child at the same priority took
        # half the machine from them during the whole rewrite (docs/benchmarks.md).
        if nice:
            os.nice(nice)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            import ctypes
            ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        started = time.monotonic()
        keys, nbytes = _child_write(keyspace, path, keyspace.clock_ms())
        result = {"keys": keys, "bytes": nbytes, "seconds": time.monotonic() - started,
                  "cow_bytes": _private_dirty_bytes()}
        pause_point("child_done", data_dir)
        os.write(result_fd, msgpack.packb(result))
        code = 0
    except BaseException:
        code = 1
    finally:
        os._exit(code)


# -- steps 1, 3, 4, 5: the parent ----------------------------------------------------------------

class Rewriter:
    """The log actor's side of the rewrite. All methods run on the log actor's thread and never
    block for more than one slice of work (the fork itself apart)."""

    def __init__(self, keyspace: Keyspace, writer, closer, aof_path: str, data_dir: str, log,
                 diff_limit: int, auto_percentage: int, auto_min_size: int,
                 close_inline: bool = False, child_nice: int = 10) -> None:
        self.keyspace = keyspace
        self.writer = writer
        self.closer = closer
        self.aof_path = aof_path
        self.data_dir = data_dir
        self.log = log
        self.diff_limit = diff_limit
        self.auto_percentage = auto_percentage
        self.auto_min_size = auto_min_size
        self.close_inline = close_inline
        self.child_nice = child_nice
        self.base_size = writer.size
        # state: "idle" | "child" (step 2-3) | "catchup" (step 4)
        self.state = "idle"
        self.scheduled = False
        self.child_pid: int | None = None
        self.dying: set[int] = set()  # children killed on abort, not reaped yet
        self.result_fd: int | None = None
        self.temp_path = ""
        self.temp_fd: int | None = None
        self.diff: collections.deque[bytes] = collections.deque()
        self.diff_bytes = 0
        self.diff_total = 0
        self.started_at = 0.0
        self.slices = 0
        self.longest_slice_s = 0.0
        self.catchup_unsynced = 0
        self.catchup_sync: threading.Thread | None = None
        self.child_result: dict = {}
        # INFO
        self.latest_fork_usec = 0
        self.total_forks = 0
        self.rewrites = 0
        self.consecutive_failures = 0
        self.last_status = "ok"
        self.last_time_s = -1
        self.last_cow_size = 0
        self.next_auto_at = 0.0
        self.longest_pause_s = 0.0
        self.longest_pause_cpu_s = 0.0
        self.longest_pause_what = ""
        self.last_longest_pause_ms = 0.0
        self._closing_window = False

    @property
    def in_progress(self) -> bool:
        return self.state != "idle"

    # -- requests ---------------------------------------------------------------------------

    def request(self):
        """BGREWRITEAOF: the reply value (str) or an error tuple (code, message)."""
        if self.in_progress:
            return ("BUSY", "Background append only file rewriting already in progress")
        self._reap_dying()
        if self.dying:
            self.scheduled = True
            return "Background append only file rewriting scheduled"
        if self.start("manual"):
            return "Background append only file rewriting started"
        return ("ERR", "Can't execute an AOF background rewriting. Please check the server logs for more information.")

    def start(self, trigger: str) -> bool:
        """Step 1: fork the child. False (status err, logged) if the fork failed."""
        self.scheduled = False
        temp_name = None
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
            temp_name = os.path.join(self.data_dir, f"{TEMP_PREFIX}bg-{os.getpid()}.aof")
            _child_main(self.keyspace, temp_name, self.data_dir, w, self.child_nice)
        fork_usec = int((time.perf_counter() - t0) * 1e6)
        os.close(w)
        self.latest_fork_usec = fork_usec
        self.total_forks += 1
        self.child_pid = pid
        self.result_fd = r
        self.temp_path = os.path.join(self.data_dir, f"{TEMP_PREFIX}bg-{pid}.aof")
        self.state = "child"
        self.started_at = time.monotonic()
        self.diff.clear()
        self.diff_bytes = self.diff_total = 0
        self.slices = 0
        self.longest_slice_s = 0.0
        self.longest_pause_s = 0.0
        self.log.info("rewrite_started", trigger=trigger, fork_usec=fork_usec, child_pid=pid,
                      aof_size=self.writer.size)
        pause_point("forked", self.data_dir)
        return True

    # -- step 3 -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Every record the log actor appends to the live AOF, while a rewrite runs."""
        if self.state == "idle" or not data:
            return
        self.diff.append(data)
        self.diff_bytes += len(data)
        self.diff_total += len(data)
        if self.diff_bytes > self.diff_limit:
            self.abort("diff_limit", diff_bytes=self.diff_bytes, limit=self.diff_limit)

    # -- the loop's hook --------------------------------------------------------------------

    def busy(self) -> bool:
        """True while there is catch-up work: the log actor then polls without waiting."""
        return self.state == "catchup"

    def tick(self) -> None:
        if self.dying:
            self._reap_dying()
            if self.scheduled and not self.dying and self.state == "idle":
                self.start("scheduled")
        if self.state == "child":
            self._check_child()
        elif self.state == "catchup":
            self._catch_up()

    def maybe_auto_start(self) -> None:
        """Growth trigger, checked from the log actor's cron."""
        if self.state != "idle" or self.dying or self.auto_percentage <= 0:
            return
        size = self.writer.size
        if size < self.auto_min_size or time.monotonic() < self.next_auto_at:
            return
        base = max(self.base_size, 1)
        if (size - base) * 100 // base >= self.auto_percentage:
            self.start("auto")

    def _check_child(self) -> None:
        try:
            pid, status = os.waitpid(self.child_pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.child_pid, 1 << 8
        if pid == 0:
            return
        raw = b""
        try:
            os.set_blocking(self.result_fd, False)
            raw = os.read(self.result_fd, 65536)
        except OSError:
            pass
        os.close(self.result_fd)
        self.result_fd = None
        self.child_pid = None
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or not raw:
            reason = f"child killed by signal {-code}" if code < 0 else f"child exited with {code}"
            self._failed(reason, child_exit=code)
            return
        self.child_result = msgpack.unpackb(raw, raw=False)
        self.last_cow_size = self.child_result["cow_bytes"]
        self.log.info("rewrite_child_done", keys=self.child_result["keys"],
                      bytes=self.child_result["bytes"],
                      seconds=round(self.child_result["seconds"], 3),
                      cow_bytes=self.child_result["cow_bytes"],
                      diff_bytes=self.diff_bytes)
        self.temp_fd = os.open(self.temp_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self.state = "catchup"
        self.catchup_unsynced = 0
        self._catch_up()
        pause_point("diff_catching_up", self.data_dir)

    # -- step 4 -----------------------------------------------------------------------------

    def _catch_up(self) -> None:
        """4.1: one slice; 4.2-4.5 once what is left is small."""
        t0 = time.perf_counter()
        chunks, size = [], 0
        while self.diff and size < SLICE_BYTES and self.diff_bytes - size > FINAL_BYTES:
            chunk = self.diff.popleft()
            chunks.append(chunk)
            size += len(chunk)
        if chunks:
            try:
                _write_all(self.temp_fd, b"".join(chunks))
            except OSError as exc:
                self._failed(f"catch-up write: {os.strerror(exc.errno or 0)}", errno=exc.errno)
                return
            self.diff_bytes -= size
            self.catchup_unsynced += size
            self._note_slice(time.perf_counter() - t0)
            if self.catchup_unsynced >= CATCHUP_FSYNC_BYTES and not self._syncing():
                self._start_catchup_sync()
            return
        if self.diff_bytes > FINAL_BYTES or self._syncing():
            return  # try again next turn; new writes keep arriving in the diff
        if self.catchup_unsynced > FINAL_BYTES:
            # Make the final fdatasync (4.2) small: sync what the slices wrote first, off thread.
            self._start_catchup_sync()
            return
        if not self.writer.ready_to_switch():
            return
        self._finish()

    def _start_catchup_sync(self) -> None:
        self.catchup_unsynced = 0
        self.catchup_sync = threading.Thread(target=_fdatasync_quietly, args=(self.temp_fd,),
                                             name="rewrite-fsync", daemon=True)
        self.catchup_sync.start()

    def _syncing(self) -> bool:
        return self.catchup_sync is not None and self.catchup_sync.is_alive()

    def _note_slice(self, seconds: float) -> None:
        self.slices += 1
        self.longest_slice_s = max(self.longest_slice_s, seconds)

    def _finish(self) -> None:
        t0 = time.perf_counter()
        try:
            # 4.2: the rest of the diff, then the temp file is durable.
            rest = b"".join(self.diff)
            _write_all(self.temp_fd, rest)
            t_write = time.perf_counter()
            os.fdatasync(self.temp_fd)
        except OSError as exc:
            self._failed(f"final write: {os.strerror(exc.errno or 0)}", errno=exc.errno)
            return
        t_sync = time.perf_counter()
        self._note_slice(t_sync - t0)
        self.log.info("rewrite_diff_flushed", bytes=self.diff_total, slices=self.slices,
                      longest_slice_ms=round(self.longest_slice_s * 1000, 3))
        self.diff.clear()
        self.diff_bytes = 0
        pause_point("before_rename", self.data_dir)
        old_size = self.writer.size
        new_size = os.fstat(self.temp_fd).st_size
        try:
            held = replace_file(self.temp_path, self.aof_path, self.writer.fd)  # 4.3
        except OSError as exc:
            self._failed(f"rename: {os.strerror(exc.errno or 0)}", errno=exc.errno)
            return
        t_rename = time.perf_counter()
        pause_point("after_rename", self.data_dir)
        old_fd = self.writer.switch_to(self.temp_fd, new_size)  # 4.4
        self.temp_fd = None
        if held is not None and held != old_fd:
            os.close(old_fd)  # not the last reference: ``held`` still is
            old_fd = held
        if self.close_inline:  # benchmark only: what the closer saves us
            t_close = time.perf_counter()
            os.close(old_fd)
            self.log.info("rewrite_inline_close", ms=round((time.perf_counter() - t_close) * 1000, 3))
        else:
            self.closer.submit_close(old_fd, self.aof_path)  # 4.5
        pause_point("after_switch", self.data_dir)
        self.base_size = new_size
        self.rewrites += 1
        self.consecutive_failures = 0
        self.last_status = "ok"
        self.last_time_s = int(time.monotonic() - self.started_at)
        self.state = "idle"
        gc.unfreeze()
        self.log.info("rewrite_switched", old_size=old_size, new_size=new_size,
                      seconds=round(time.monotonic() - self.started_at, 3),
                      switch_ms=round((time.perf_counter() - t0) * 1000, 3),
                      final_write_ms=round((t_write - t0) * 1000, 3),
                      final_fsync_ms=round((t_sync - t_write) * 1000, 3),
                      rename_ms=round((t_rename - t_sync) * 1000, 3))
        self._closing_window = True  # the turn that switched still counts (observe_turn)

    # -- step 5 -----------------------------------------------------------------------------

    def abort(self, reason: str, **fields) -> None:
        """Stop the rewrite (diff limit, shutdown): kill the child, drop the temp file."""
        if self.state == "idle":
            return
        if self.child_pid is not None:
            try:
                os.kill(self.child_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.dying.add(self.child_pid)
            self.child_pid = None
        self._failed(reason, **fields)

    def _failed(self, reason: str, **fields) -> None:
        if self.result_fd is not None:
            os.close(self.result_fd)
            self.result_fd = None
        if self.temp_fd is not None:
            os.close(self.temp_fd)
            self.temp_fd = None
        if self.temp_path:
            self.closer.submit_unlink(self.temp_path)
        self.diff.clear()
        self.diff_bytes = 0
        self.state = "idle"
        self.last_status = "err"
        self.consecutive_failures += 1
        self.last_time_s = int(time.monotonic() - self.started_at) if self.started_at else -1
        delay = min(BACKOFF_BASE_S * 2 ** (self.consecutive_failures - 1), BACKOFF_MAX_S)
        self.next_auto_at = time.monotonic() + delay
        gc.unfreeze()
        self._closing_window = True
        self.log.warning("rewrite_failed", reason=reason, consecutive_failures=self.consecutive_failures,
                         auto_retry_in_s=delay, **fields)

    def observe_turn(self, seconds: float, forked: bool, cpu_seconds: float = 0.0, what: str = "") -> None:
        """The log actor reports how long each loop turn kept it busy. While a rewrite runs
        (and for the turn that finished it), the longest is kept: the number the design is
        judged by. The turn that forked is reported apart (``latest_fork_usec``)."""
        if self.state == "idle" and not self._closing_window:
            return
        self._closing_window = False
        if not forked and seconds > self.longest_pause_s:
            self.longest_pause_s = seconds
            self.longest_pause_cpu_s = cpu_seconds
            self.longest_pause_what = what
        if self.state == "idle":
            self.last_longest_pause_ms = round(self.longest_pause_s * 1000, 3)
            # Wall time includes time the process was runnable but not running (2 cores shared
            # with the clients); CPU time is what the turn itself cost.
            self.log.info("rewrite_pause_summary", longest_pause_ms=self.last_longest_pause_ms,
                          longest_pause_cpu_ms=round(self.longest_pause_cpu_s * 1000, 3),
                          longest_pause_turn=self.longest_pause_what, status=self.last_status)

    def _reap_dying(self) -> None:
        for pid in list(self.dying):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.dying.discard(pid)

    def info(self) -> dict:
        return {
            "aof_rewrite_in_progress": int(self.in_progress),
            "aof_rewrite_scheduled": int(self.scheduled),
            "aof_last_rewrite_time_sec": self.last_time_s,
            "aof_current_rewrite_time_sec": int(time.monotonic() - self.started_at) if self.in_progress else -1,
            "aof_last_bgrewrite_status": self.last_status,
            "aof_rewrites": self.rewrites,
            "aof_rewrites_consecutive_failures": self.consecutive_failures,
            "aof_base_size": self.base_size,
            "aof_rewrite_buffer_length": self.diff_bytes,
            "aof_last_cow_size": self.last_cow_size,
            "aof_last_rewrite_longest_pause_ms": self.last_longest_pause_ms,
            "aof_rewrite_child_pid": self.child_pid or 0,
        }


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fdatasync_quietly(fd: int) -> None:
    try:
        os.fdatasync(fd)
    except OSError:
        pass  # the final fdatasync (4.2) runs in the log actor and reports errors
