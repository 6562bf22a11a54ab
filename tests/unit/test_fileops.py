"""node/aof/fileops.py: short writes, rename vs directory fsync, private modes, on real files."""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from aofnode.aof import fileops


def test_write_all_loops_over_short_writes(tmp_path, monkeypatch):
    real_write = os.write
    monkeypatch.setattr(fileops.os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    fileops.write_all(fd, b"0123456789")
    os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"0123456789"


def test_write_all_error_says_how_much_was_written(tmp_path, monkeypatch):
    real_write = os.write
    calls = []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data[:4]))

    monkeypatch.setattr(fileops.os, "write", write)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError) as info:
        fileops.write_all(fd, b"0123456789abc")
    os.close(fd)
    assert info.value.errno == errno.ENOSPC and info.value.written == 8
    assert (tmp_path / "f").read_bytes() == b"01234567"


def test_rename_replaces_and_fsync_dir_accepts_a_file_or_a_directory(tmp_path):
    (tmp_path / "t").write_bytes(b"new")
    (tmp_path / "live").write_bytes(b"old")
    fileops.rename(str(tmp_path / "t"), str(tmp_path / "live"))
    assert (tmp_path / "live").read_bytes() == b"new" and not (tmp_path / "t").exists()
    fileops.fsync_dir(str(tmp_path / "live"))
    fileops.fsync_dir(str(tmp_path))


def test_fsync_dir_reports_the_error_and_closes_the_directory(tmp_path, monkeypatch):
    def fail(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fileops.os, "fsync", fail)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError) as info:
        fileops.fsync_dir(str(tmp_path))
    assert info.value.errno == errno.EIO
    assert len(os.listdir("/proc/self/fd")) == before


def test_replace_file_hands_back_the_live_fd_when_it_is_the_old_file(tmp_path):
    live, temp = tmp_path / "a.aof", tmp_path / "t.aof"
    live.write_bytes(b"old" * 1000)
    temp.write_bytes(b"new")
    fd = os.open(live, os.O_RDONLY)
    held = fileops.replace_file(str(temp), str(live), fd)
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
    held = fileops.replace_file(str(temp), str(live), None)
    assert held is not None
    st = os.fstat(held)
    assert st.st_nlink == 0 and st.st_size == 100_000
    os.close(held)
    (tmp_path / "u.aof").write_bytes(b"first")
    assert fileops.replace_file(str(tmp_path / "u.aof"), str(tmp_path / "none.aof"), None) is None
    assert (tmp_path / "none.aof").read_bytes() == b"first"


def test_replace_file_closes_what_it_opened_when_the_rename_fails(tmp_path):
    live = tmp_path / "a.aof"
    live.write_bytes(b"old")
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        fileops.replace_file(str(tmp_path / "missing.aof"), str(live), None)
    assert len(os.listdir("/proc/self/fd")) == before and live.read_bytes() == b"old"


@pytest.mark.parametrize("umask", [0o022, 0o000, 0o277])
def test_open_private_creates_0600_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        fd, _ = fileops.open_private(str(tmp_path / "f"), os.O_WRONLY | os.O_CREAT)
    finally:
        os.umask(old)
    os.write(fd, b"x")  # still writable under a umask that strips the owner's write bit
    os.close(fd)
    assert (tmp_path / "f").stat().st_mode & 0o7777 == 0o600


def test_open_private_tightens_an_existing_file_and_reports_its_old_mode(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"secret")
    path.chmod(0o644)
    fd, old_mode = fileops.open_private(str(path), os.O_WRONLY | os.O_APPEND)
    os.close(fd)
    assert old_mode == 0o644 and path.stat().st_mode & 0o7777 == 0o600


def test_die_with_parent_kills_the_child_when_its_parent_dies(tmp_path):
    """A parent starts a child that asks for SIGKILL on its parent's death, then exits."""
    script = (
        "import os, sys, time\n"
        "from aofnode.aof.fileops import die_with_parent\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    import signal\n"
        "    die_with_parent(signal.SIGKILL)\n"
        "    os.write(w, b'%d' % os.getpid())\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "print(os.read(r, 32).decode(), flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = int(out.stdout.strip())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return  # dead, not yet reaped by whoever adopted it
        except FileNotFoundError:
            return
        time.sleep(0.02)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the child outlived its parent")
