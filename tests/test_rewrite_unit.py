"""The rewrite's file switch and failure backoff, in-process on real files."""
import os
import time

import structlog

from node.aof.writer import AofWriter
from node.actors.closer import CloserClient
from node.store.keyspace import Keyspace
from node.aof.rewrite import BACKOFF_MAX_S, Rewriter, replace_file


def test_replace_file_hands_back_the_live_fd_when_it_is_the_old_file(tmp_path):
    live, temp = tmp_path / "a.aof", tmp_path / "t.aof"
    live.write_bytes(b"old" * 1000)
    temp.write_bytes(b"new")
    fd = os.open(live, os.O_RDONLY)
    held = replace_file(str(temp), str(live), fd)
    assert held == fd
    assert live.read_bytes() == b"new"
    st = os.fstat(held)
    assert st.st_nlink == 0 and st.st_size == 3000  # nameless: the last reference is ours to pass on
    os.close(held)


def test_replace_file_opens_an_old_file_nobody_holds_before_the_rename(tmp_path):
    """Redis's scenario 2 (one-time rewrite, old file on disk, no fd): the rename must not be
    the old file's last reference, or it would free the blocks in the caller."""
    live, temp = tmp_path / "a.aof", tmp_path / "t.aof"
    live.write_bytes(b"x" * 100_000)
    temp.write_bytes(b"new")
    held = replace_file(str(temp), str(live), None)
    assert held is not None
    st = os.fstat(held)
    assert st.st_nlink == 0 and st.st_size == 100_000
    os.close(held)
    (tmp_path / "u.aof").write_bytes(b"first")
    assert replace_file(str(tmp_path / "u.aof"), str(tmp_path / "none.aof"), None) is None
    assert (tmp_path / "none.aof").read_bytes() == b"first"


def test_failures_back_off_automatic_rewrites_exponentially(tmp_path):
    log = structlog.get_logger()
    writer = AofWriter(str(tmp_path / "appendonly.aof"), "no", log)
    closer = CloserClient("\0aofnode-test-no-closer", log)  # nobody listens: jobs queue up
    rw = Rewriter(Keyspace(), writer, closer, str(tmp_path / "appendonly.aof"), str(tmp_path), log,
                  diff_limit=1 << 20, auto_percentage=100, auto_min_size=0)
    delays = []
    for _ in range(9):
        rw.state = "child"
        rw.started_at = 1.0
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
    assert rw.state == "idle" and rw.total_forks == 0


def test_child_writer_output_replays_to_the_same_keyspace(tmp_path):
    """The compact AOF of step 2, loaded back, is the same keyspace: strings, hashes, TTLs on
    both, several dbs, expired keys dropped, large values split over several records."""
    from node.aof import format as aof_format
    from node.store.executor import Executor
    from node.aof.rewrite import CHILD_RECORD_BYTES, _child_write

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
        want = {k: (v, src.keyspace.get_expire(db, k)) for k, v, _ in src.keyspace.iter_items(db) if k != b"dead"}
        got = {k: (v, dst.keyspace.get_expire(db, k)) for k, v, _ in dst.keyspace.iter_items(db)}
        assert got == want, db


def test_child_writer_splits_a_value_too_large_for_one_record(tmp_path, monkeypatch):
    from node.aof import format as aof_format
    from node.aof import rewrite
    from node.store.executor import Executor

    monkeypatch.setattr(rewrite, "HUGE_VALUE_BYTES", 1000)  # stands for 16 MiB of a 256 MiB+ value
    src = Executor()
    value = bytes(range(256)) * 20  # 5120 bytes: six pieces
    src.execute(0, "SET", (b"huge", value, b"PX", b"100000"))
    path = tmp_path / "r.aof"
    rewrite._child_write(src.keyspace, str(path), src.clock_ms())
    dst = Executor()
    dst.loading = True
    result = aof_format.scan(str(path), on_entries=lambda es: [dst.execute(e[0], e[1], e[2:]) for e in es])
    assert result.records == 6
    assert dst.execute(0, "GET", (b"huge",)) == value
    assert dst.keyspace.get_expire(0, b"huge") == src.keyspace.get_expire(0, b"huge")


def test_request_while_another_child_exists_is_scheduled_then_started(tmp_path):
    import subprocess

    from node.store.executor import Executor
    log = structlog.get_logger()
    aof = str(tmp_path / "appendonly.aof")
    writer = AofWriter(aof, "no", log)
    ex = Executor()
    ex.execute(0, "SET", (b"k", b"v"))
    rw = Rewriter(ex.keyspace, writer, CloserClient("\0aofnode-test-no-closer", log), aof,
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
