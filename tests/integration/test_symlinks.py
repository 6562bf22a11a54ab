"""A data directory left loose (0777, root-owned): another local user plants a symbolic link
under one of the names the node uses, or makes ``--dir`` itself a link. The node must follow
none of them: it refuses to start (exit 6, one line naming the file) and no file or directory
outside the data directory changes.

The links are planted by uid ``nobody`` (the case that matters: a 0777 directory lets any user
create names in it); the tests skip where that is impossible.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import stat
import subprocess
import tempfile

import pytest

from aofnode import exitcodes
from aofnode.aof import fileops
from tests.nodeproc import AOFNODE, free_port

NOBODY_UID = 65534


@pytest.fixture
def root():
    """A directory every user can traverse (pytest's tmp_path sits under a 0700 one), with a
    root-owned victim file and directory outside the data directory."""
    if os.geteuid() != 0:
        pytest.skip("needs root to plant links as nobody in a root-owned directory")
    path = pathlib.Path(tempfile.mkdtemp(prefix="aofnode-symlink-", dir="/tmp"))
    os.chmod(path, 0o755)
    outside = path / "outside"
    outside.mkdir(mode=0o755)
    os.chmod(outside, 0o755)
    victim = outside / "victim"
    victim.write_bytes(b"precious\n")
    os.chmod(victim, 0o644)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _snapshot(directory: pathlib.Path) -> dict:
    """Every name under ``directory`` with its mode, owner, size, mtime and content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in ["", *dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            body = open(p, "rb").read() if stat.S_ISREG(st.st_mode) else b""
            out[p] = (st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, body)
    return out


def _as_nobody(*cmd: str) -> None:
    subprocess.run(list(cmd), user=NOBODY_UID, group=NOBODY_UID, check=True, timeout=20, cwd="/")


def _serve(data: pathlib.Path) -> subprocess.CompletedProcess:
    """``serve`` on ``data``; one that is still running after 10 s (it started: the bug) is
    stopped with SIGTERM (its actors die with it: PR_SET_PDEATHSIG)."""
    cmd = [AOFNODE, "serve", "--dir", str(data), "--bind", f"tcp://127.0.0.1:{free_port()}",
           "--appendfsync", "always"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(cmd, proc.returncode, "", err)


@pytest.mark.parametrize("name", ["aofnode.lock", "appendonly.aof", "temp-rewriteaof-bg-1.aof", "run"])
def test_a_planted_symlink_in_a_loose_data_dir_is_refused(root, name):
    data = root / "data"
    data.mkdir()
    os.chmod(data, 0o777)
    target = root / "outside" / ("victim" if name != "run" else "")
    _as_nobody("/bin/ln", "-s", str(target).rstrip("/"), str(data / name))
    before = _snapshot(root / "outside")
    out = _serve(data)
    assert out.returncode == exitcodes.STORAGE, (out.returncode, out.stderr)
    assert name in out.stderr and "symbolic link" in out.stderr, out.stderr
    assert _snapshot(root / "outside") == before
    assert (data / name).is_symlink()  # left for the operator to look at


def test_a_symlinked_data_dir_is_refused(root):
    # nobody owns a directory in the path and points the data directory's name at root's.
    parent = root / "nobodys"
    parent.mkdir()
    os.chown(parent, NOBODY_UID, NOBODY_UID)
    _as_nobody("/bin/ln", "-s", str(root / "outside"), str(parent / "data"))
    before = _snapshot(root / "outside")
    for spelling in (str(parent / "data"), str(parent / "data") + "/"):
        out = _serve(pathlib.Path(spelling))
        assert out.returncode == exitcodes.STORAGE, (out.returncode, out.stderr)
        assert "symbolic link" in out.stderr, out.stderr
    assert _snapshot(root / "outside") == before


def test_a_planted_regular_file_of_another_user_is_refused(root):
    # Not a link, but as bad: nobody's own appendonly.aof would be loaded and stay nobody's.
    data = root / "data"
    data.mkdir()
    os.chmod(data, 0o777)
    _as_nobody("/usr/bin/touch", str(data / "appendonly.aof"))
    out = _serve(data)
    assert out.returncode == exitcodes.STORAGE, (out.returncode, out.stderr)
    assert "appendonly.aof" in out.stderr and "owned by uid 65534" in out.stderr, out.stderr


@pytest.mark.parametrize("opener", ["open_private", "open_dir"])
def test_fileops_never_follows_a_link(tmp_path, opener):
    """The same rule below the start-up check: a name swapped for a link later is not followed
    by the helpers every actor opens its files with."""
    victim = tmp_path / "victim"
    victim.mkdir() if opener == "open_dir" else victim.write_bytes(b"precious\n")
    link = tmp_path / "appendonly.aof"
    link.symlink_to(victim)
    with pytest.raises(OSError):
        if opener == "open_private":
            fileops.open_private(str(link), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        else:
            fileops.open_dir(str(link))
    if opener == "open_private":
        assert victim.read_bytes() == b"precious\n"
