"""node/aof/writer.py in-process on real files, with faults raised from the ``os`` calls."""
import errno
import os
import threading
import time

import pytest
import structlog

from aofnode.aof import format as aof_format
from aofnode.aof import writer as writer_mod
from aofnode.aof.writer import AofWriter

EIO = OSError(errno.EIO, "Input/output error")


def record(i: int) -> bytes:
    return aof_format.encode_entries([[0, "SET", b"k%d" % i, b"v%d" % i]])


def keys_in(path) -> list[bytes]:
    keys = []
    result = aof_format.scan(str(path), on_entries=lambda es: keys.extend(e[2] for e in es))
    assert result.status == "ok"
    return keys


def make(tmp_path, policy="always"):
    return AofWriter(str(tmp_path / "appendonly.aof"), policy, structlog.get_logger())


def retry_now(w):
    w._last_retry = 0.0
    w.tick()


def test_a_new_aof_is_0600_has_a_header_and_its_directory_is_fsynced(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(writer_mod, "fsync_dir", lambda path, dir_fd=None: synced.append(path))
    old = os.umask(0o022)
    try:
        w = make(tmp_path)
    finally:
        os.umask(old)
    assert synced == [w.path]  # before the constructor returns: before any acknowledgement
    path = tmp_path / "appendonly.aof"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.stat().st_size == aof_format.HEADER_SIZE and w.status == "ok"


def test_an_existing_aof_with_looser_bits_is_tightened_at_open(tmp_path):
    path = tmp_path / "appendonly.aof"
    make(tmp_path).append(record(1))
    path.chmod(0o644)
    w = make(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert w.append(record(2)) and keys_in(path) == [b"k1", b"k2"]


def test_a_failed_directory_fsync_at_open_refuses_writes_until_a_retry_succeeds(tmp_path, monkeypatch):
    real = writer_mod.fsync_dir
    fail = [True]

    def fsync_dir(path, dir_fd=None):
        if fail[0]:
            raise EIO
        real(path, dir_fd=dir_fd)

    monkeypatch.setattr(writer_mod, "fsync_dir", fsync_dir)
    w = make(tmp_path)
    assert w.status == "err" and "fsync_dir" in w.last_error
    assert w.append(record(1)) is False  # written, but not acknowledged: the name may vanish
    retry_now(w)
    assert w.status == "err"  # still failing
    fail[0] = False
    retry_now(w)
    assert w.status == "ok" and w.last_error is None
    assert w.append(record(2)) is True


def test_always_a_failed_fdatasync_rewrites_the_unsynced_bytes_on_retry(tmp_path, monkeypatch):
    w = make(tmp_path)
    assert w.append(record(1))
    real = os.fdatasync
    calls = []

    def fdatasync(fd):
        calls.append(fd)
        if len(calls) == 1:
            raise EIO
        real(fd)

    monkeypatch.setattr(writer_mod.os, "fdatasync", fdatasync)
    assert w.append(record(2)) is False and w.status == "err"
    retry_now(w)
    assert w.status == "ok"
    assert keys_in(w.path) == [b"k1", b"k2"]


def test_a_short_write_is_cut_back_to_a_record_boundary_and_queued(tmp_path, monkeypatch):
    w = make(tmp_path)
    assert w.append(record(1))
    size = w.size
    real = os.write

    calls = []

    def write(fd, data):  # part of a record reaches the file, then the disk is full
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, bytes(data[:5]))

    monkeypatch.setattr(writer_mod.os, "write", write)
    monkeypatch.setattr("aofnode.aof.fileops.os.write", write)
    assert w.append(record(2)) is False and w.status == "err"
    assert os.path.getsize(w.path) == size and w.pending_bytes == len(record(2))
    monkeypatch.undo()
    retry_now(w)
    assert w.status == "ok" and keys_in(w.path) == [b"k1", b"k2"]


def test_sync_directory_failure_is_an_error_state_owned_by_the_writer(tmp_path, monkeypatch):
    w = make(tmp_path, "everysec")
    monkeypatch.setattr(writer_mod, "fsync_dir", lambda path, dir_fd=None: (_ for _ in ()).throw(EIO))
    assert w.sync_directory() is False and w.status == "err"
    assert w.ready_to_switch() is False
    w.tick()  # too early for a retry: nothing changes
    assert w.status == "err"
    monkeypatch.undo()
    retry_now(w)
    assert w.status == "ok" and w.append(record(1))


def _gate_fdatasync(monkeypatch):
    """``os.fdatasync`` that blocks until the returned event is set."""
    gate = threading.Event()
    real = os.fdatasync

    def fdatasync(fd):
        gate.wait(10)
        real(fd)

    monkeypatch.setattr(writer_mod.os, "fdatasync", fdatasync)
    return gate


def _wait(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_everysec_fsyncs_in_the_background_and_folds_the_result_in(tmp_path, monkeypatch):
    w = make(tmp_path, "everysec")
    gate = _gate_fdatasync(monkeypatch)
    w._last_fsync -= 2.0  # a second has passed
    assert w.append(record(1))
    assert w.bg_fsync_in_progress and w.durable_size < w.size
    gate.set()
    _wait(lambda: not w.bg_fsync_in_progress)
    w.check_bg_fsync()
    assert w.fsyncs == 1 and w.durable_size == w.size
    w.close_fd_later()


def test_everysec_holds_a_write_back_while_the_fsync_runs_then_writes_it_after_2s(tmp_path, monkeypatch):
    w = make(tmp_path, "everysec")
    gate = _gate_fdatasync(monkeypatch)
    w._last_fsync -= 2.0
    assert w.append(record(1))
    size = w.size
    assert w.append(record(2)) is True  # acknowledged, as Redis: it is in the AOF buffer
    assert w.size == size and w.pending  # held back
    w._postponed_since -= writer_mod.MAX_FSYNC_POSTPONE_S
    assert w.append(b"")
    assert w.size > size and not w.pending and w.delayed_fsyncs == 1
    gate.set()
    w.close_fd_later()
    assert keys_in(w.path) == [b"k1", b"k2"]


def test_everysec_a_background_fsync_error_is_err_until_a_later_fsync_succeeds(tmp_path, monkeypatch):
    w = make(tmp_path, "everysec")
    real = os.fdatasync
    fail = [True]

    def fdatasync(fd):
        if fail[0]:
            raise EIO
        real(fd)

    monkeypatch.setattr(writer_mod.os, "fdatasync", fdatasync)
    w._last_fsync -= 2.0
    assert w.append(record(1))
    _wait(lambda: not w.bg_fsync_in_progress)
    assert w.status == "ok"  # not folded in yet: that is the log actor's call
    w.check_bg_fsync()
    assert w.status == "err" and w.last_error.startswith("fsync")
    fail[0] = False
    retry_now(w)  # starts a new background fsync
    _wait(lambda: not w.bg_fsync_in_progress)
    w.check_bg_fsync()
    assert w.status == "ok" and w.durable_size == w.size
    w.close_fd_later()


def test_fsync_now_waits_for_the_background_fsync(tmp_path, monkeypatch):
    w = make(tmp_path, "everysec")
    gate = _gate_fdatasync(monkeypatch)
    w._last_fsync -= 2.0
    assert w.append(record(1))
    threading.Timer(0.05, gate.set).start()
    assert w.fsync_now() is True
    assert w.fsyncs == 2 and w.durable_size == w.size
    w.close_fd_later()


@pytest.mark.parametrize("policy", ["always", "everysec", "no"])
def test_switch_to_moves_appends_to_the_new_file_and_hands_back_the_old_fd(tmp_path, policy):
    w = make(tmp_path, policy)
    assert w.append(record(1))
    new = tmp_path / "new.aof"
    new.write_bytes(aof_format.encode_header() + record(9))
    fd = os.open(new, os.O_WRONLY | os.O_APPEND)
    assert w.ready_to_switch()
    old = w.switch_to(fd, new.stat().st_size)
    assert w.append(record(2))
    os.close(old)
    os.close(w.close_fd_later())
    assert keys_in(new) == [b"k9", b"k2"]


@pytest.mark.parametrize("policy", ["no", "everysec"])
def test_sync_next_append_makes_that_append_durable_before_it_returns(tmp_path, policy):
    # SAVE sets it: its cycle's entries are fdatasync'ed before its reply, whatever the policy.
    w = make(tmp_path, policy)
    assert w.append(b"x" * 100) and w.durable_size < w.size
    w.sync_next_append = True
    assert w.append(b"y" * 100)
    assert w.durable_size == w.size and not w.sync_next_append
    assert w.append(b"z" * 100) and w.durable_size < w.size  # once only
