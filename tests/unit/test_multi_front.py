"""The log actor with two fronts (issue 12): the test plays the ZeroMQ front and the RESP front
on their real private sockets (backend.sock and resp.sock) and drives the log actor turn by
turn. Real files, a real fsync; the closer is the inline stand-in."""
from __future__ import annotations

import os

import msgpack
import pytest
import structlog

from aofnode.runtime import channel
from aofnode.runtime import messages as m
from aofnode.runtime import private_sockets
from aofnode.log.closer_client import InlineCloser
from aofnode.log.actor import LogActor
from aofnode.runtime.actor import Runtime
from aofnode.log.work import CLIENT_MASK, WorkQueue, owner_base
from aofnode.config import Config
from aofnode import protocol
from tests.nodeproc import wait_for


def _accept(listener):
    try:
        return listener.accept()[0]
    except BlockingIOError:
        return None


class Fronts:
    """Two fronts: ``fronts[0]`` at backend.sock, ``fronts[1]`` at resp.sock."""

    def __init__(self, tmp_path, **settings):
        self.config = Config(dir=str(tmp_path / "data"), appendfsync="always", resp_bind="127.0.0.1:6380",
                             **settings)
        os.makedirs(self.config.dir, mode=0o700)
        private_sockets.prepare_run_dir(self.config.dir)
        assert self.config.front_paths == (self.config.backend_path, self.config.resp_backend_path)
        self.listeners = [private_sockets.listen(p) for p in self.config.front_paths]
        log = structlog.get_logger()
        self.actor = LogActor(self.config, log, closer=InlineCloser(log))
        self.rt = Runtime(self.actor)
        self.rt.start()
        self.fronts: list[channel.Channel | None] = [None, None]
        self.inbox: list[list] = [[], []]  # what each front received and no test took yet
        for i in (0, 1):
            self.reconnect(i)

    def reconnect(self, i: int) -> None:
        """Front ``i`` (re)starts: accept the log actor's connection, expect Hello first."""
        sock = wait_for(lambda: self.turn() or _accept(self.listeners[i]), timeout=5,
                        what=f"the log actor's connect to front {i}")
        self.fronts[i] = channel.Channel(sock)
        self.inbox[i] = []
        hello = wait_for(lambda: self.turn() or self.inbox[i], timeout=5, what="Hello")[0]
        assert hello == m.Hello(os.getpid())
        self.inbox[i].pop(0)

    def turn(self) -> None:
        for front in self.fronts:
            if front is not None and not front.closed:
                front.flush()
        self.rt.run_once(timeout=0.01)
        for i, front in enumerate(self.fronts):
            if front is not None and not front.closed:
                self.inbox[i].extend(front.receive())

    def replies(self, i: int) -> dict[int, object]:
        """Seq -> decoded reply of every reply front ``i`` got so far (kept in the inbox)."""
        return {s: msgpack.unpackb(r, raw=False)
                for msg in self.inbox[i] if type(msg) is m.Replies for s, r in zip(msg.seqs, msg.replies)}

    def wait_replies(self, i: int, seqs) -> dict[int, object]:
        return wait_for(lambda: self.turn() or (set(seqs) <= set(self.replies(i)) and self.replies(i)),
                        timeout=20, what=f"replies {sorted(seqs)} on front {i}")

    def taken(self, i: int) -> int:
        return sum(msg.taken for msg in self.inbox[i] if type(msg) is m.Replies)

    def send(self, i: int, first_seq: int, clients_and_bodies) -> None:
        self.fronts[i].send(m.Batch(first_seq, [c for c, _ in clients_and_bodies],
                                    [b for _, b in clients_and_bodies]))

    def call(self, i: int, seq: int, *request, client: int = 1):
        self.send(i, seq, [(client, protocol.encode_request(*request))])
        return self.wait_replies(i, [seq])[seq]

    def close(self) -> None:
        if self.actor.writer.fd >= 0:
            self.actor.on_stop()
        for front in self.fronts:
            if front is not None:
                front.close()
        for listener in self.listeners:
            listener.close()


@pytest.fixture
def two(tmp_path):
    h = Fronts(tmp_path)
    yield h
    h.close()


def test_without_resp_bind_there_is_one_front():
    assert Config(dir="d").front_paths == (Config(dir="d").backend_path,)
    assert Config(dir="d", resp_bind="127.0.0.1:6380").resp_backend_path.endswith("/run/resp.sock")


def test_batches_from_both_fronts_run_and_replies_go_back_where_they_came_from(two):
    assert two.call(0, 1, "SET", "k", "zmq") == [0, "OK"]
    assert two.call(1, 1, "GET", "k") == [0, b"zmq"]  # the same keyspace, the same seq 1
    assert two.call(1, 2, "SET", "k", "resp") == [0, "OK"]
    assert two.call(0, 2, "GET", "k") == [0, b"resp"]
    # Each front got exactly its own replies, and was told of exactly its own batches.
    assert set(two.replies(0)) == {1, 2} and set(two.replies(1)) == {1, 2}
    assert two.taken(0) == 2 and two.taken(1) == 2


def test_identical_client_keys_on_both_fronts_do_not_mix(two):
    """Each front numbers its clients from 1: client 1 of one front is not client 1 of the
    other, so neither FIFO order nor replies may cross."""
    big = protocol.encode_batch([("APPEND", b"a", b"x")] * 3000)  # several cycles of front 0's client 1
    two.send(0, 10, [(1, big), (1, protocol.encode_request("GET", b"a"))])
    two.send(1, 10, [(1, protocol.encode_request("SET", b"b", b"1")), (1, protocol.encode_request("GET", b"b"))])
    r1 = two.wait_replies(1, [10, 11])
    r0 = two.wait_replies(0, [10, 11])
    assert r1[10] == [0, "OK"] and r1[11] == [0, b"1"]
    assert len(r0[10]) == 3000 and r0[11] == [0, b"x" * 3000]
    # Front 1's short messages were not queued behind front 0's long one (same key, other FIFO).
    arrival = [s for msg in two.inbox[1] if type(msg) is m.Replies for s in msg.seqs]
    assert arrival == [10, 11]
    assert not [msg for msg in two.inbox[0] if type(msg) is m.Replies and set(msg.seqs) - {10, 11}]


def test_a_forget_from_one_front_leaves_the_others_client_alone(two):
    two.actor.config = _with(two.config, cycle_max_commands=1000)
    body = protocol.encode_batch([("INCR", b"n")] * 10_000)
    two.send(0, 1, [(7, body)])
    two.send(1, 1, [(7, body)])
    wait_for(lambda: two.turn() or (two.taken(0) and two.taken(1)), timeout=5, what="both batches taken")
    two.fronts[0].send(m.Forget(7))  # front 0 cut its client 7 off
    replies = two.wait_replies(1, [1])
    assert len(replies[1]) == 10_000  # front 1's client 7 ran to its end
    for _ in range(5):
        two.turn()
    assert 1 not in two.replies(0)
    assert two.actor.stats["forgotten_messages"] == 1
    assert 10_000 <= int(two.call(1, 2, "GET", "n")[1]) < 20_000


def test_one_fronts_back_pressure_does_not_stop_the_other(tmp_path):
    """Front 0 stops reading: past channel_output_limit the log actor parks front 0's clients,
    and front 1's keep being served."""
    h = Fronts(tmp_path, channel_output_limit=256 << 10)
    try:
        h.call(0, 1, "SET", "big", b"v" * (64 << 10))
        gets = [(c, protocol.encode_request("GET", b"big")) for c in range(1, 101)]  # 6.4 MB of replies
        h.send(0, 2, gets)
        stalled = h.fronts[0]
        h.fronts[0] = None  # the test stops reading front 0 (its socket stays open)
        wait_for(lambda: h.turn() or h.actor.fronts.backpressure_pauses, timeout=10, what="back-pressure on front 0")
        assert h.call(1, 1, "PING") == [0, "PONG"]
        assert h.call(1, 2, "INCR", "n") == [0, 1]
        # Front 0 took only part of its replies: it is still parked, not starved forever.
        assert h.actor.work.messages > 0
        h.fronts[0] = stalled  # it reads again: the rest arrives
        h.wait_replies(0, range(2, 102))
        assert all(r == [0, b"v" * (64 << 10)] for s, r in h.replies(0).items() if s >= 2)
    finally:
        h.close()


def test_a_front_that_dies_with_queued_work_gets_nothing_replayed_to_its_successor(two):
    """A new front numbers its messages from 1 again: a reply made for the old front's message
    seq 5 would go to whichever new client sent the new seq 5. The dead front's queued messages
    are dropped (counted), and none of their replies reach the new connection."""
    two.actor.config = _with(two.config, cycle_max_commands=100)
    big = protocol.encode_batch([("INCR", b"n")] * 10_000)  # 100 cycles
    two.send(0, 1, [(1, big)] + [(c, protocol.encode_request("INCR", b"m")) for c in range(2, 10)])
    wait_for(lambda: two.turn() or two.taken(0), timeout=5, what="the batch taken")
    two.fronts[0].close()  # the front dies (EOF) with its work queued
    two.fronts[0] = None
    assert [link.conn for link in two.actor.fronts.links] == [0, 1]
    two.reconnect(0)  # and a new one starts (the log actor reconnects from its tick)
    assert [link.conn for link in two.actor.fronts.links] == [2, 1]  # a new generation, its own keys
    wait_for(lambda: two.turn() or not (two.actor.work or two.actor.busy), timeout=10, what="the log actor idle")
    assert two.inbox[0] == [], "a reply or a taken count of the dead front reached its successor"
    assert two.actor.stats["dropped_messages_front_gone"] >= 1
    assert two.actor.work.messages == 0
    # The successor's own seq 1 gets its own reply; n stopped where the dead front's work stopped.
    n = two.call(0, 1, "GET", "n")[1]
    assert n is None or int(n) < 10_000


def test_a_front_gone_leaves_the_other_working_and_its_stats_leave_info(two):
    # The RESP front's counters come resp_-prefixed; an unprefixed one cannot replace a field.
    two.fronts[1].send(m.Stats({"resp_connected_clients": 4, "connected_clients": 99}))
    two.fronts[0].send(m.Stats({"connected_clients": 3}))
    wait_for(lambda: two.turn() or all(two.actor.fronts.counters()), timeout=5, what="both stats")
    info = two.call(0, 1, "INFO", "clients")[1]["clients"]
    assert info["connected_clients"] == 7 and info["resp_connected_clients"] == 4
    two.fronts[1].close()
    two.fronts[1] = None
    wait_for(lambda: two.turn() or not two.actor.fronts.counters()[1], timeout=5, what="the resp front's loss")
    info = two.call(0, 2, "INFO")[1]
    assert info["clients"]["connected_clients"] == 3 and "resp_connected_clients" not in info["clients"]
    assert info["server"]["resp_bind"] == "127.0.0.1:6380"


def test_info_server_shows_resp_bind_and_never_the_password(tmp_path):
    secret = tmp_path / "pass"
    secret.write_text("s3cret-pw\n")
    secret.chmod(0o600)
    h = Fronts(tmp_path, requirepass_file=str(secret))
    try:
        h.fronts[1].send(m.Stats({"resp_requirepass": 1}))
        wait_for(lambda: h.turn() or h.actor.fronts.counters()[1], timeout=5, what="the resp front's stats")
        server = h.call(0, 1, "INFO", "server")[1]["server"]
        assert server["resp_bind"] == "127.0.0.1:6380" and server["resp_requirepass"] == 1
        assert "s3cret" not in repr(h.call(0, 2, "INFO", "everything")[1])
    finally:
        h.close()


def _with(config: Config, **changes) -> Config:
    return Config(**{**{f: getattr(config, f) for f in config.__dataclass_fields__}, **changes})


def test_info_says_whether_resp_clients_must_auth(two):
    assert two.call(0, 1, "INFO", "server")[1]["server"]["resp_requirepass"] == 0
    two.fronts[1].send(m.Stats({"resp_requirepass": 1}))  # the resp actor read a --requirepass
    wait_for(lambda: two.turn() or two.actor.fronts.counters()[1], timeout=5, what="the resp front's stats")
    info = two.call(0, 2, "INFO")[1]
    assert info["server"]["resp_requirepass"] == 1 and "resp_requirepass" not in info["clients"]


def test_the_work_queue_keeps_owners_apart_parks_and_drops_them():
    """node/log/work.py alone: the same client number from two owners, an out-of-range
    number folded into its own owner, parking with work arriving and a Forget meanwhile."""
    work = WorkQueue()
    a, b = owner_base(0), owner_base(1)
    work.add(m.Batch(1, [1, 2, 1], [b"a1", b"a2", b"a3"]), a)
    work.add(m.Batch(1, [1, CLIENT_MASK + 3], [b"b1", b"b2"]), b)
    assert sorted(work.fifos) == [1, 2, b | 1, b | 2]  # 2^48 + 2 from owner 1 is its client 2
    assert [p.body for p in work.fifos[1]] == [b"a1", b"a3"] and work.messages == 5
    work.park(a)
    assert list(work.turns) == [b | 1, b | 2]
    work.add(m.Batch(4, [3], [b"a4"]), a)  # arrives while parked: stays out of turn
    assert list(work.turns) == [b | 1, b | 2] and work.parked[a] == [1, 2, 3]
    assert work.forget(2) == 1 and work.parked[a] == [1, 3]
    work.unpark(a)
    assert list(work.turns) == [b | 1, b | 2, 1, 3]
    assert work.drop_owner(a) == 3  # a1, a3, a4
    assert list(work.turns) == [b | 1, b | 2] and sorted(work.fifos) == [b | 1, b | 2]
    assert work.messages == 2 and work.drop_owner(a) == 0
