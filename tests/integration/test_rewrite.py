"""Integration: the background AOF rewrite against a real node (fork, diff queue, switch)."""
import os
import signal
import time

import pytest

from aofnode.aof import format as aof_format
from aofnode import protocol
from aofnode.client import CommandError
from tests.nodeproc import pid_alive, wait_for

PAUSE = "AOFNODE_TEST_PAUSE_AT"


def marker(node, step):
    return node.dir / f"paused-at-{step}"


def wait_paused(node, step, timeout=20.0) -> int:
    """Wait until a process is paused at ``step``; return its pid."""
    path = marker(node, step)
    wait_for(lambda: path.exists() and path.read_text().strip(), timeout, what=f"pause at {step}")
    return int(path.read_text())


def release(node, step):
    marker(node, step).unlink()


def persistence(c):
    return c.execute("INFO", "persistence")["persistence"]


def wait_rewrites(c, n, timeout=30.0):
    wait_for(lambda: persistence(c)["aof_rewrites"] >= n and not persistence(c)["aof_rewrite_in_progress"],
             timeout, what=f"{n} rewrites done")


def temp_files(node):
    return sorted(p.name for p in node.dir.glob("temp-rewriteaof-*"))


def test_writes_during_rewrite_are_kept_after_switch_and_restart(make_node):
    node = make_node("always", env={PAUSE: "child_done"}).start()
    with node.client() as c:
        for i in range(200):
            c.execute("SET", f"k{i}", "old")
            c.execute("SET", f"k{i}", f"v{i}")  # overwritten: the rewrite drops the old one
        c.execute("SET", "ttl", "x", "PX", 600_000)
        c.execute("HSET", "h", "a", "1", "b", "2")
        assert c.execute("BGREWRITEAOF") == "Background append only file rewriting started"
        wait_paused(node, "child_done")
        assert persistence(c)["aof_rewrite_in_progress"] == 1
        # Writes while the child runs: they go to the live AOF and the diff queue.
        for i in range(100):
            c.execute("APPEND", "log", f"{i},")  # not idempotent: a doubled diff would show
        c.execute("INCR", "n")
        c.execute("HSET", "h", "c", "3")
        c.execute("DEL", "k0")
        expired_at = time.monotonic()
        c.execute("PEXPIRE", "k1", 500_000)
        assert persistence(c)["aof_rewrite_buffer_length"] > 0
        release(node, "child_done")
        wait_rewrites(c, 1)
        info = persistence(c)
        assert info["aof_last_bgrewrite_status"] == "ok"
        assert info["aof_rewrite_buffer_length"] == 0
        assert info["aof_last_cow_size"] > 0
        assert c.execute("INFO", "stats")["stats"]["total_forks"] == 1

    def check():
        with node.client() as c:
            assert c.execute("GET", "log") == "".join(f"{i}," for i in range(100)).encode()
            assert c.execute("GET", "n") == b"1"
            assert c.execute("HGETALL", "h") == [b"a", b"1", b"b", b"2", b"c", b"3"]
            assert c.execute("GET", "k0") is None
            assert c.execute("GET", "k199") == b"v199"
            # Kept as the deadline it was, however long the rewrite and restarts took under load.
            waited_ms = (time.monotonic() - expired_at) * 1000
            assert 500_000 - waited_ms - 1_000 < c.execute("PTTL", "k1") <= 500_000
            assert 500_000 < c.execute("PTTL", "ttl") <= 600_000
            assert c.execute("DBSIZE") == 203
    check()
    for ev in ("rewrite_started", "rewrite_child_done", "rewrite_diff_flushed", "rewrite_switched"):
        assert len(node.events(ev)) == 1, ev
    assert node.events("rewrite_child_done")[0]["keys"] == 202
    wait_for(lambda: any(e["kind"] == "close" for e in node.events("closer_job_done")), 10,
             what="closer closed the old AOF")
    node.stop()
    scan = aof_format.scan(str(node.aof_path))
    assert scan.status == "ok" and scan.entries < 400 + 100  # compacted: no overwritten SETs
    node.start()
    check()


def test_second_bgrewriteaof_is_refused_while_one_runs(make_node):
    node = make_node("everysec", env={PAUSE: "child_done"}).start()
    with node.client() as c:
        c.execute("SET", "a", "1")
        c.execute("BGREWRITEAOF")
        wait_paused(node, "child_done")
        err = pytest.raises(CommandError, c.execute, "BGREWRITEAOF").value
        assert err.code == protocol.BUSY
        release(node, "child_done")
        wait_rewrites(c, 1)
        assert persistence(c)["aof_rewrites"] == 1


def test_killed_child_sets_err_keeps_live_aof_and_next_rewrite_succeeds(make_node):
    node = make_node("always", env={PAUSE: "child_done"}).start()
    with node.client() as c:
        c.execute("SET", "a", "1")
        c.execute("BGREWRITEAOF")
        child = wait_paused(node, "child_done")
        c.execute("SET", "b", "2")
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: persistence(c)["aof_last_bgrewrite_status"] == "err", 10, what="status err")
        info = persistence(c)
        assert info["aof_rewrite_in_progress"] == 0
        assert info["aof_rewrites_consecutive_failures"] == 1
        assert "signal 9" in node.events("rewrite_failed")[-1]["reason"]
        wait_for(lambda: not temp_files(node), 10, what="temp file removed by the closer")
        assert c.execute("MGET", "a", "b") == [b"1", b"2"]
        release(node, "child_done")  # the killed child's marker
        c.execute("BGREWRITEAOF")
        wait_paused(node, "child_done")
        release(node, "child_done")
        wait_rewrites(c, 1)
        info = persistence(c)
        assert info["aof_last_bgrewrite_status"] == "ok"
        assert info["aof_rewrites_consecutive_failures"] == 0
    node.stop()
    node.start()
    with node.client() as c:
        assert c.execute("MGET", "a", "b") == [b"1", b"2"]


def test_diff_limit_aborts_the_rewrite_and_loses_nothing(make_node):
    node = make_node("always", env={PAUSE: "child_done"},
                     extra=("--aof-rewrite-diff-limit", "4096")).start()
    with node.client() as c:
        c.execute("SET", "a", "1")
        c.execute("BGREWRITEAOF")
        child = wait_paused(node, "child_done")
        for i in range(40):
            c.execute("SET", f"big{i}", "x" * 200)
        wait_for(lambda: persistence(c)["aof_last_bgrewrite_status"] == "err", 10, what="abort")
        failed = node.events("rewrite_failed")[-1]
        assert failed["reason"] == "diff_limit" and failed["limit"] == 4096
        wait_for(lambda: not pid_alive(child), 10, what="child killed")
        wait_for(lambda: not temp_files(node), 10, what="temp file removed")
        assert persistence(c)["aof_rewrite_in_progress"] == 0
    node.stop()
    node.start()
    with node.client() as c:
        assert c.execute("DBSIZE") == 41


def test_stale_temp_files_are_removed_at_start(make_node):
    node = make_node()
    node.dir.mkdir(parents=True)
    stale = node.dir / "temp-rewriteaof-bg-99999.aof"
    stale.write_bytes(b"half a rewrite")
    node.start()
    wait_for(lambda: not stale.exists(), 10, what="stale temp file removed")
    assert node.events("stale_temp_file_removed")[0]["path"].endswith(stale.name)


def test_closer_not_log_actor_drops_last_reference_to_old_aof(make_node):
    node = make_node("everysec", env={PAUSE: "closer_before_close"}).start()
    with node.client() as c:
        c.execute_many([("SET", f"k{i % 50}", "v" * 1000) for i in range(2000)])
        log_pid = c.execute("INFO", "server")["server"]["process_id"]
        c.execute("BGREWRITEAOF")
        closer_pid = wait_paused(node, "closer_before_close")

        def deleted_aof_fds(pid):
            out = []
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.endswith("appendonly.aof (deleted)"):
                    out.append(target)
            return out
        # The switch happened: the old file has no name; only the closer still holds it.
        assert deleted_aof_fds(closer_pid), "the closer holds the old AOF"
        assert not deleted_aof_fds(log_pid), "the log actor closed only a non-last reference"
        assert persistence(c)["closer_pending_jobs"] >= 1
        release(node, "closer_before_close")
        wait_for(lambda: not deleted_aof_fds(closer_pid), 10, what="closer closed it")
        wait_for(lambda: persistence(c)["closer_pending_jobs"] == 0, 10, what="job acknowledged")
        assert c.execute("GET", "k7") == b"v" * 1000


def test_auto_rewrite_starts_on_growth(make_node):
    node = make_node("no", extra=("--auto-aof-rewrite-min-size", "64kb",
                                  "--auto-aof-rewrite-percentage", "100")).start()
    with node.client() as c:
        for _ in range(40):
            c.execute_many([("SET", f"k{i}", "x" * 100) for i in range(20)])
        wait_rewrites(c, 1)
        assert node.events("rewrite_started")[0]["trigger"] == "auto"
        assert persistence(c)["aof_current_size"] < 64 * 1024
        assert c.execute("DBSIZE") == 20


@pytest.mark.parametrize("sched, policy", [("idle", os.SCHED_IDLE), ("normal", os.SCHED_OTHER)])
def test_the_rewrite_child_runs_in_the_scheduling_class_asked_for(make_node, sched, policy):
    node = make_node("everysec", extra=("--aof-rewrite-child-sched", sched),
                     env={PAUSE: "child_done"}).start()
    with node.client() as c:
        c.execute("SET", "k", "v")
        assert c.execute("BGREWRITEAOF") == "Background append only file rewriting started"
        child = wait_paused(node, "child_done")
        assert os.sched_getscheduler(child) == policy
        assert persistence(c)["aof_rewrite_child_sched"] == sched
        release(node, "child_done")
        wait_rewrites(c, 1)


def test_lists_sets_and_sorted_sets_survive_a_rewrite_and_a_restart(make_node):
    """Every collection type through a real node's rewrite (with writes during it, which go to
    the diff), then a restart from the rewritten AOF."""
    node = make_node("always", env={PAUSE: "child_done"}).start()
    with node.client() as c:
        c.execute("RPUSH", "queue", *[f"job{i}" for i in range(300)])
        c.execute("LPOP", "queue", "100")
        c.execute("SADD", "tags", *[f"t{i}" for i in range(300)])
        c.execute("SREM", "tags", "t0", "t1")
        c.execute("ZADD", "board", *[x for i in range(300) for x in (f"{i}.5", f"p{i}")])
        c.execute("ZINCRBY", "board", "0.25", "p7")
        c.execute("PEXPIRE", "tags", 600_000)
        assert c.execute("BGREWRITEAOF") == "Background append only file rewriting started"
        wait_paused(node, "child_done")
        c.execute("RPUSH", "queue", "late")
        c.execute("SPOP", "tags", "3")
        c.execute("ZPOPMIN", "board", "2")
        release(node, "child_done")
        wait_rewrites(c, 1)
        assert persistence(c)["aof_last_bgrewrite_status"] == "ok"
        want = {k: c.execute(*cmd) for k, cmd in (
            ("queue", ("LRANGE", "queue", "0", "-1")), ("tags", ("SMEMBERS", "tags")),
            ("board", ("ZRANGE", "board", "0", "-1", "WITHSCORES")))}
    assert node.events("rewrite_child_done")[0]["keys"] == 3
    node.stop()
    node.start()
    with node.client() as c:
        assert c.execute("LRANGE", "queue", "0", "-1") == want["queue"]
        assert sorted(c.execute("SMEMBERS", "tags")) == sorted(want["tags"])
        assert len(want["tags"]) == 295
        assert c.execute("ZRANGE", "board", "0", "-1", "WITHSCORES") == want["board"]
        assert c.execute("ZSCORE", "board", "p7") == b"7.75"
        assert 500_000 < c.execute("PTTL", "tags") <= 600_000
