"""The front actor in process: a real DEALER client and the test playing the log actor over the
real channel. No subprocess: the runtime is driven turn by turn."""
from __future__ import annotations

import msgpack
import pytest
import structlog
import zmq

from aofnode.runtime import channel
from aofnode.runtime import messages as m
from aofnode.fronts.zmq_front import BindError, Front
from aofnode.runtime.actor import Runtime
from aofnode.config import Config
from tests.nodeproc import free_port, wait_for


def _v2(payload) -> bytes:
    """A protocol-2 message for db 0."""
    return msgpack.packb([{}, payload])


@pytest.fixture
def front(tmp_path):
    config = Config(dir=str(tmp_path / "data"), bind=f"tcp://127.0.0.1:{free_port()}")
    (tmp_path / "data").mkdir()
    ctx = zmq.Context()
    actor = Front(config, structlog.get_logger(), ctx=zmq.Context())
    rt = Runtime(actor)
    rt.start()
    client = ctx.socket(zmq.DEALER)
    client.setsockopt(zmq.LINGER, 0)
    client.connect(config.bind)
    yield actor, rt, client, config
    client.close()
    ctx.term()
    actor.on_stop()


def _reply(rt, client):
    def got():
        rt.run_once(timeout=0.02)
        try:
            return client.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
    frames = wait_for(got, timeout=5, what="a reply")
    return msgpack.unpackb(frames[-1], raw=False)


def _log_side(rt, config):
    ch = channel.connect(config.backend_path)
    assert ch is not None
    ch.send(m.Hello(1234))
    return ch


def _batches(rt, ch):
    def got():
        rt.run_once(timeout=0.02)
        return [msg for msg in ch.receive() if type(msg) is m.Batch]
    return wait_for(got, timeout=5, what="a batch")


def test_loading_until_the_log_actor_says_hello(front):
    _actor, rt, client, _config = front
    client.send_multipart([b"", _v2(["GET", "k"])])
    assert _reply(rt, client)[:2] == [1, "LOADING"]


def test_a_request_goes_to_the_log_actor_and_its_reply_back(front):
    actor, rt, client, config = front
    ch = _log_side(rt, config)
    wait_for(lambda: rt.run_once(timeout=0.02) or actor.ready, timeout=5, what="ready")
    client.send_multipart([b"", _v2(["SET", "k", "v"])])
    [batch] = _batches(rt, ch)
    assert batch.bodies == [_v2(["SET", "k", "v"])]  # decode once: the log actor does it
    ch.send(m.Replies(1, [batch.first_seq], [msgpack.packb([0, "OK"])]))
    assert _reply(rt, client) == [0, "OK"]


def test_bodies_go_to_the_log_actor_as_they_came(front):
    """Decode once: the front keeps no client state and does not decode a body once the log
    actor serves; the db and SELECT are the log actor's (tests/unit/test_log_actor.py)."""
    actor, rt, client, config = front
    ch = _log_side(rt, config)
    wait_for(lambda: rt.run_once(timeout=0.02) or actor.ready, timeout=5, what="ready")
    body = msgpack.packb([{"db": 4}, [["GET", "a"], ["NOPE"], ["SELECT", "7"]]])
    client.send_multipart([b"", body])
    [batch] = _batches(rt, ch)
    assert batch.bodies == [body]
    assert not hasattr(actor, "dbs")


def test_front_made_errors_wait_behind_earlier_requests(front):
    actor, rt, client, config = front
    ch = _log_side(rt, config)
    wait_for(lambda: rt.run_once(timeout=0.02) or actor.ready, timeout=5, what="ready")
    client.send_multipart([b"", _v2(["GET", "k"])])
    [batch] = _batches(rt, ch)
    client.send_multipart([b"", b"two", b"frames"])  # refused by the front itself (PROTO)
    for _ in range(10):
        rt.run_once(timeout=0.01)
    with pytest.raises(zmq.Again):
        client.recv_multipart(zmq.NOBLOCK)  # the error may not overtake the GET
    ch.send(m.Replies(1, [batch.first_seq], [msgpack.packb([0, b"v"])]))
    assert _reply(rt, client) == [0, b"v"]
    assert _reply(rt, client)[:2] == [1, "PROTO"]


def test_the_log_actors_death_aborts_what_was_in_flight(front):
    actor, rt, client, config = front
    ch = _log_side(rt, config)
    wait_for(lambda: rt.run_once(timeout=0.02) or actor.ready, timeout=5, what="ready")
    client.send_multipart([b"", _v2(["SET", "k", "v"])])
    _batches(rt, ch)
    ch.close()
    assert _reply(rt, client)[:2] == [1, "ABORTED"]
    client.send_multipart([b"", _v2(["GET", "k"])])
    assert _reply(rt, client)[:2] == [1, "LOADING"]
    assert not actor.ready


def test_stats_reach_the_log_actor_on_the_tick(front):
    actor, rt, _client, config = front
    ch = _log_side(rt, config)

    def one_client_counted():
        rt.run_once(timeout=0.05)
        return [msg for msg in ch.receive()
                if type(msg) is m.Stats and msg.counters["connected_clients"] == 1]
    [stats, *_] = wait_for(one_client_counted, timeout=5, what="Stats counting the one client")
    assert stats.counters["total_connections_received"] == 1
    assert stats.counters["waiting"] == 0


def test_a_second_front_on_the_same_port_cannot_bind(front):
    _actor, _rt, _client, config = front
    other = Runtime(Front(config, structlog.get_logger(), ctx=zmq.Context()))
    with pytest.raises(BindError, match="cannot bind"):
        other.start()
    other.actor.ctx.destroy(linger=0)
