"""Blocking pops in the log actor, in process: the test plays a front with several clients on
the real channel and drives the runtime turn by turn; timeouts on a fake clock."""
from __future__ import annotations

import os

import msgpack
import pytest
import structlog

from aofnode import protocol
from aofnode.aof import format as aof_format
from aofnode.log.blocking import MAX_BLOCKED_CLIENTS
from aofnode.runtime import messages as m
from aofnode.store.blocking import parse_timeout
from aofnode.store.executor import Executor
from tests.nodeproc import wait_for
from tests.unit.test_log_actor import Harness


class FakeSeconds:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Front:
    """Several clients of one front: send messages, collect replies by message number."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.seq = 1000
        self.got: dict[int, object] = {}
        self.taken = 0  # batches the log actor said it took
        self.clock = harness.actor.blocking.clock = FakeSeconds()

    def send(self, client: int, *requests, db: int = 0) -> int:
        body = (protocol.encode_batch(list(requests), db=db) if len(requests) > 1
                else protocol.encode_request(*requests[0], db=db))
        self.seq += 1
        self.h.front.send(m.Batch(self.seq, [client], [body]))
        return self.seq

    def pump(self, turns: int = 3) -> None:
        for _ in range(turns):
            self.h.front.flush()
            self.h.rt.run_once(timeout=0.01)
            for msg in self.h.front.receive():
                if type(msg) is m.Replies:
                    self.taken += msg.taken
                    for seq, reply in zip(msg.seqs, msg.replies):
                        self.got[seq] = msgpack.unpackb(reply, raw=False)

    def wait(self, seq: int):
        wait_for(lambda: self.pump(1) or seq in self.got, timeout=5, what=f"reply {seq}")
        return self.got.pop(seq)

    def call(self, client: int, *requests, db: int = 0):
        return self.wait(self.send(client, *requests, db=db))

    def still_waiting(self, *seqs: int) -> bool:
        self.pump(5)
        return not any(seq in self.got for seq in seqs)


@pytest.fixture
def front(tmp_path):
    h = Harness(tmp_path)
    yield Front(h)
    if h.actor.writer.fd >= 0:
        h.stop()


def test_a_blocked_client_is_served_by_another_clients_push(front):
    waiting = front.send(1, ("BLPOP", "q", "0"))
    assert front.still_waiting(waiting)
    assert front.call(2, ("PING",)) == [0, "PONG"]  # nobody else waits
    assert front.call(2, ("RPUSH", "q", "a", "b")) == [0, 2]
    assert front.wait(waiting) == [0, [b"q", b"a"]]
    assert front.call(2, ("LRANGE", "q", "0", "-1")) == [0, [b"b"]]
    assert front.h.actor.blocking.info()["clients"]["blocked_clients"] == 0


def test_waiters_are_served_first_blocked_first_served(front):
    seqs = [front.send(client, ("BRPOP", "q", "0")) for client in (5, 3, 9)]
    assert front.still_waiting(*seqs)
    assert front.call(1, ("LPUSH", "q", "x", "y")) == [0, 2]
    assert front.wait(seqs[0]) == [0, [b"q", b"x"]]  # BRPOP takes from the tail: x was first
    assert front.wait(seqs[1]) == [0, [b"q", b"y"]]
    assert front.still_waiting(seqs[2])
    assert front.call(1, ("RPUSH", "q", "z")) == [0, 1]
    assert front.wait(seqs[2]) == [0, [b"q", b"z"]]
    assert front.call(1, ("EXISTS", "q")) == [0, 0]


def test_served_at_the_end_of_the_push_before_the_pushers_next_command(front):
    waiting = front.send(2, ("BLPOP", "q", "0"))
    assert front.still_waiting(waiting)
    # As Redis: the waiter is served right after the LPUSH, so the LPOP that follows finds nothing.
    assert front.call(1, ("LPUSH", "q", "a"), ("LPOP", "q")) == [[0, 1], [0, None]]
    assert front.wait(waiting) == [0, [b"q", b"a"]]


def test_a_client_blocked_on_several_keys_is_served_by_the_first_ready(front):
    waiting = front.send(1, ("BLPOP", "a", "b", "0"))
    other = front.send(2, ("BLPOP", "a", "0"))
    assert front.still_waiting(waiting, other)
    front.call(3, ("RPUSH", "b", "1"))
    assert front.wait(waiting) == [0, [b"b", b"1"]]
    front.call(3, ("RPUSH", "a", "2"))
    assert front.wait(other) == [0, [b"a", b"2"]]
    assert front.h.actor.blocking.by_key == {}


def test_later_messages_of_a_blocked_client_wait_behind_it(front):
    waiting = front.send(1, ("BLPOP", "q", "0"), ("SET", "after", "1"))
    later = front.send(1, ("GET", "after"))
    assert front.still_waiting(waiting, later)
    assert front.call(2, ("GET", "after")) == [0, None]  # the rest of its pipeline did not run
    front.call(2, ("RPUSH", "q", "v"))
    assert front.wait(waiting) == [[0, [b"q", b"v"]], [0, "OK"]]
    assert front.wait(later) == [0, b"1"]


def test_batches_for_a_blocked_client_alone_are_still_taken(front):
    # A front sends at most MAX_IN_FLIGHT batches the log actor has not said it took: a batch
    # that only fed a blocked client's queue must be counted too, or that front stops.
    waiting = front.send(1, ("BLPOP", "q", "0"))
    assert front.still_waiting(waiting)
    taken = front.taken
    later = [front.send(1, ("PING",)) for _ in range(3)]
    assert front.still_waiting(waiting, *later)
    assert front.taken == taken + 3


def test_timeouts_answer_nil_and_zero_waits_forever(front):
    short = front.send(1, ("BLPOP", "q", "0.25"))
    longer = front.send(2, ("BZPOPMIN", "z", "1.5"))
    forever = front.send(3, ("BRPOP", "q", "0"))
    assert front.still_waiting(short, longer, forever)
    assert front.h.actor.max_wait == pytest.approx(0.25)
    front.clock.now += 0.249
    assert front.still_waiting(short)
    front.clock.now += 0.001
    assert front.wait(short) == [0, None]
    front.clock.now += 10_000
    assert front.wait(longer) == [0, None]
    assert front.still_waiting(forever)
    assert front.h.actor.max_wait is None
    front.call(4, ("RPUSH", "q", "v"))
    assert front.wait(forever) == [0, [b"q", b"v"]]
    stats = front.h.actor.blocking.info()["stats"]
    assert stats == {"blocking_pops_served": 1, "blocking_pops_timed_out": 2, "blocking_pops_unblocked": 0}


def test_a_forgotten_client_is_never_served(front):
    gone = front.send(1, ("BLPOP", "q", "0"))
    stays = front.send(2, ("BLPOP", "q", "0"))
    assert front.still_waiting(gone, stays)
    front.h.front.send(m.Forget(1))
    front.pump()
    assert front.h.actor.blocking.info()["clients"]["blocked_clients"] == 1
    assert front.call(3, ("RPUSH", "q", "v")) == [0, 1]
    assert front.wait(stays) == [0, [b"q", b"v"]]
    assert gone not in front.got
    assert front.call(3, ("LLEN", "q")) == [0, 0]


def test_a_lost_front_drops_its_waiters(front):
    h = front.h
    assert front.still_waiting(front.send(1, ("BLPOP", "q", "0")))
    h.front.close()  # the front died: the log actor reconnects from its tick
    wait_for(lambda: h.rt.run_once(timeout=0.01) or not h.actor.blocking.waiting, timeout=5,
             what="the waiters of the lost front dropped")
    assert h.actor.work.blocked == set() and h.actor.work.fifos == {}


def test_the_number_of_blocked_clients_is_bounded(front):
    blocking = front.h.actor.blocking
    assert blocking.limit == MAX_BLOCKED_CLIENTS
    blocking.limit = 2
    waiting = [front.send(c, ("BLPOP", f"q{c}", "0")) for c in (1, 2)]
    assert front.still_waiting(*waiting)
    refused = front.call(3, ("BLPOP", "q", "0"))
    assert refused[:2] == [1, "ERR"]
    assert "too many blocked clients (blocked_clients_limit 2)" in refused[2]
    assert front.call(3, ("RPUSH", "q", "v"), ("BLPOP", "q", "0")) == [[0, 1], [0, [b"q", b"v"]]]
    info = front.call(3, ("INFO", "clients"))[1]["clients"]
    assert info["blocked_clients"] == 2 and info["blocked_clients_limit"] == 2
    assert front.call(3, ("INFO", "stats"))[1]["stats"]["blocking_pops_served"] == 0
    front.call(3, ("RPUSH", "q1", "v"))
    assert front.wait(waiting[0]) == [0, [b"q1", b"v"]]
    assert front.still_waiting(front.send(3, ("BLPOP", "q", "0")))  # below the limit again


def test_served_pops_are_logged_as_their_non_blocking_effect(front, tmp_path):
    h = front.h
    lpop = front.send(1, ("BLPOP", "l", "0"))
    move = front.send(2, ("BLMOVE", "src", "dst", "RIGHT", "LEFT", "0"))
    mpop = front.send(3, ("BLMPOP", "0", "2", "x", "l2", "LEFT", "COUNT", "5"))
    zmin = front.send(4, ("BZPOPMAX", "z", "0"))
    zm = front.send(5, ("BZMPOP", "0", "1", "z2", "MIN", "COUNT", "2"))
    assert front.still_waiting(lpop, move, mpop, zmin, zm)
    front.call(9, ("RPUSH", "l", "a"), ("RPUSH", "src", "s1", "s2"), ("RPUSH", "l2", "1", "2"),
               ("ZADD", "z", "1", "m1", "2", "m2"), ("ZADD", "z2", "1", "n1", "2", "n2", "3", "n3"))
    assert front.wait(lpop) == [0, [b"l", b"a"]]
    assert front.wait(move) == [0, b"s2"]
    assert front.wait(mpop) == [0, [b"l2", [b"1", b"2"]]]
    assert front.wait(zmin) == [0, [b"z", b"m2", b"2"]]
    assert front.wait(zm) == [0, [b"z2", [[b"n1", b"1"], [b"n2", b"2"]]]]
    entries = []
    aof_format.load(h.config.aof_path, entries.extend, structlog.get_logger())
    pops = [e for e in entries if e[1] not in ("RPUSH", "ZADD")]
    assert pops == [[0, "LPOP", b"l", b"1"], [0, "LMOVE", b"src", b"dst", b"RIGHT", b"LEFT"],
                    [0, "LPOP", b"l2", b"2"], [0, "ZPOPMAX", b"z", b"1"], [0, "ZPOPMIN", b"z2", b"2"]]
    assert h.actor.writer.durable_size == os.path.getsize(h.config.aof_path)  # fsynced
    h.stop()
    h.start()  # the replay pops nothing twice
    front.clock = h.actor.blocking.clock = FakeSeconds()
    assert front.call(1, ("LRANGE", "dst", "0", "-1")) == [0, [b"s2"]]
    assert front.call(1, ("LRANGE", "src", "0", "-1")) == [0, [b"s1"]]
    assert front.call(1, ("ZRANGE", "z", "0", "-1")) == [0, [b"m1"]]
    assert front.call(1, ("ZRANGE", "z2", "0", "-1")) == [0, [b"n3"]]
    assert front.call(1, ("EXISTS", "l", "l2")) == [0, 0]


def test_a_served_blmove_push_serves_the_next_waiter(front):
    first = front.send(1, ("BLMOVE", "a", "b", "LEFT", "LEFT", "0"))
    second = front.send(2, ("BRPOP", "b", "0"))
    assert front.still_waiting(first, second)
    front.call(3, ("RPUSH", "a", "job"))
    assert front.wait(first) == [0, b"job"]
    assert front.wait(second) == [0, [b"b", b"job"]]


def test_other_kinds_and_creations_that_make_a_key_ready(front):
    zwait = front.send(1, ("BZPOPMIN", "k", "0"))
    lwait = front.send(2, ("BLPOP", "k", "0"))
    assert front.still_waiting(zwait, lwait)
    front.call(3, ("SET", "k", "string"))  # not a list: both keep waiting
    assert front.still_waiting(zwait, lwait)
    front.call(3, ("DEL", "k"), ("RPUSH", "tmp", "v"), ("RENAME", "tmp", "k"))
    assert front.wait(lwait) == [0, [b"k", b"v"]]  # the zset waiter was skipped, not served
    assert front.still_waiting(zwait)
    front.call(3, ("ZADD", "other", "5", "m"), ("MOVE", "other", "1"), db=0)
    front.call(3, ("SWAPDB", "0", "1"))
    front.call(3, ("RENAME", "other", "k"))
    assert front.wait(zwait) == [0, [b"k", b"m", b"5"]]


def test_errors_are_immediate(front):
    front.call(1, ("SET", "s", "v"))
    assert front.call(1, ("BLPOP", "nokey", "s", "0"))[:2] == [1, "WRONGTYPE"]
    assert front.call(1, ("BLPOP", "q", "-1"))[2] == "timeout is negative"
    assert front.call(1, ("BLPOP", "q", "x"))[2] == "timeout is not a float or out of range"
    assert front.call(1, ("BLMPOP", "x", "0", "q", "LEFT"))[2] == "numkeys should be greater than 0"
    assert front.call(1, ("BLMOVE", "a", "b", "UP", "LEFT", "0"))[2] == "syntax error"
    assert front.h.actor.blocking.waiting is False


def test_client_unblock_is_refused_on_the_zeromq_wire(front):
    """CLIENT is the RESP front's: only it may forward CLIENT UNBLOCK (protocol FRONT_COMMANDS),
    so a ZeroMQ client, which has no client id to give, cannot unblock anyone."""
    waiting = front.send(1, ("BLPOP", "q", "0"))
    assert front.still_waiting(waiting)
    assert front.call(2, ("CLIENT", "UNBLOCK", "1", "ERROR"))[:2] == [1, "UNKNOWNCMD"]
    batch = front.call(2, ("PING",), ("CLIENT", "UNBLOCK", "1"))  # in a batch too
    assert batch == [[0, "PONG"], [1, "UNKNOWNCMD", "unknown command 'CLIENT'"]]
    assert front.still_waiting(waiting)
    assert front.h.actor.blocking.unblocked == 0


@pytest.mark.parametrize("raw, ms", [
    (b"0", 0), (b"1", 1000), (b"0.0001", 1), (b"-0.0001", 0), (b"1.5e2", 150_000), (b"0x10", 16_000),
    (b"1e-400", 1), (b"-1", "timeout is negative"), (b"inf", "timeout is negative"),
    (b"1e20", "timeout is negative"), (b" 1", "timeout is not a float or out of range"),
    (b"nan", "timeout is not a float or out of range"), (b"1_0", "timeout is not a float or out of range"),
    (b"", "timeout is not a float or out of range"), (b"1e99999", "timeout is not a float or out of range"),
])
def test_timeouts_parse_as_redis(raw, ms):
    got = parse_timeout(raw)
    assert (got if type(got) is int else got.message) == ms


def test_a_bare_executor_never_blocks():
    ex = Executor()  # a replay, or MULTI later: nil, as a timeout
    assert ex.execute(0, "BLPOP", [b"q", b"0"]) is None
    assert ex.execute(0, "BZMPOP", [b"0", b"1", b"z", b"MIN"]) is None
    ex.execute(0, "RPUSH", [b"q", b"v"])
    assert ex.execute(0, "BRPOPLPUSH", [b"q", b"d", b"0"]) == b"v"


def test_many_waiters_on_one_key_are_served_in_order(front):
    n = 2000
    body = protocol.encode_request("BLPOP", "q", "0")
    front.h.front.send(m.Batch(5000, list(range(1, n + 1)), [body] * n))
    wait_for(lambda: front.pump(1) or len(front.h.actor.blocking.by_client) == n, 10,
             what="every client blocked")
    items = [b"job%d" % i for i in range(n)]
    assert front.call(n + 1, ("RPUSH", "q", *items)) == [0, n]
    wait_for(lambda: front.pump(1) or all(5000 + i in front.got for i in range(n)), 10,
             what="every waiter served")
    assert [front.got[5000 + i] for i in range(n)] == [[0, [b"q", item]] for item in items]
    assert front.h.actor.blocking.by_key == {} and front.h.actor.work.messages == 0


def test_a_served_pop_is_not_acknowledged_when_its_append_fails(front):
    writer = front.h.actor.writer
    waiting = front.send(1, ("BLPOP", "q", "0"))
    assert front.still_waiting(waiting)
    good_fd = writer.fd
    writer.fd = os.open("/dev/full", os.O_WRONLY)  # the cycle's append fails with ENOSPC
    try:
        assert front.call(2, ("RPUSH", "q", "v"))[:2] == [1, "MISCONF"]
        assert front.wait(waiting)[:2] == [1, "MISCONF"]  # its pop was in the same append
    finally:
        os.close(writer.fd)
        writer.fd = good_fd
