"""The log actor in process: the test plays the front on the real channel and drives the
runtime turn by turn. Real files, a real fsync; the closer is the inline stand-in."""
from __future__ import annotations

import os

import msgpack
import pytest
import structlog

from node.actors import channel
from node.actors import messages as m
from node.actors import private_sockets
from node.actors.closer_client import InlineCloser
from node.actors.log import LogActor
from node.actors.runtime import Runtime
from node.config import Config
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
            self.rt.run_once(timeout=0.02)
            got.extend(self.front.receive())
            return pick(got)
        return wait_for(ready, timeout=5, what="messages from the log actor")

    def call(self, *requests, db=0):
        """One client message (a batch when several requests); returns its decoded reply."""
        items = [[db, name, *[a if isinstance(a, bytes) else str(a).encode() for a in args]]
                 for name, *args in requests]
        body = msgpack.packb([len(items) > 1, items])
        batch_id, self.next_id = self.next_id, self.next_id + 1
        self.front.send(m.Batch(batch_id, [body]))
        [replies] = self._receive(lambda msgs: [x for x in msgs if type(x) is m.Replies])
        assert replies.batch_id == batch_id
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


def test_replies_the_front_made_stay_in_place(harness):
    body = msgpack.packb([True, [[None, [0, "OK"]], [0, "PING"]]])
    harness.front.send(m.Batch(99, [body]))
    [replies] = harness._receive(lambda msgs: [x for x in msgs if type(x) is m.Replies])
    assert msgpack.unpackb(replies.replies[0], raw=False) == [[0, "OK"], [0, "PONG"]]


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


def test_stats_from_the_front_show_in_info(harness):
    harness.front.send(m.Stats({"connected_clients": 3, "waiting": 0}))
    reply = harness.call(("INFO", "clients"))
    assert reply[1]["clients"]["connected_clients"] == 3
