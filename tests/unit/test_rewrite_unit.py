"""The rewrite (node/aof/rewrite.py, rewrite_child.py) in-process on real files: the per-run
state, failures at each step, backoff, the child's output."""
import os
import time

import structlog

from aofnode.aof.writer import AofWriter
from aofnode.store.keyspace import Keyspace
from aofnode.aof.rewrite import BACKOFF_MAX_S, Rewriter
from aofnode.protocol.errors import Error


def test_failures_back_off_automatic_rewrites_exponentially(tmp_path):
    log = structlog.get_logger()
    writer = AofWriter(str(tmp_path / "appendonly.aof"), "no", log)
    closer = RecordingCloser()
    rw = Rewriter(Keyspace(), writer, closer, str(tmp_path / "appendonly.aof"), str(tmp_path), log,
                  diff_limit=1 << 20, auto_percentage=100, auto_min_size=0)
    delays = []
    for _ in range(9):
        before = time.monotonic()
        rw._failed("test")
        delays.append(round(rw.next_auto_at - before))
    assert delays[:4] == [60, 120, 240, 480]
    assert max(delays) == BACKOFF_MAX_S
    assert rw.info()["aof_rewrites_consecutive_failures"] == 9
    assert rw.info()["aof_last_bgrewrite_status"] == "err"
    # While backing off, growth does not start a rewrite.
    writer.append(b"x" * 10_000)
    rw.maybe_auto_start()
    assert not rw.in_progress and rw.total_forks == 0


def test_child_writer_output_replays_to_the_same_keyspace(tmp_path):
    """The compact AOF of step 2, loaded back, is the same keyspace: strings, hashes, TTLs on
    both, several dbs, expired keys dropped, large values split over several records."""
    from aofnode.aof import format as aof_format
    from aofnode.store.executor import Executor
    from aofnode.aof.rewrite_child import CHILD_RECORD_BYTES, _child_write

    now = 1_700_000_000_000
    src = Executor(clock_ms=lambda: now)
    for i in range(3000):
        src.execute(i % 3, "SET", (b"s%d" % i, b"v%d" % i))
    for i in range(0, 3000, 7):
        src.execute(i % 3, "PEXPIREAT", (b"s%d" % i, b"%d" % (now + 10_000 + i)))
    for i in range(200):
        src.execute(5, "HSET", (b"h%d" % i, b"f1", b"a", b"f2", b"%d" % i))
    src.execute(5, "PEXPIRE", (b"h3", b"50000"))
    src.execute(15, "SET", (b"big", b"x" * (3 * CHILD_RECORD_BYTES)))
    src.execute(15, "SET", (b"dead", b"x", b"PXAT", b"%d" % (now + 5)))
    src.keyspace.loading = True  # "dead" is in the image but expired by the time the child runs
    path = tmp_path / "rewrite.aof"
    keys, nbytes = _child_write(src.keyspace, str(path), now + 10)
    assert nbytes == path.stat().st_size
    assert keys == 3000 + 200 + 1

    dst = Executor(clock_ms=lambda: now)
    dst.loading = True
    result = aof_format.scan(str(path), on_entries=lambda es: [dst.execute(e[0], e[1], e[2:]) for e in es])
    assert result.status == "ok" and result.records > 3
    for db in range(16):
        want = {k: (src.keyspace.lookup(db, k), src.keyspace.get_expire(db, k))
                for k in src.keyspace.keys(db) if k != b"dead"}
        got = {k: (dst.keyspace.lookup(db, k), dst.keyspace.get_expire(db, k)) for k in dst.keyspace.keys(db)}
        assert got == want, db


def test_child_writer_splits_a_value_too_large_for_one_record(tmp_path, monkeypatch):
    from aofnode.aof import format as aof_format
    from aofnode.aof import rewrite_child
    from aofnode.store.executor import Executor

    monkeypatch.setattr(rewrite_child, "HUGE_VALUE_BYTES", 1000)  # stands for 16 MiB of a 256 MiB+ value
    src = Executor()
    value = bytes(range(256)) * 20  # 5120 bytes: six pieces
    src.execute(0, "SET", (b"huge", value, b"PX", b"100000"))
    path = tmp_path / "r.aof"
    rewrite_child._child_write(src.keyspace, str(path), src.clock_ms())
    dst = Executor()
    dst.loading = True
    result = aof_format.scan(str(path), on_entries=lambda es: [dst.execute(e[0], e[1], e[2:]) for e in es])
    assert result.records == 6
    assert dst.execute(0, "GET", (b"huge",)) == value
    assert dst.keyspace.get_expire(0, b"huge") == src.keyspace.get_expire(0, b"huge")


def test_request_while_another_child_exists_is_scheduled_then_started(tmp_path):
    import subprocess

    from aofnode.store.executor import Executor
    log = structlog.get_logger()
    aof = str(tmp_path / "appendonly.aof")
    writer = AofWriter(aof, "no", log)
    ex = Executor()
    ex.execute(0, "SET", (b"k", b"v"))
    rw = Rewriter(ex.keyspace, writer, RecordingCloser(), aof,
                  str(tmp_path), log, diff_limit=1 << 20, auto_percentage=0, auto_min_size=0)
    other = subprocess.Popen(["sleep", "30"])  # stands for a killed child not yet reaped
    rw.dying.add(other.pid)
    try:
        assert rw.request() == "Background append only file rewriting scheduled"
        assert rw.info()["aof_rewrite_scheduled"] == 1 and rw.total_forks == 0
        rw.tick()
        assert rw.total_forks == 0  # still there: still waiting
    finally:
        other.kill()
    deadline = time.monotonic() + 20
    while (rw.total_forks == 0 or rw.in_progress) and time.monotonic() < deadline:
        rw.tick()
        time.sleep(0.01)
    assert rw.total_forks == 1 and rw.rewrites == 1 and rw.info()["aof_rewrite_scheduled"] == 0
    assert rw.info()["aof_last_bgrewrite_status"] == "ok"


class RecordingCloser:
    """Stands for the closer actor: closes in place and records every job."""

    def __init__(self) -> None:
        self.closed: list[str] = []
        self.unlinked: list[str] = []

    def submit_close(self, fd: int, path: str) -> int:
        os.close(fd)
        self.closed.append(path)
        return 0

    def submit_unlink(self, path: str) -> int:
        self.unlinked.append(path)
        return 0


def _rewriter(tmp_path, policy="no", **kw):
    from aofnode.store.executor import Executor
    log = structlog.get_logger()
    aof = str(tmp_path / "appendonly.aof")
    writer = AofWriter(aof, policy, log)
    ex = Executor()
    ex.execute(0, "SET", (b"k", b"v"))
    closer = RecordingCloser()
    rw = Rewriter(ex.keyspace, writer, closer, aof, str(tmp_path), log, diff_limit=1 << 20,
                  auto_percentage=0, auto_min_size=0, **kw)
    return rw, writer, closer


def _run_to_end(rw, timeout=20.0):
    deadline = time.monotonic() + timeout
    while rw.in_progress and time.monotonic() < deadline:
        rw.tick()
        time.sleep(0.005)
    assert not rw.in_progress


def _fail_fork(monkeypatch):
    import errno

    from aofnode.aof import rewrite

    def fork():
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
    monkeypatch.setattr(rewrite.os, "fork", fork)


def test_fork_failure_after_a_run_unlinks_nothing_of_that_run(tmp_path, monkeypatch):
    """Issue 7: ``_failed`` after a fork failure unlinked the *previous* run's temp path."""
    rw, _, closer = _rewriter(tmp_path)
    assert rw.start("manual")
    _run_to_end(rw)
    assert rw.last_status == "ok" and closer.unlinked == []
    _fail_fork(monkeypatch)
    assert rw.start("manual") is False
    assert closer.unlinked == []
    assert rw.last_status == "err" and rw.total_forks == 1


def test_fork_failure_does_not_time_a_run_from_a_stale_start(tmp_path, monkeypatch):
    """Issue 7: ``last_time_s`` after a fork failure came from the previous run's start."""
    import types

    from aofnode.aof import rewrite
    rw, _, _ = _rewriter(tmp_path)
    assert rw.start("manual")
    _run_to_end(rw)
    took = rw.info()["aof_last_rewrite_time_sec"]
    assert 0 <= took < 100  # a one-key run: seconds, even on a loaded machine
    later = types.SimpleNamespace(monotonic=lambda: time.monotonic() + 1000.0,
                                  perf_counter=time.perf_counter, time=time.time)
    monkeypatch.setattr(rewrite, "time", later)  # the next attempt comes 1000 s later
    _fail_fork(monkeypatch)
    assert rw.start("manual") is False
    info = rw.info()
    assert info["aof_last_rewrite_time_sec"] == took  # no run, no duration: as Redis, unchanged
    assert info["aof_current_rewrite_time_sec"] == -1


# -- issue 8: error paths of the switch -----------------------------------------------------------

def _record(i: int) -> bytes:
    from aofnode.aof import format as aof_format
    return aof_format.encode_entries([[0, "SET", b"d%d" % i, b"x" * 400]])


def _keys(path) -> set[bytes]:
    from aofnode.aof import format as aof_format
    keys: set[bytes] = set()
    assert aof_format.scan(str(path), on_entries=lambda es: keys.update(e[2] for e in es)).status == "ok"
    return keys


def _start_with_diff(rw, writer, n=40):
    """Fork, then append ``n`` records to the live AOF and the diff before the child is seen."""
    assert rw.start("manual")
    for i in range(n):
        data = _record(i)
        assert writer.append(data)
        rw.feed(data)


def _small_slices(monkeypatch):
    from aofnode.aof import rewrite, rewrite_run
    monkeypatch.setattr(rewrite_run, "SLICE_BYTES", 2000)
    monkeypatch.setattr(rewrite, "CATCHUP_FSYNC_BYTES", 4000)
    for module in (rewrite, rewrite_run):
        monkeypatch.setattr(module, "FINAL_BYTES", 1000)


def _wait_catching_up(rw, timeout=20.0):
    deadline = time.monotonic() + timeout
    while rw.in_progress and not rw.catching_up:
        assert time.monotonic() < deadline
        rw.tick()
        time.sleep(0.005)


def test_a_failed_rename_leaves_the_writer_on_the_live_file(tmp_path, monkeypatch):
    import errno

    from aofnode.aof import fileops
    rw, writer, closer = _rewriter(tmp_path, "always")
    live_ino = os.fstat(writer.fd).st_ino
    _start_with_diff(rw, writer)

    def rename(src, dst, **_dir_fds):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(fileops.os, "rename", rename)
    _run_to_end(rw)
    assert rw.last_status == "err" and rw.rewrites == 0
    assert os.fstat(writer.fd).st_ino == live_ino == os.stat(writer.path).st_ino
    assert len(closer.unlinked) == 1 and "temp-rewriteaof-bg-" in closer.unlinked[0]
    assert writer.status == "ok" and writer.append(_record(99))
    assert {b"d0", b"d39", b"d99"} <= _keys(writer.path)


def test_a_failed_directory_fsync_after_the_rename_still_switches(tmp_path, monkeypatch):
    """Issue 8, finding 3: the writer must move to the renamed file even if the directory fsync
    fails; it is then ``err`` (no acknowledgement) until the writer's own retry succeeds."""
    import errno

    from aofnode.aof import writer as writer_mod
    rw, writer, closer = _rewriter(tmp_path, "always")
    real = writer_mod.fsync_dir
    fail = [True]

    def fsync_dir(path, dir_fd=None):
        if fail[0]:
            raise OSError(errno.EIO, "Input/output error")
        real(path, dir_fd=dir_fd)
    monkeypatch.setattr(writer_mod, "fsync_dir", fsync_dir)
    _start_with_diff(rw, writer)
    _run_to_end(rw)
    assert rw.last_status == "ok" and rw.rewrites == 1 and closer.unlinked == []
    # After a power cut the old name could still lead to the old file: it is held, not handed
    # to the closer (which may cut it down in steps), until a directory fsync succeeded.
    assert closer.closed == []
    assert os.fstat(writer.fd).st_ino == os.stat(writer.path).st_ino  # on the new file
    assert writer.status == "err" and writer.append(_record(100)) is False
    writer._last_retry = 0.0
    writer.tick()
    rw.tick()
    assert writer.status == "err" and closer.closed == []
    fail[0] = False
    writer._last_retry = 0.0
    writer.tick()
    rw.tick()
    assert closer.closed == [writer.path]  # the rename is durable: now the closer gets it
    assert writer.status == "ok" and writer.append(_record(101)) is True
    assert {b"k", b"d0", b"d39", b"d101"} <= _keys(writer.path)


def test_a_catch_up_fdatasync_error_fails_the_rewrite_even_if_the_final_one_succeeds(tmp_path, monkeypatch):
    """Issue 8, finding 4: Linux reports a write-back error once per open file, so here the
    first fdatasync of the temp file in this process fails and every later one succeeds."""
    import errno
    _small_slices(monkeypatch)
    rw, writer, closer = _rewriter(tmp_path, "no")
    _start_with_diff(rw, writer)
    _wait_catching_up(rw)
    real = os.fdatasync
    failed = []

    def fdatasync(fd):
        if not failed and "temp-rewriteaof-" in os.readlink(f"/proc/self/fd/{fd}"):
            failed.append(fd)
            raise OSError(errno.EIO, "Input/output error")
        real(fd)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    live_ino = os.stat(writer.path).st_ino
    _run_to_end(rw)
    assert failed, "the catch-up fdatasync never ran"
    assert rw.last_status == "err" and rw.rewrites == 0
    assert os.stat(writer.path).st_ino == live_ino == os.fstat(writer.fd).st_ino
    assert len(closer.unlinked) == 1 and "temp-rewriteaof-" in closer.unlinked[0]


def test_a_rewritten_aof_is_0600_whatever_the_umask(tmp_path):
    old = os.umask(0o000)
    try:
        rw, writer, _ = _rewriter(tmp_path, "always")
        _start_with_diff(rw, writer, n=3)
        _run_to_end(rw)
    finally:
        os.umask(old)
    assert rw.rewrites == 1
    assert os.stat(writer.path).st_mode & 0o777 == 0o600


def test_a_rewrite_whose_copy_on_write_would_not_fit_is_refused_not_forked(tmp_path):
    """Issue "limits", finding 4: refuse with a clear status instead of forking into an OOM."""
    from aofnode.aof.rewrite import Rewriter
    from aofnode.aof.writer import AofWriter
    log = structlog.get_logger()
    writer = AofWriter(str(tmp_path / "appendonly.aof"), "always", log)
    closer = RecordingCloser()
    rw = Rewriter(Keyspace(), writer, closer, str(tmp_path / "appendonly.aof"), str(tmp_path), log,
                  diff_limit=1 << 20, auto_percentage=100, auto_min_size=1 << 20,
                  memory=lambda: (8 << 30, 1 << 30))  # 8 GiB resident, 1 GiB available
    refused = rw.request()
    assert type(refused) is Error and refused.code == "ERR"
    assert "not enough free memory" in refused.message and "2048 MiB needed" in refused.message
    assert rw.run is None and rw.total_forks == 0 and rw.info()["aof_rewrite_memory_refusals"] == 1
    rw.memory = lambda: (8 << 30, 4 << 30)
    assert rw.request() == "Background append only file rewriting started"
    rw.abort("test over")


def test_child_writer_writes_every_type_and_splits_big_collections(tmp_path, monkeypatch):
    """Lists, sets, sorted sets and hashes (with TTLs) come back the same, and a collection
    over CHILD_ENTRY_BYTES is written as several entries, over several records."""
    from aofnode.aof import format as aof_format
    from aofnode.aof import rewrite_child
    from aofnode.store.executor import Executor
    from tests.collection_helpers import normal

    monkeypatch.setattr(rewrite_child, "CHILD_ENTRY_BYTES", 2000)  # stands for 1 MiB
    monkeypatch.setattr(rewrite_child, "CHILD_RECORD_BYTES", 5000)
    now = 1_700_000_000_000
    src = Executor(clock_ms=lambda: now)
    big = [b"%06d" % i for i in range(3000)]
    src.execute(0, "RPUSH", (b"list", *big))
    src.execute(0, "LPUSH", (b"list", b"head"))
    src.execute(1, "SADD", (b"set", *big))
    src.execute(2, "ZADD", (b"zset", *[x for i, m in enumerate(big) for x in (b"%d.25" % i, m)]))
    src.execute(2, "ZADD", (b"zset", b"inf", b"top", b"-inf", b"bottom", b"0.1", b"tenth"))
    src.execute(3, "HSET", (b"hash", *[x for m in big for x in (m, m)]))
    for db, key in ((0, b"list"), (1, b"set"), (2, b"zset"), (3, b"hash")):
        src.execute(db, "RPUSH", (b"small-" + key, b"a", b"b"))
        src.execute(db, "PEXPIREAT", (key, b"%d" % (now + 60_000)))
    src.execute(4, "SADD", (b"s2", b"x"))
    src.execute(4, "ZADD", (b"z2", b"1", b"x"))
    path = tmp_path / "rewrite.aof"
    keys, _ = rewrite_child._child_write(src.keyspace, str(path), now + 10)
    assert keys == 4 + 4 + 2

    entries = []
    dst = Executor(clock_ms=lambda: now)
    dst.loading = True

    def load(es):
        entries.extend(es)
        for e in es:
            assert not isinstance(dst.execute(e[0], e[1], e[2:]), Exception)

    result = aof_format.scan(str(path), on_entries=load)
    assert result.status == "ok" and result.records > 10
    for name in ("RPUSH", "SADD", "ZADD", "HSET"):
        assert sum(1 for e in entries if e[1] == name) > 10, name
    assert max(sum(map(len, e[2:])) for e in entries) < 2200
    for db in range(16):
        for key in src.keyspace.keys(db):
            a, b = src.keyspace.lookup(db, key), dst.keyspace.lookup(db, key)
            assert normal(a) == normal(b), (db, key)
            assert src.keyspace.get_expire(db, key) == dst.keyspace.get_expire(db, key)
        assert sorted(src.keyspace.keys(db)) == sorted(dst.keyspace.keys(db))
    assert dst.keyspace.used_memory == src.keyspace.used_memory
