"""Trust (issue 8): only the node's owner gets in, and start-up failures stop the node.

Findings covered here: 1 (an impostor on the front <-> log channel), 2 (the closer deleting any
file), 8 (start-up failures that looped forever) and 9 (world-readable data). The tests that
need another user run a small script as ``nobody`` (the suite runs as root in CI) and skip with
a reason where that is impossible.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
import resource
import signal
import socket
import stat
import subprocess
import textwrap

import pytest

from aofnode import exitcodes
from tests.nodeproc import Node, free_port, pid_alive, wait_for

NOBODY_UID = 65534
SYSTEM_PYTHON = "/usr/bin/python3"

IMPOSTOR = textwrap.dedent("""
    import json, os, socket, sys
    run, aof, lock = sys.argv[1], sys.argv[2], sys.argv[3]
    out = {"uid": os.getuid()}
    for name, kind in (("backend.sock", socket.SOCK_STREAM), ("closer.sock", socket.SOCK_SEQPACKET)):
        s = socket.socket(socket.AF_UNIX, kind)
        s.settimeout(2)
        try:
            s.connect(os.path.join(run, name))
            # Connected (the directory was loosened by the test): try to take over.
            if name == "backend.sock":
                s.sendall(bytes([0x92, 0xc4, 1, ord("H"), 0x01]))  # msgpack [b"H", 1]: Hello
            else:
                victim = os.path.join(os.path.dirname(run), "temp-rewriteaof-bg-1.aof")
                import struct
                s.sendall(b"\\x93\\xc4\\x01U\\x01" + bytes([0xa0 + len(victim)]) + victim.encode())
            data = s.recv(100)
            out[name] = "answered" if data else "closed"
        except OSError as exc:
            out[name] = exc.__class__.__name__
        finally:
            s.close()
    for path in (aof, lock):
        try:
            open(path, "rb").read(1)
            out[os.path.basename(path)] = "read"
        except OSError as exc:
            out[os.path.basename(path)] = exc.__class__.__name__
    print(json.dumps(out))
""")


def _as_nobody(*args: str) -> dict:
    if os.geteuid() != 0:
        pytest.skip("needs root to run a script as nobody")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"no {SYSTEM_PYTHON} that nobody can run")
    out = subprocess.run([SYSTEM_PYTHON, "-c", IMPOSTOR, *args], user=NOBODY_UID, group=NOBODY_UID,
                         capture_output=True, text=True, timeout=20, cwd="/")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def node():
    # pytest's tmp_path sits under a 0700 directory, which alone would stop nobody: these nodes
    # live where every ancestor is traversable, so only the node's own modes can stop it.
    root = tempfile.mkdtemp(prefix="aofnode-trust-", dir="/tmp")
    os.chmod(root, 0o755)
    n = Node(pathlib.Path(root), appendfsync="always").start()
    yield n
    n.kill_all()
    shutil.rmtree(root, ignore_errors=True)


def _write_and_check(node: Node, prefix: str, count: int = 50) -> None:
    with node.client() as c:
        for i in range(count):
            assert c.execute("SET", f"{prefix}{i}", f"v{i}") == "OK"


def _assert_all_present(node: Node, prefixes: list[str], count: int = 50) -> None:
    with node.client() as c:
        for prefix in prefixes:
            for i in range(count):
                assert c.execute("GET", f"{prefix}{i}") == f"v{i}".encode(), (prefix, i)


def test_another_user_cannot_reach_internal_sockets_or_read_data(node):
    _write_and_check(node, "before")
    os.chmod(node.dir, 0o711)  # nobody may pass through the data dir: the run dir and files must stop it
    result = _as_nobody(str(node.dir / "run"), str(node.aof_path), str(node.dir / "aofnode.lock"))
    assert result["uid"] == NOBODY_UID
    assert result["backend.sock"] == "PermissionError"
    assert result["closer.sock"] == "PermissionError"
    assert result["appendonly.aof"] == "PermissionError"
    assert result["aofnode.lock"] == "PermissionError"
    _write_and_check(node, "after")
    node.stop()
    node.start()
    _assert_all_present(node, ["before", "after"])


def test_peer_check_rejects_another_user_even_through_a_loosened_directory(node):
    """Defence in depth: with the run directory and sockets opened up by hand, SO_PEERCRED
    still refuses the impostor, logs it once, and changes nothing."""
    _write_and_check(node, "before")
    for path in (node.dir, node.dir / "run"):
        os.chmod(path, 0o777)
    for name in ("backend.sock", "closer.sock"):
        os.chmod(node.dir / "run" / name, 0o777)
    victim = node.dir / "temp-rewriteaof-bg-1.aof"
    victim.write_bytes(b"must survive")
    pids = node.actor_pids()
    result = _as_nobody(str(node.dir / "run"), str(node.aof_path), str(node.dir / "aofnode.lock"))
    dropped = ("closed", "ConnectionResetError", "BrokenPipeError")  # the peer hung up on it
    assert result["backend.sock"] in dropped
    assert result["closer.sock"] in dropped
    assert victim.read_bytes() == b"must survive"

    def both_rejected():
        events = node.events("internal_peer_rejected")
        return events if len(events) >= 2 else None
    rejected = wait_for(both_rejected, timeout=10, what="both rejections logged")
    assert {ev["channel"] for ev in rejected} == {"backend", "closer"}
    assert all(ev["peer_uid"] == NOBODY_UID for ev in rejected)
    _write_and_check(node, "after")
    assert node.actor_pids() == pids  # no actor restarted
    wait_for(lambda: node.info("stats")["rejected_internal_peers"] == 1, timeout=5,
             what="the front's rejection counted in INFO")
    node.stop()
    node.start()
    _assert_all_present(node, ["before", "after"])


def test_file_modes_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        n = Node(tmp_path, appendfsync="always").start()
    finally:
        os.umask(old)
    try:
        _write_and_check(n, "k")
        modes = {p: stat.S_IMODE(os.stat(n.dir / p).st_mode) for p in ("", "run", "appendonly.aof", "aofnode.lock")}
        assert modes == {"": 0o700, "run": 0o700, "appendonly.aof": 0o600, "aofnode.lock": 0o600}
        for sock in ("backend.sock", "closer.sock"):
            assert stat.S_IMODE(os.stat(n.dir / "run" / sock).st_mode) == 0o600
        with n.client() as c:
            c.execute("BGREWRITEAOF")
        wait_for(lambda: n.events("rewrite_switched"), timeout=20, what="the rewrite")
        assert stat.S_IMODE(os.stat(n.aof_path).st_mode) == 0o600
    finally:
        n.kill_all()


def test_a_looser_existing_data_dir_is_tightened_with_a_warning(tmp_path):
    (tmp_path / "data").mkdir(mode=0o755)
    os.chmod(tmp_path / "data", 0o755)
    n = Node(tmp_path).start()
    try:
        assert stat.S_IMODE(os.stat(n.dir).st_mode) == 0o700
        [event] = n.events("data_dir_tightened")
        assert event["old_mode"] == "0o755"
    finally:
        n.kill_all()


def _serve(tmp_path, *extra, preexec=None) -> subprocess.CompletedProcess:
    from tests.nodeproc import AOFNODE
    return subprocess.run([AOFNODE, "serve", "--dir", str(tmp_path / "data"), *extra],
                          capture_output=True, text=True, timeout=30, preexec_fn=preexec)


def test_a_port_in_use_stops_serve_at_once(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        out = _serve(tmp_path, "--bind", f"tcp://127.0.0.1:{port}")
    assert out.returncode == exitcodes.BIND
    assert "cannot bind" in out.stderr and str(port) in out.stderr


def test_an_unusable_data_dir_stops_serve_at_once(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    from tests.nodeproc import AOFNODE
    out = subprocess.run([AOFNODE, "serve", "--dir", str(tmp_path / "file" / "data"),
                          "--bind", f"tcp://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=30)
    assert out.returncode == exitcodes.STORAGE
    assert "cannot use the data directory" in out.stderr


@pytest.mark.parametrize("what", ["data dir", "run dir"])
def test_a_directory_owned_by_another_user_is_refused(tmp_path, what):
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory to nobody")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    target = data if what == "data dir" else data / "run"
    target.mkdir(mode=0o700, exist_ok=True)
    os.chown(target, NOBODY_UID, NOBODY_UID)
    out = _serve(tmp_path, "--bind", f"tcp://127.0.0.1:{free_port()}")
    assert out.returncode == exitcodes.STORAGE, out.stderr
    assert "cannot use the data directory" in out.stderr


def test_no_space_for_a_new_aof_stops_serve_at_once(tmp_path):
    """A full disk at start (RLIMIT_FSIZE makes the AOF header's write fail with EFBIG, as
    ENOSPC would, without a mount): exit 6 with one line, not a crash loop."""
    (tmp_path / "data").mkdir(mode=0o700)
    (tmp_path / "data" / "aofnode.lock").write_text("")  # the lock file exists already

    def no_file_growth():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))

    out = _serve(tmp_path, "--bind", f"tcp://127.0.0.1:{free_port()}", preexec=no_file_growth)
    assert out.returncode == exitcodes.STORAGE, out.stderr
    assert "aofnode: cannot use" in out.stderr  # the lock file or the AOF: one line either way


def test_a_crash_loop_stops_the_node(tmp_path):
    n = Node(tmp_path, extra=("--crash-loop-count", "3", "--crash-loop-window", "60")).start()
    try:
        for _ in range(3):
            pid = wait_for(lambda: (p := n.actor_pids().get("closer")) and pid_alive(p) and p,
                           timeout=15, what="a live closer")
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda pid=pid: n.actor_pids().get("closer") != pid or n.proc.poll() is not None,
                     timeout=15, what="the closer replaced or the node stopped")
        assert n.proc.wait(timeout=20) == exitcodes.CRASH_LOOP
        [event] = n.events("actor_crash_loop")
        assert event["role"] == "closer" and event["deaths"] == 3
    finally:
        n.kill_all()
