"""The log actor in process: the test plays the front on the real channel and drives the
runtime turn by turn. Real files, a real fsync; the closer is the inline stand-in."""
from __future__ import annotations

import os
import time

import msgpack
import pytest
import structlog

from aofnode.runtime import channel
from aofnode.runtime import messages as m
from aofnode.runtime import private_sockets
from aofnode.log.closer_client import InlineCloser
from aofnode.log.actor import LogActor
from aofnode.runtime.actor import Runtime
from aofnode.config import Config
from aofnode import protocol
from tests.nodeproc import wait_for


class Harness:
    def __init__(self, tmp_path, appendfsync="always"):
        self.config = Config(dir=str(tmp_path / "data"), appendfsync=appendfsync)
        os.makedirs(self.config.dir, mode=0o700)
        private_sockets.prepare_run_dir(self.config.dir)
        self.listener = private_sockets.listen(self.config.backend_path)
        self.start()

    def start(self):
        log = structlog.get_logger()
        self.actor = LogActor(self.config, log, closer=InlineCloser(log))
        self.rt = Runtime(self.actor)
        self.rt.start()
        sock, _ = wait_for(lambda: _accept(self.listener), timeout=5, what="the log actor's connect")
        self.front = channel.Channel(sock)
        [hello] = self._receive(lambda msgs: msgs)
        assert hello == m.Hello(os.getpid())
        self.next_id = 1

    def _receive(self, pick):
        got = []

        def ready():
            self.front.flush()  # a big batch does not fit the socket buffer at once
            self.rt.run_once(timeout=0.02)
            got.extend(self.front.receive())
            return pick(got)
        return wait_for(ready, timeout=5, what="messages from the log actor")

    def call(self, *requests, db=0):
        """One client message (a batch when several requests); returns its decoded reply."""
        body = (protocol.encode_batch(list(requests), db=db) if len(requests) > 1
                else protocol.encode_request(*requests[0], db=db))
        seq, self.next_id = self.next_id, self.next_id + 1
        self.front.send(m.Batch(seq, [1], [body]))
        [replies] = self._receive(lambda msgs: [x for x in msgs if type(x) is m.Replies and x.seqs])
        assert replies.seqs == [seq]
        return msgpack.unpackb(replies.replies[0], raw=False)

    def stop(self):
        code = self.actor.on_stop()
        self.front.close()
        return code


def _accept(listener):
    try:
        return listener.accept()
    except BlockingIOError:
        return None


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path)
    yield h
    if h.actor.writer.fd >= 0:
        h.stop()


def test_a_write_is_on_disk_before_its_reply(harness):
    assert harness.call(("SET", "k", "v")) == [0, "OK"]
    assert harness.actor.writer.durable_size == os.path.getsize(harness.config.aof_path)
    assert harness.call(("GET", "k")) == [0, b"v"]


def test_a_batch_is_one_reply_in_order(harness):
    reply = harness.call(("SET", "n", "1"), ("INCR", "n"), ("GET", "n"), ("HGET", "n", "f"))
    assert reply[:3] == [[0, "OK"], [0, 2], [0, b"2"]]
    assert reply[3][:2] == [1, "WRONGTYPE"]


def test_invalid_requests_are_answered_in_place(harness):
    # Decode once: the log actor validates the client's own bytes, invalid requests in place.
    body = msgpack.packb([{}, [["NOPE"], ["PING"], ["GET"]]])
    harness.front.send(m.Batch(99, [1], [body]))
    [replies] = harness._receive(lambda msgs: [x for x in msgs if type(x) is m.Replies])
    got = msgpack.unpackb(replies.replies[0], raw=False)
    assert [w[:2] for w in got] == [[1, "UNKNOWNCMD"], [0, "PONG"], [1, "ARITY"]]


def test_a_message_refused_as_a_whole_gets_one_error(harness):
    harness.front.send(m.Batch(98, [1], [msgpack.packb(["PING"])]))  # protocol 1: no header
    [replies] = harness._receive(lambda msgs: [x for x in msgs if type(x) is m.Replies])
    assert msgpack.unpackb(replies.replies[0], raw=False)[:2] == [1, "NOPROTO"]
    assert harness.actor.stats["rejected_messages"] == 1


def test_the_header_db_and_a_select_hold_for_their_message(harness):
    body = msgpack.packb([{"db": 4}, [["SET", "a", "1"], ["SELECT", "7"], ["SET", "b", "2"]]])
    harness.front.send(m.Batch(97, [1], [body]))
    harness._receive(lambda msgs: [x for x in msgs if type(x) is m.Replies])
    assert harness.call(("GET", "a"), db=4) == [0, b"1"]
    assert harness.call(("GET", "b"), db=7) == [0, b"2"]
    assert harness.call(("DBSIZE",)) == [0, 0]  # nothing in db 0: the next message is its own


def test_what_was_acknowledged_is_loaded_again(harness, tmp_path):
    for i in range(20):
        harness.call(("SET", f"k{i}", f"v{i}"), db=i % 16)
    assert harness.stop() == 0
    harness.start()
    assert harness.call(("GET", "k7"), db=7) == [0, b"v7"]
    assert harness.call(("DBSIZE",), db=3) == [0, 2]


def test_writes_get_misconf_while_the_aof_is_unwritable(harness):
    writer = harness.actor.writer
    good_fd = writer.fd
    writer.fd = os.open("/dev/full", os.O_WRONLY)  # every write fails with ENOSPC
    try:
        reply = harness.call(("SET", "k", "v"))
        assert reply[:2] == [1, "MISCONF"]
        assert harness.call(("GET", "k"))[0] == 0  # reads are served
        assert harness.call(("SET", "k2", "v"))[:2] == [1, "MISCONF"]
    finally:
        os.close(writer.fd)
        writer.fd = good_fd


def test_the_writes_of_a_cycle_whose_append_failed_are_refused_and_its_reads_answered(harness):
    """The cycle's MISCONF step: writes that ran but are not durable get MISCONF; reads and
    errors of the same message keep their results."""
    writer = harness.actor.writer
    good_fd = writer.fd
    writer.fd = os.open("/dev/full", os.O_WRONLY)  # the append fails; status is still "ok"
    try:
        reply = harness.call(("SET", "k", "v"), ("GET", "k"), ("INCR", "n"), ("HGET", "k", "f"))
    finally:
        os.close(writer.fd)
        writer.fd = good_fd
    assert [w[:2] for w in reply] == [[1, "MISCONF"], [0, b"v"], [1, "MISCONF"], [1, "WRONGTYPE"]]
    assert "No space left on device" in reply[0][2] and "not acknowledged" in reply[0][2]
    assert reply[0] == reply[2]
    assert harness.actor.stats["misconf_refusals"] == 0  # ran, then refused: not refused upfront


def test_while_the_aof_is_not_writable_a_cycle_refuses_writes_before_running_them(harness):
    writer = harness.actor.writer
    good_fd = writer.fd
    writer.fd = os.open("/dev/full", os.O_WRONLY)
    try:
        assert harness.actor._writes_refused() is None
        assert harness.call(("SET", "k", "1"))[:2] == [1, "MISCONF"]  # ran; its append failed
        refusal = harness.actor._writes_refused()
        assert refusal == protocol.Error(protocol.MISCONF, refusal.message) and "No space" in refusal.message
        reply = harness.call(("SET", "k", "2"), ("GET", "k"), ("INCR", "n"))
        assert reply == [[1, "MISCONF", refusal.message], [0, b"1"], [1, "MISCONF", refusal.message]]
        assert harness.actor.stats["misconf_refusals"] == 2  # refused upfront: never ran
    finally:
        os.close(writer.fd)
        writer.fd = good_fd


def test_only_the_cycle_whose_append_failed_has_its_writes_refused(tmp_path):
    h = Harness(tmp_path)
    writer = h.actor.writer
    good_fd = writer.fd
    try:
        h.actor.config = h.config = Config(dir=h.config.dir, appendfsync="always", cycle_max_commands=100)
        before = h.actor.stats["total_cycles"]
        _send_batch(h, 500, [(1, protocol.encode_batch([("INCR", b"n")] * 150))])
        wait_for(lambda: h.rt.run_once(timeout=0.02) or h.actor.stats["total_cycles"] > before,
                 timeout=5, what="the first cycle")
        writer.fd = os.open("/dev/full", os.O_WRONLY)  # the second cycle's append fails
        got = _replies_until(h, [500])
        reply = msgpack.unpackb(got[-1].replies[got[-1].seqs.index(500)], raw=False)
        assert reply[:100] == [[0, i] for i in range(1, 101)]  # durable: acknowledged
        assert [w[:2] for w in reply[100:]] == [[1, "MISCONF"]] * 50
    finally:
        if writer.fd != good_fd:
            os.close(writer.fd)
            writer.fd = good_fd
        h.stop()


def test_bgrewriteaof_is_answered_after_the_cycles_append_and_a_second_one_is_busy(harness):
    reply = harness.call(("SET", "k", "v"), ("BGREWRITEAOF",), ("BGREWRITEAOF",), ("GET", "k"))
    assert reply[:2] == [[0, "OK"], [0, "Background append only file rewriting started"]]
    assert reply[2] == [1, "BUSY", protocol.BUSY_REWRITE_MESSAGE]
    assert reply[3] == [0, b"v"]
    assert harness.call(("BGREWRITEAOF",)) == [1, "BUSY", protocol.BUSY_REWRITE_MESSAGE]
    assert harness.actor.stats["total_error_replies"] == 2


def test_stats_from_the_front_show_in_info(harness):
    harness.front.send(m.Stats({"connected_clients": 3, "waiting": 0}))
    reply = harness.call(("INFO", "clients"))
    assert reply[1]["clients"]["connected_clients"] == 3


def _send_batch(harness, seq, clients_and_bodies):
    clients = [c for c, _ in clients_and_bodies]
    bodies = [b for _, b in clients_and_bodies]
    harness.front.send(m.Batch(seq, clients, bodies))


def _replies_until(harness, seqs):
    """Every Replies message until all ``seqs`` were answered, in arrival order."""
    got = []

    def all_answered():
        harness.front.flush()
        harness.rt.run_once(timeout=0.02)
        got.extend(x for x in harness.front.receive() if type(x) is m.Replies)
        return set(seqs) <= {s for r in got for s in r.seqs}
    wait_for(all_answered, timeout=20, what="every reply")
    return got


def test_a_small_client_is_served_while_a_big_message_runs(harness):
    """Finding 7: one message of 10,000 SETs no longer holds every other client."""
    big = protocol.encode_batch([("SET", b"k%d" % i, b"v" * 100) for i in range(10_000)])
    ping = protocol.encode_request("PING")
    _send_batch(harness, 100, [(1, big)])
    _send_batch(harness, 101, [(2, ping)])
    got = _replies_until(harness, [100, 101])
    order = [s for r in got for s in r.seqs]
    assert order.index(101) < order.index(100)
    big_reply = msgpack.unpackb(got[-1].replies[got[-1].seqs.index(100)], raw=False)
    assert len(big_reply) == 10_000 and all(w == [0, "OK"] for w in big_reply)
    cycles_for_big = sum(1 for r in got if r.seqs or r.taken)
    assert cycles_for_big >= 10_000 // harness.config.cycle_max_commands


def test_one_clients_messages_stay_in_order_across_cycles(harness):
    first = protocol.encode_batch([("APPEND", b"log", b"a")] * 5000)
    second = protocol.encode_request("GET", b"log")
    _send_batch(harness, 200, [(7, first), (7, second)])
    got = _replies_until(harness, [200, 201])
    replies = {s: r for msg in got for s, r in zip(msg.seqs, msg.replies)}
    assert msgpack.unpackb(replies[201], raw=False) == [0, b"a" * 5000]  # after all of the first


def test_a_cycle_runs_at_most_cycle_max_commands(tmp_path):
    h = Harness(tmp_path)
    try:
        h.actor.config = h.config = Config(dir=h.config.dir, appendfsync="always", cycle_max_commands=100)
        body = protocol.encode_batch([("INCR", b"n")] * 1000)
        before = h.actor.stats["total_cycles"]
        _send_batch(h, 300, [(1, body)])
        _replies_until(h, [300])
        assert h.actor.stats["total_cycles"] - before >= 10
        assert h.call(("GET", "n")) == [0, b"1000"]
    finally:
        h.stop()


def test_a_message_whose_replies_pass_the_output_limit_is_cut_short(tmp_path):
    h = Harness(tmp_path)
    try:
        h.actor.config = h.config = Config(dir=h.config.dir, appendfsync="always", client_output_limit=1 << 20)
        h.call(("SET", "big", b"x" * (256 << 10)))
        body = protocol.encode_batch([("GET", b"big")] * 100)
        _send_batch(h, 400, [(1, body)])
        got = _replies_until(h, [400])
        reply = msgpack.unpackb(got[-1].replies[got[-1].seqs.index(400)], raw=False)
        assert reply[:2] == [1, "TOOBIG"] and "client-output-limit" in reply[2]
    finally:
        h.stop()


def test_a_lost_front_leaves_no_stale_poller_entry(harness):
    """A benchmark run caught the log actor polling the closed channel's old fd after the front
    went away (a closed socket's fileno() is -1, so the unwatch missed it), then crashing on
    ``self.front = None`` once the reconnect failed."""
    old_fd = harness.actor.fronts.links[0].ch.fileno()
    harness.listener.close()  # no front to reconnect to
    harness.front.close()
    for _ in range(30):  # EOF, then ticks that try to reconnect and fail
        harness.rt.run_once(timeout=0.02)
    assert harness.actor.fronts.links[0].ch is None or harness.actor.fronts.links[0].ch.closed
    assert not harness.rt.watching(old_fd)


def test_a_dead_fronts_queued_work_is_not_replied_to_its_successor(harness):
    """A new front numbers its messages from 1 again, so a reply the log actor made for the
    dead front's message 3 would reach whichever new client sent the new message 3. Its queued
    messages are dropped (counted) when it goes, and nothing of them reaches the new one."""
    harness.actor.config = harness.config = Config(dir=harness.config.dir, appendfsync="always",
                                                   cycle_max_commands=100)
    big = protocol.encode_batch([("INCR", b"n")] * 10_000)  # 100 cycles
    _send_batch(harness, 1, [(1, big), (2, protocol.encode_request("PING")), (3, protocol.encode_request("PING"))])
    _replies_until(harness, [2, 3])  # taken, partly run
    harness.front.close()  # the front dies with client 1's message queued
    harness.rt.run_once(timeout=0.02)  # the EOF
    harness.actor.on_tick(time.monotonic())  # a tick now: a new front is there at once
    sock, _ = wait_for(lambda: harness.rt.run_once(timeout=0.02) or _accept(harness.listener),
                       timeout=5, what="the log actor's reconnect")
    harness.front = channel.Channel(sock)
    got = []

    def idle():
        harness.rt.run_once(timeout=0.01)
        got.extend(harness.front.receive())
        return not harness.actor.work and not harness.actor.busy
    wait_for(idle, timeout=10, what="the log actor idle")
    assert got[0] == m.Hello(os.getpid())
    stale = [x for x in got[1:] if type(x) is m.Replies and (x.seqs or x.taken)]
    assert stale == [], "replies or taken counts of the dead front reached its successor"
    assert harness.actor.stats["dropped_messages_front_gone"] == 1
    assert int(harness.call(("GET", "n"))[1]) < 10_000  # and the rest of it never ran


def test_a_command_that_raises_answers_err_and_the_actor_goes_on(harness):
    """A bug in one command (here a handler made to raise) must not end the log actor: the
    request gets ERR, the rest of the message and later messages run, and it is counted."""
    def broken(db, args):
        raise AttributeError("a bug")
    harness.actor.executor._handlers["GET"] = broken
    reply = harness.call(("SET", "k", "v"), ("GET", "k"), ("STRLEN", "k"))
    assert reply[0] == [0, "OK"] and reply[2] == [0, 1]
    assert reply[1][:2] == [1, "ERR"] and "internal error in 'get'" in reply[1][2]
    assert harness.call(("EXISTS", "k")) == [0, 1]
    assert harness.actor.stats["command_internal_errors"] == 1
