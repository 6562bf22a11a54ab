"""The supervisor in process, over scripted stand-in actors (small real processes): restarts,
fatal exit codes, the crash-loop stop and the shutdown order."""
from __future__ import annotations

import os
import signal
import sys
import textwrap

import pytest
import structlog

from aofnode import exitcodes
from aofnode.runtime.actor import Runtime
from aofnode.supervisor import Supervisor, take_lock
from aofnode.config import Config
from tests.nodeproc import pid_alive, wait_for

# A stand-in actor: writes the password it was handed (or "-") to <dir>/<role>.env, exits at once
# with the code in <dir>/<role>.exit if that file exists, else waits for SIGTERM and appends its
# role to <dir>/stopped.
FAKE_ACTOR = textwrap.dedent("""
    import json, os, signal, sys, time
    role, config = sys.argv[1], json.loads(sys.argv[2])
    with open(os.path.join(config["dir"], role + ".env"), "w") as f:
        f.write(os.environ.get("AOFNODE_REQUIREPASS", "-"))
    exit_file = os.path.join(config["dir"], role + ".exit")
    if os.path.exists(exit_file):
        sys.exit(int(open(exit_file).read()))
    def stop(*_):
        with open(os.path.join(config["dir"], "stopped"), "a") as f:
            f.write(role + "\\n")
        code_file = os.path.join(config["dir"], role + ".stopcode")
        sys.exit(int(open(code_file).read()) if os.path.exists(code_file) else 0)
    signal.signal(signal.SIGTERM, stop)
    open(os.path.join(config["dir"], role + ".ready"), "w").close()
    while True:
        signal.pause()
""")


def _supervise(tmp_path, requirepass=None, **settings):
    config = Config(**{"dir": str(tmp_path), "crash_loop_count": 3, "crash_loop_window_s": 60.0, **settings})
    lock_fd = take_lock(config.lock_path)
    actor = Supervisor(config, structlog.get_logger(), lock_fd, command=[sys.executable, "-c", FAKE_ACTOR],
                       requirepass=requirepass)
    rt = Runtime(actor)
    rt.start()
    yield actor, rt, tmp_path
    for child in actor.children.values():
        if child.proc is not None and child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()
    os.close(lock_fd)


@pytest.fixture
def supervised(tmp_path):
    yield from _supervise(tmp_path)


@pytest.fixture
def supervised_resp(tmp_path, monkeypatch):
    # A password in the supervisor's own environment must not leak to any actor: only
    # --requirepass (the argument below) reaches the two fronts.
    monkeypatch.setenv("AOFNODE_REQUIREPASS", "inherited")
    yield from _supervise(tmp_path, requirepass="pw", resp_bind="127.0.0.1:6380")


def _all_ready(tmp, roles):
    wait_for(lambda: all((tmp / f"{role}.ready").exists() for role in roles),
             timeout=10, what="the stand-ins' handlers")


def _turn_until(rt, predicate, what, timeout=10.0):
    return wait_for(lambda: rt.run_once(timeout=0.05) or predicate(), timeout=timeout, what=what)


def test_a_killed_actor_is_restarted(supervised):
    actor, rt, _ = supervised
    first = actor.children["closer"].proc.pid
    os.kill(first, signal.SIGKILL)
    _turn_until(rt, lambda: actor.children["closer"].proc.pid != first and pid_alive(actor.children["closer"].proc.pid),
                "a new closer")
    assert not rt.stop_requested


def test_a_fatal_exit_code_stops_the_node_with_that_code(supervised):
    actor, rt, tmp = supervised
    (tmp / "front.exit").write_text(str(exitcodes.BIND))
    os.kill(actor.children["front"].proc.pid, signal.SIGKILL)  # its restart exits 5 at once
    _turn_until(rt, lambda: rt.stop_requested, "the node to stop")
    assert actor.on_stop() == exitcodes.BIND


def test_a_crash_loop_stops_the_node(supervised):
    actor, rt, tmp = supervised
    (tmp / "log.exit").write_text("1")
    os.kill(actor.children["log"].proc.pid, signal.SIGKILL)
    _turn_until(rt, lambda: rt.stop_requested, "the crash loop to be seen", timeout=20)
    assert len(actor.children["log"].deaths) == 3
    assert actor.on_stop() == exitcodes.CRASH_LOOP


def test_the_restart_backoff_doubles_up_to_its_cap(tmp_path):
    """An actor that keeps dying soon after its start waits 0.1 s, then twice as long each time,
    at most ``--restart-backoff-max``."""
    with structlog.testing.capture_logs() as logs:
        supervised = _supervise(tmp_path, crash_loop_count=6, restart_backoff_max_s=0.3)
        actor, rt, tmp = next(supervised)
        (tmp / "log.exit").write_text("1")
        os.kill(actor.children["log"].proc.pid, signal.SIGKILL)
        _turn_until(rt, lambda: rt.stop_requested, "the crash loop to be seen", timeout=20)
        next(supervised, None)  # its teardown: the stand-ins still alive are killed
    delays = [e["in_s"] for e in logs if e["event"] == "actor_restart_scheduled"]
    assert delays == [0.1, 0.2, 0.3, 0.3, 0.3]


def test_shutdown_stops_front_then_log_then_closer(supervised):
    actor, rt, tmp = supervised
    wait_for(lambda: all((tmp / f"{role}.ready").exists() for role in ("front", "log", "closer")),
             timeout=10, what="the stand-ins' handlers")
    rt.request_stop()
    assert actor.finished()
    assert actor.on_stop() == exitcodes.OK
    assert (tmp / "stopped").read_text().split() == ["front", "log", "closer"]


def test_an_actor_failing_its_stop_makes_serve_exit_non_zero(supervised):
    """A log actor whose final fsync fails exits 1: ``serve`` must not say 0 (clean) then."""
    actor, rt, tmp = supervised
    (tmp / "log.stopcode").write_text("1")
    wait_for(lambda: all((tmp / f"{role}.ready").exists() for role in ("front", "log", "closer")),
             timeout=10, what="the stand-ins' handlers")
    rt.request_stop()
    assert actor.on_stop() == exitcodes.ERROR


def test_no_resp_actor_without_resp_bind(supervised):
    actor, _, tmp = supervised
    _all_ready(tmp, ("front", "log", "closer"))
    assert set(actor.children) == {"closer", "log", "front"}
    assert not (tmp / "resp.env").exists()


def test_the_password_reaches_the_fronts_only_in_their_environment(supervised_resp):
    actor, _, tmp = supervised_resp
    _all_ready(tmp, ("front", "resp", "log", "closer"))
    assert {role: (tmp / f"{role}.env").read_text() for role in actor.children} == {
        "closer": "-", "log": "-", "front": "pw", "resp": "pw"}
    for child in actor.children.values():  # and never on a command line (world-readable)
        assert b"pw" not in open(f"/proc/{child.proc.pid}/cmdline", "rb").read()


def test_resp_starts_after_the_log_actor(supervised_resp):
    actor, _, tmp = supervised_resp
    _all_ready(tmp, ("front", "resp", "log", "closer"))
    assert list(actor.children) == ["closer", "log", "front", "resp"]
    assert actor.children["log"].started < actor.children["resp"].started


def test_a_killed_resp_actor_is_restarted_with_its_password(supervised_resp):
    actor, rt, tmp = supervised_resp
    _all_ready(tmp, ("resp",))
    first = actor.children["resp"].proc.pid
    (tmp / "resp.env").unlink()
    os.kill(first, signal.SIGKILL)
    _turn_until(rt, lambda: (tmp / "resp.env").exists(), "a new resp actor")
    assert actor.children["resp"].proc.pid != first
    assert (tmp / "resp.env").read_text() == "pw"
    assert not rt.stop_requested


def test_a_resp_bind_failure_stops_the_node(supervised_resp):
    actor, rt, tmp = supervised_resp
    (tmp / "resp.exit").write_text(str(exitcodes.BIND))
    os.kill(actor.children["resp"].proc.pid, signal.SIGKILL)  # its restart exits 5 at once
    _turn_until(rt, lambda: rt.stop_requested, "the node to stop")
    assert actor.on_stop() == exitcodes.BIND


def test_shutdown_stops_both_fronts_then_log_then_closer(supervised_resp):
    actor, rt, tmp = supervised_resp
    _all_ready(tmp, ("front", "resp", "log", "closer"))
    rt.request_stop()
    assert actor.finished()
    assert actor.on_stop() == exitcodes.OK
    stopped = (tmp / "stopped").read_text().split()
    assert sorted(stopped[:2]) == ["front", "resp"] and stopped[2:] == ["log", "closer"]
