"""Hazard: an fsync, fdatasync or rename that fails with EIO in a real node never loses a write
that was acknowledged (issue 8, findings 3 and 4).

Every test runs a real ``aofnode serve --appendfsync always`` with the faultfs shim preloaded
(tests/faultinject.py), lets it start and load with nothing armed, arms a fault while it serves,
and ends with kill -9 of every node process and a restart: then every acknowledged write must
be there. A write counts as acknowledged only once its reply said OK.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aofnode import exitcodes
from aofnode import protocol
from aofnode.client import CommandError
from tests.faultinject import Faults, faultfs_library, faults  # noqa: F401 (fixtures)
from tests.nodeproc import wait_for
from tests.integration.test_rewrite import PAUSE, release, wait_paused

# 32 KiB values, 16 per batch: 512 KiB per round trip keeps the diff tests fast under "always".
BIG_VALUE = b"v" * (32 << 10)


def persistence(c) -> dict:
    return c.execute("INFO", "persistence")["persistence"]


def write_keys(c, acked: dict, prefix: str, n: int, value: bytes = b"") -> None:
    """SET ``n`` keys in batches of 16; each one that got OK goes into ``acked``."""
    for start in range(0, n, 16):
        batch = [(f"{prefix}{i}".encode(), value or f"{prefix}-{i}".encode())
                 for i in range(start, min(start + 16, n))]
        replies = c.execute_many([("SET", k, v) for k, v in batch])
        for (k, v), reply in zip(batch, replies):
            if reply == "OK":
                acked[k] = v


def refused_with_misconf(c, key: bytes, acked: dict) -> bool:
    """One SET while a fault is armed: True if it got MISCONF. An OK is recorded as acked (the
    durability check then covers it too) and counts as not refused."""
    try:
        reply = c.execute("SET", key, b"during-fault")
    except CommandError as exc:
        return exc.code == protocol.MISCONF
    if reply == "OK":
        acked[key] = b"during-fault"
    return False


def wait_writable(c, acked: dict, timeout: float = 5.0) -> None:
    """After the fault is disarmed: a SET succeeds again (the writer retries about once a
    second)."""
    attempts = []

    def one_write():
        key = b"retry-%d" % len(attempts)
        attempts.append(key)
        return not refused_with_misconf(c, key, acked) and key in acked
    wait_for(one_write, timeout, interval=0.05, what="a write to succeed after disarming")


def kill9_restart_and_verify(node, acked: dict) -> None:
    """kill -9 of every node process (no clean shutdown, no final fsync), a restart, and every
    acknowledged write read back."""
    node.kill_all()
    node.start()
    keys = list(acked)
    with node.client(timeout=10) as c:
        values = []
        for start in range(0, len(keys), 500):
            values += c.execute("MGET", *keys[start:start + 500])
    lost = [k for k, v in zip(keys, values) if v != acked[k]]
    assert not lost, f"{len(lost)} of {len(keys)} acknowledged writes lost, e.g. {lost[:5]}"


def start_rewrite(c) -> None:
    assert c.execute("BGREWRITEAOF") == "Background append only file rewriting started"


def wait_rewrite_over(c, timeout: float = 10.0) -> dict:
    return wait_for(lambda: (p := persistence(c))["aof_rewrite_in_progress"] == 0 and p,
                    timeout, what="the rewrite to end")


_SHIM_PROBE = """
import os, sys, threading
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY)
results = []
def sync():
    try:
        os.fdatasync(fd)
        results.append("ok")
    except OSError as exc:
        results.append(exc.errno)
threads = [threading.Thread(target=sync) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
pid = os.fork()
if pid == 0:
    sync(); sync()
    os._exit(results[-2:].count("ok"))
sync(); sync()
_, status = os.waitpid(pid, 0)
print(results.count("ok") + os.waitstatus_to_exitcode(status), len(results) + 2)
"""


def test_shim_counts_one_budget_across_threads_and_a_fork(faults: Faults, tmp_path):
    """The shim alone: skip 2, fail 3, over 4 threads then a parent and its forked child."""
    target = tmp_path / "probe.dat"
    faults.arm("fdatasync", target.name, skip=2, count=3)
    out = subprocess.run([sys.executable, "-c", _SHIM_PROBE, str(target)], capture_output=True,
                         text=True, timeout=30, env={**os.environ, **faults.env})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["5", "8"]  # 8 calls: 2 skipped, 3 failed, 3 ok
    assert [f.op for f in faults.fired()] == ["fdatasync"] * 3
    assert faults.rules()[0][2:4] == (0, 0)


def test_failing_aof_fdatasync_refuses_writes_until_disarmed(make_node, faults: Faults):
    """The shim itself, on a path the writer already handles: fdatasync of the live AOF."""
    node = make_node("always", env=faults.env).start()
    acked: dict[bytes, bytes] = {}
    with node.client() as c:
        write_keys(c, acked, "before-", 50)
        assert len(acked) == 50
        faults.arm("fdatasync", "appendonly.aof", count=-1)
        assert refused_with_misconf(c, b"refused", acked)
        assert faults.wait_fired(1)[0].path.endswith("appendonly.aof")
        assert persistence(c)["aof_last_write_status"] == "err"
        assert refused_with_misconf(c, b"refused-again", acked)
        assert c.execute("GET", b"before-1") == b"before--1"  # reads are still served
        faults.disarm()
        wait_writable(c, acked)
        assert persistence(c)["aof_last_write_status"] == "ok"
        write_keys(c, acked, "after-", 50)
    assert sum(k.startswith(b"after-") for k in acked) == 50
    kill9_restart_and_verify(node, acked)


def test_failing_directory_fsync_after_rewrite_rename_loses_nothing(make_node, faults: Faults):
    """Finding 3: the rename of the rewrite succeeded, the fsync of the directory that makes it
    durable failed. The switch must still happen (the old file is gone from the directory), the
    writer must refuse writes (MISCONF) until a directory fsync succeeds, and nothing
    acknowledged before, during or after may be lost."""
    node = make_node("always", env={**faults.env, PAUSE: "before_rename"}).start()
    acked: dict[bytes, bytes] = {}
    with node.client() as c:
        write_keys(c, acked, "before-", 100)
        assert len(acked) == 100
        start_rewrite(c)
        # Armed at step 4.3, so the first fsync of the directory to fail is the one after the
        # rename, whatever other directory fsyncs the node does earlier.
        wait_paused(node, "before_rename")
        faults.arm("fsync", Faults.exact(node.dir), count=-1)
        release(node, "before_rename")
        fired = faults.wait_fired(1)
        assert fired[0].pid == node.actor_pids()["log"], fired  # the parent's step 4.3
        wait_rewrite_over(c)
        refused = [refused_with_misconf(c, b"armed-%d" % i, acked) for i in range(20)]
        status_while_armed = persistence(c)["aof_last_write_status"]
        faults.disarm()
        wait_writable(c, acked)
        write_keys(c, acked, "after-", 100)
    assert sum(k.startswith(b"after-") for k in acked) == 100
    kill9_restart_and_verify(node, acked)
    # Checked after the durability check so that a loss is reported first: it is the worse.
    assert all(refused), f"{refused.count(False)} of 20 writes acknowledged while the " \
                         f"directory fsync failed"
    assert status_while_armed == "err"


@pytest.mark.parametrize("where", ["child", "catchup", "final"])
def test_failing_temp_file_fdatasync_fails_the_rewrite(make_node, faults: Faults, where):
    """Finding 4: any fdatasync error on the rewrite's temp file fails the rewrite, and nothing
    acknowledged is lost.

    child:   the child's own fdatasync (it exits non-zero);
    catchup: the parent's background fdatasync of the catch-up slices (step 4.1), reached by
             holding the child at ``child_done`` while > 1 MiB of diff piles up;
    final:   the parent's last fdatasync before the rename (step 4.2), with a small diff.
    """
    env = dict(faults.env)
    if where != "child":
        env[PAUSE] = "child_done"
    node = make_node("always", env=env).start()
    acked: dict[bytes, bytes] = {}
    with node.client() as c:
        write_keys(c, acked, "before-", 200)
        if where == "child":
            faults.arm("fdatasync", "temp-rewriteaof-", count=1)
        start_rewrite(c)
        if where != "child":
            wait_paused(node, "child_done")  # the child's fdatasyncs are done by now
            diff_keys = 64 if where == "catchup" else 4
            write_keys(c, acked, "diff-", diff_keys, BIG_VALUE)
            diff = persistence(c)["aof_rewrite_buffer_length"]
            if where == "catchup":
                # Slices leave FINAL_BYTES (256 KiB) for step 4.2; more than that in slices
                # means a catch-up fdatasync before the final one.
                assert diff >= 1 << 20, diff
            faults.arm("fdatasync", "temp-rewriteaof-", count=1)
            release(node, "child_done")
        fired = faults.wait_fired(1)
        assert "temp-rewriteaof-" in fired[0].path
        if where != "child":
            assert fired[0].pid == node.actor_pids()["log"], fired
        after = wait_rewrite_over(c)
        write_keys(c, acked, "after-", 100)
    assert after["aof_last_bgrewrite_status"] == "err", after
    assert after["aof_rewrites"] == 0, after
    assert len(acked) == 200 + (0 if where == "child" else diff_keys) + 100
    kill9_restart_and_verify(node, acked)


def _deleted_aofs_held(pid: int) -> list[str]:
    """The fds of process ``pid`` on an AOF that has no name any more (the old file of a switch)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.endswith("appendonly.aof (deleted)"):
            out.append(target)
    return out


def _old_aof_closes(node) -> int:
    return sum(1 for ev in node.events("closer_job_done")
               if ev.get("kind") == "close" and ev.get("path", "").endswith("appendonly.aof"))


def test_the_old_aof_is_held_until_the_rename_is_durable(make_node, faults: Faults):
    """The rename of the rewrite succeeded, the directory fsync after it failed: after a power
    cut the old name could still lead to the old file, so it must not reach the closer (which
    cuts big files down in steps) before a directory fsync succeeded. The log actor holds it
    meanwhile; once the retry succeeds the closer gets it."""
    node = make_node("always", env={**faults.env, PAUSE: "before_rename"}).start()
    acked: dict[bytes, bytes] = {}
    with node.client() as c:
        write_keys(c, acked, "before-", 100)
        start_rewrite(c)
        wait_paused(node, "before_rename")
        closes_before = _old_aof_closes(node)
        faults.arm("fsync", Faults.exact(node.dir), count=-1)
        release(node, "before_rename")
        faults.wait_fired(1)
        wait_rewrite_over(c)
        log_pid = node.actor_pids()["log"]
        assert node.events("rewrite_switched")
        # Long enough for the closer to have closed it, were it handed over.
        wait_for(lambda: len(faults.fired()) >= 3, 10, what="two retries of the directory fsync")
        assert _old_aof_closes(node) == closes_before
        assert len(_deleted_aofs_held(log_pid)) == 1
        assert node.events("rewrite_old_file_held")
        faults.disarm()
        wait_writable(c, acked)
        wait_for(lambda: _old_aof_closes(node) == closes_before + 1, 10, what="the old AOF closed")
        wait_for(lambda: not _deleted_aofs_held(log_pid), 10, what="the log actor to let go")
        write_keys(c, acked, "after-", 50)
    kill9_restart_and_verify(node, acked)


def test_a_data_directory_serve_creates_is_made_durable_first(make_node, faults: Faults):
    """``serve`` creates the data directory: its name is durable only once the parent is
    fsynced, else a power cut after the first start could take the directory, acknowledged
    writes and all. The parent's fsync fails here: ``serve`` must not start (exit 6)."""
    node = make_node("always", env=faults.env)
    assert not node.dir.exists()
    faults.arm("fsync", Faults.exact(node.root), count=-1)
    node.start(wait=False)
    try:
        code = node.proc.wait(15)
    finally:
        node.kill_all()
    assert [f.op for f in faults.fired()] == ["fsync"], faults.fired()
    assert code == exitcodes.STORAGE, node.stderr_path.read_text()
    assert "cannot use the data directory" in node.stderr_path.read_text()
    faults.disarm()
    node.start()
    with node.client() as c:
        assert c.execute("SET", "k", "v") == "OK"
