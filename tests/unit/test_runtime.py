"""The actor runtime, driven in process: hooks, sources, ticks, busy turns and stop."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

from aofnode.runtime.actor import Actor, Runtime


class Recorder(Actor):
    tick_interval = 1.0

    def __init__(self) -> None:
        self.events: list = []
        self.work = 0

    def on_start(self, runtime):
        self.events.append("start")

    def on_tick(self, now):
        self.events.append(("tick", now))

    def on_turn(self):
        if self.work:
            self.work -= 1
            self.events.append("work")

    @property
    def busy(self):
        return self.work > 0

    def on_stop_requested(self):
        self.events.append("stop_requested")

    def on_stop(self):
        self.events.append("stop")
        return 7


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_start_runs_once_and_ticks_follow_the_clock():
    clock = Clock(100.0)
    actor = Recorder()
    rt = Runtime(actor, clock=clock)
    rt.run_once(timeout=0)
    rt.run_once(timeout=0)
    assert actor.events == ["start"]
    clock.now += 1.0
    rt.run_once(timeout=0)
    assert actor.events == ["start", ("tick", 101.0)]


def test_readable_source_calls_its_handler_and_unwatch_stops_it():
    a, b = socket.socketpair()
    got = []
    rt = Runtime(Recorder())
    rt.watch(a.fileno(), lambda: got.append(a.recv(100)))
    b.send(b"hello")
    rt.run_once(timeout=1.0)
    assert got == [b"hello"]
    rt.unwatch(a.fileno())
    b.send(b"again")
    rt.run_once(timeout=0)
    assert got == [b"hello"]
    assert not rt.watching(a.fileno())


def test_want_write_turns_pollout_on_and_off():
    a, _b = socket.socketpair()
    writable = []
    rt = Runtime(Recorder())
    rt.watch(a.fileno(), lambda: None, lambda: writable.append(1))
    rt.run_once(timeout=0)
    assert writable == []
    rt.want_write(a.fileno(), True)
    rt.run_once(timeout=0)
    assert writable == [1]
    rt.want_write(a.fileno(), False)
    rt.run_once(timeout=0)
    assert writable == [1]


def _zmq_pair(ctx, name: str):
    """inproc: a send is in the reader's pipe when it returns, so a test knows what is queued."""
    import zmq
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    pull.bind(f"inproc://{name}")
    push.connect(f"inproc://{name}")
    return pull, push


def test_a_zmq_message_left_queued_by_a_handler_is_read_the_next_turn_without_a_wait():
    # ZMQ_FD only signals a change, and the receive that took the first message also took the
    # signal of the second: only ZMQ_EVENTS, read before the wait, knows the second is there.
    import zmq
    ctx = zmq.Context()
    pull, push = _zmq_pair(ctx, "queued")
    got = []
    rt = Runtime(Recorder())
    rt.watch(pull, lambda: got.append(pull.recv(zmq.NOBLOCK)))  # one message per turn
    push.send(b"one")
    push.send(b"two")
    rt.run_once(timeout=5.0)
    assert got == [b"one"]
    rt.run_once(timeout=5.0)  # would time out with nothing read if the queued one went unseen
    assert got == [b"one", b"two"]
    push.close(0)
    pull.close(0)
    ctx.term()


def test_a_draining_zmq_socket_is_woken_by_its_descriptor():
    import zmq
    ctx = zmq.Context()
    pull, push = _zmq_pair(ctx, "drains")
    got = []

    def drain():
        while True:
            try:
                got.append(pull.recv(zmq.NOBLOCK))
            except zmq.Again:
                return

    rt = Runtime(Recorder())
    push.send(b"before")  # queued before the watch: the first turn still looks
    rt.watch(pull, drain, drains=True)
    rt.run_once(timeout=5.0)
    assert got == [b"before"]
    for body in (b"a", b"b"):
        push.send(body)
        rt.run_once(timeout=5.0)
        assert got[-1] == body
    assert got == [b"before", b"a", b"b"]
    push.close(0)
    pull.close(0)
    ctx.term()


def test_busy_actor_is_polled_without_waiting():
    actor = Recorder()
    actor.work = 3
    rt = Runtime(actor)
    for _ in range(3):
        rt.run_once(timeout=30.0)  # would hang 30 s if the busy flag were ignored
    assert actor.events.count("work") == 3


def test_request_stop_calls_the_hook_once():
    actor = Recorder()
    rt = Runtime(actor)
    rt.request_stop()
    rt.request_stop()
    assert actor.events.count("stop_requested") == 1


def test_a_handler_may_unwatch_another_ready_source_in_the_same_turn():
    a1, b1 = socket.socketpair()
    a2, b2 = socket.socketpair()
    rt = Runtime(Recorder())
    calls = []

    def first():
        calls.append("first")
        rt.unwatch(a2.fileno())

    def second():
        calls.append("second")

    rt.watch(a1.fileno(), first)
    rt.watch(a2.fileno(), second)
    b1.send(b"x")
    b2.send(b"y")
    rt.run_once(timeout=1.0)
    assert calls in (["first"], ["second", "first"])  # never "second" after its unwatch


def test_sigterm_stops_a_waiting_process_at_once(tmp_path):
    """A real process blocked in a poll with no timeout ends on SIGTERM through on_stop."""
    script = textwrap.dedent("""
        import sys
        from aofnode.runtime.actor import Actor, Runtime
        class Idle(Actor):
            def on_start(self, rt):
                print("started", flush=True)
            def on_stop(self):
                print("stopped", flush=True)
                return 3
        sys.exit(Runtime(Idle()).run())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=os.getcwd())
    try:
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 3
        assert proc.stdout.read().strip() == "stopped"
    finally:
        proc.kill()
        proc.wait()


def test_an_idle_actor_turns_once_per_tick_not_in_a_spin_before_it():
    """ZeroMQ's poll takes whole milliseconds: a wait under 1 ms used to become 0, so every idle
    actor spun through the last millisecond before each tick (an idle node's supervisor made
    ~480 polls a second for its 20 ticks, 12 ms of CPU a second)."""
    class Ticker(Actor):
        tick_interval = 0.02

        def __init__(self) -> None:
            self.ticks = 0

        def on_tick(self, now: float) -> None:
            self.ticks += 1

    actor = Ticker()
    runtime = Runtime(actor)
    quiet, other_end = os.pipe()  # a source that never becomes ready, as every real actor has
    runtime.watch(quiet, lambda: None)
    try:
        while actor.ticks < 10:
            runtime.run_once()
    finally:
        os.close(quiet)
        os.close(other_end)
    # One turn per tick, plus at most one early return each (a wake-up a hair before the tick).
    assert runtime.turns <= 2 * actor.ticks + 1, (runtime.turns, actor.ticks)
