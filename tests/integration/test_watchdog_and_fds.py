"""Findings 8 and 9 of the limits issue: a hung log actor is seen, and running out of
descriptors is logged instead of clients hanging silently."""
from __future__ import annotations

import os
import resource
import signal

import zmq

from tests.nodeproc import wait_for


def test_a_stopped_log_actor_is_reported(make_node):
    node = make_node("always", extra=("--watchdog-timeout", "1")).start()
    log_pid = node.actor_pids()["log"]
    os.kill(log_pid, signal.SIGSTOP)
    try:
        [event] = wait_for(lambda: node.events("actor_hung"), timeout=10, what="actor_hung")
        assert event["child_pid"] == log_pid and event["process_state"] == "T"
        assert event["stalled_s"] >= 1 and event["killing"] is False
    finally:
        os.kill(log_pid, signal.SIGCONT)
    with node.client() as c:
        assert c.execute("SET", "k", "v") == "OK"
    assert node.actor_pids()["log"] == log_pid  # reported, not killed


def test_watchdog_kill_restarts_a_hung_log_actor_and_loses_nothing(make_node):
    node = make_node("always", extra=("--watchdog-timeout", "1", "--watchdog-kill")).start()
    with node.client() as c:
        for i in range(20):
            assert c.execute("SET", f"k{i}", f"v{i}") == "OK"
    log_pid = node.actor_pids()["log"]
    os.kill(log_pid, signal.SIGSTOP)
    wait_for(lambda: node.actor_pids()["log"] != log_pid, timeout=15, what="a new log actor")
    assert node.events("actor_hung")[0]["killing"] is True
    node.wait_ready()
    with node.client(timeout=10) as c:
        assert [c.execute("GET", f"k{i}") for i in range(20)] == [f"v{i}".encode() for i in range(20)]


def test_the_descriptor_limit_is_raised_and_shown(make_node):
    node = make_node("everysec").start()
    [event] = node.events("fd_limit")
    assert event["soft"] == resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # raised to the hard limit
    wait_for(lambda: node.info("clients")["maxclients"] == event["soft"] - 64, timeout=5,
             what="maxclients in INFO (sent with the front's stats, once a second)")


def test_accepts_failing_for_lack_of_descriptors_are_logged(make_node):
    node = make_node("everysec").start()
    front = node.actor_pids()["front"]
    used = len(os.listdir(f"/proc/{front}/fd"))
    soft, hard = resource.prlimit(front, resource.RLIMIT_NOFILE)
    resource.prlimit(front, resource.RLIMIT_NOFILE, (used + 5, hard))
    ctx = zmq.Context()
    socks = []
    try:
        for _ in range(20):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(node.endpoint)
            socks.append(s)
        [event, *_] = wait_for(lambda: node.events("client_accept_failed"), timeout=10, what="client_accept_failed")
        assert event["error"] == os.strerror(event["errno"]) and event["accept_failures"] >= 1
    finally:
        for s in socks:
            s.close()
        ctx.term()
    resource.prlimit(front, resource.RLIMIT_NOFILE, (soft, hard))
    with node.client() as c:
        assert c.execute("PING") == "PONG"
