"""The rewrite's file switch and failure backoff, in-process on real files."""
import os
import time

import structlog

from node.aof_writer import AofWriter
from node.closer import CloserClient
from node.keyspace import Keyspace
from node.rewrite import BACKOFF_MAX_S, Rewriter, replace_file


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
