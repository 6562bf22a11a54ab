"""LogLink, a front's end of its link to the log actor, in process: a minimal actor owns it, the
test plays the log actor over the real private socket and channel (node/fronts/log_link.py)."""
from __future__ import annotations

import collections
import os

import pytest
import structlog

from aofnode.runtime import channel
from aofnode.runtime import messages as m
from aofnode.fronts.log_link import MAX_IN_FLIGHT, LogLink
from aofnode.runtime.actor import Actor, Runtime
from tests.nodeproc import wait_for


class _Front(Actor):
    """Records what the link hands back; flushes once a turn, as both fronts do."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.stats = collections.Counter()
        self.replies: list = []  # (token, reply) in the order they came
        self.lost: list = []  # (reason, in_flight tokens, unsent tokens)
        self.link = LogLink(os.path.join(data_dir, "run", "test.sock"), "test", structlog.get_logger(),
                            self.stats, self._on_replies, lambda *args: self.lost.append(args))

    def _on_replies(self, tokens, replies):
        self.replies += [(t, r) for t, r in zip(tokens, replies) if t is not None]

    def on_start(self, runtime):
        self.link.start(runtime, self.data_dir)

    def on_turn(self):
        self.link.flush()


@pytest.fixture
def front(tmp_path):
    actor = _Front(str(tmp_path))
    rt = Runtime(actor)
    rt.start()
    yield actor, rt
    actor.link.close()


def _hello(actor, rt, pid=99):
    ch = channel.connect(actor.link.path)
    ch.send(m.Hello(pid))
    wait_for(lambda: rt.run_once(timeout=0.01) or actor.link.ready, timeout=5, what="ready")
    return ch


def _batches(rt, ch, n=1):
    got = []
    wait_for(lambda: rt.run_once(timeout=0.01) or got.extend(x for x in ch.receive() if type(x) is m.Batch)
             or len(got) >= n, timeout=5, what=f"{n} batches")
    return got


def test_a_first_message_that_is_not_hello_closes_the_connection(front):
    actor, rt = front
    ch = channel.connect(actor.link.path)
    ch.send(m.Stats({}))

    def closed():
        rt.run_once(timeout=0.01)
        ch.receive()
        return ch.closed
    wait_for(closed, timeout=5, what="the connection closed")
    assert not actor.link.ready and actor.link.pending == []


def test_batches_are_numbered_gated_and_replies_routed_by_number(front):
    actor, rt = front
    ch = _hello(actor, rt)
    for i in range(3):
        actor.link.queue(f"t{i}", 7, b"body%d" % i)
    [first] = _batches(rt, ch)
    assert (first.first_seq, first.clients, first.bodies) == (1, [7, 7, 7], [b"body0", b"body1", b"body2"])
    # Up to MAX_IN_FLIGHT batches the log actor has not taken; the next waits for a Replies.
    for i in range(3, 3 + MAX_IN_FLIGHT):
        actor.link.queue(f"t{i}", 8, b"body%d" % i)
        rt.run_once(timeout=0.01)
    got = _batches(rt, ch, MAX_IN_FLIGHT - 1)
    assert [b.first_seq for b in got] == list(range(4, 3 + MAX_IN_FLIGHT))
    for _ in range(5):
        rt.run_once(timeout=0.01)
    assert ch.receive() == [] and actor.link.unsent == [f"t{2 + MAX_IN_FLIGHT}"]
    assert actor.stats["batches"] == MAX_IN_FLIGHT
    # Replies in any order, by number; an unknown number is handed back as None (dropped here).
    ch.send(m.Replies(1, [3, 1, 999], [b"r3", b"r1", b"r999"]))
    [late] = _batches(rt, ch)
    assert late.first_seq == 3 + MAX_IN_FLIGHT and actor.link.untaken == MAX_IN_FLIGHT
    assert actor.replies == [("t2", b"r3"), ("t0", b"r1")]
    assert sorted(actor.link.in_flight) == [2, *range(4, 4 + MAX_IN_FLIGHT)]


def test_a_dead_log_actor_hands_back_in_flight_and_unsent(front):
    actor, rt = front
    ch = _hello(actor, rt)
    for i in range(MAX_IN_FLIGHT):
        actor.link.queue(f"t{i}", 1, b"x")
        _batches(rt, ch)
    actor.link.queue(f"t{MAX_IN_FLIGHT}", 1, b"x")  # held back by the gate
    rt.run_once(timeout=0.01)
    ch.close()
    wait_for(lambda: rt.run_once(timeout=0.01) or actor.lost, timeout=5, what="the loss")
    [(reason, in_flight, unsent)] = actor.lost
    assert reason == "log actor died"
    assert sorted(in_flight) == [f"t{i}" for i in range(MAX_IN_FLIGHT)] and unsent == [f"t{MAX_IN_FLIGHT}"]
    assert not actor.link.ready and actor.link.idle and actor.link.untaken == 0
    actor.link.send_stats(lambda: pytest.fail("no Stats without a log actor"))


def test_a_second_hello_replaces_the_first(front):
    actor, rt = front
    old = _hello(actor, rt, pid=1)
    actor.link.queue("t", 1, b"x")
    _batches(rt, old)
    new = channel.connect(actor.link.path)
    new.send(m.Hello(2))
    wait_for(lambda: rt.run_once(timeout=0.01) or actor.lost, timeout=5, what="the replacement")
    assert actor.lost == [("log actor replaced", ["t"], [])]
    assert actor.link.ready and actor.link.log_pid == 2
    actor.link.queue("u", 1, b"y")
    [batch] = _batches(rt, new)
    assert batch.first_seq == 2  # numbers go on: a late reply to 1 cannot reach "u"


def test_dropping_a_clients_messages_and_forget(front):
    actor, rt = front
    ch = _hello(actor, rt)
    actor.link.queue(("a", 1), 1, b"a1")
    actor.link.queue(("b", 1), 2, b"b1")
    _batches(rt, ch)
    actor.link.untaken = MAX_IN_FLIGHT  # hold the next ones back
    actor.link.queue(("a", 2), 1, b"a2")
    actor.link.queue(("b", 2), 2, b"b2")
    assert actor.link.drop_unsent(lambda t: t[0] == "a") == 1
    assert actor.link.drop_in_flight(lambda t: t[0] == "a") == 1
    actor.link.send_forget(1)
    actor.link.untaken = 0
    got = []
    wait_for(lambda: rt.run_once(timeout=0.01) or got.extend(ch.receive()) or len(got) >= 2, timeout=5,
             what="Forget and a batch")
    assert got[0] == m.Forget(1)
    assert (got[1].clients, got[1].bodies) == ([2], [b"b2"]) and actor.link.unsent == []
    assert list(actor.link.in_flight.values()) == [("b", 1), ("b", 2)]
