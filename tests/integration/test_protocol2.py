"""Protocol 2 at the node (issue 10): the db travels with every message, so neither a front
restart nor identity churn can move a write to another db."""
from __future__ import annotations

import os
import signal

import msgpack
import zmq

from aofnode import protocol
from aofnode.client import Client
from tests.nodeproc import wait_for


def test_a_selected_client_keeps_its_db_across_a_kill_9_of_the_front(make_node):
    node = make_node("always").start()
    with node.client(timeout=2, retries=5) as c:
        assert c.execute("SELECT", 4) == "OK"
        assert c.execute("SET", "before", "1") == "OK"
        front = node.actor_pids()["front"]
        os.kill(front, signal.SIGKILL)
        wait_for(lambda: node.actor_pids().get("front") not in (None, front), timeout=15,
                 what="a new front")
        # Same client, same socket object: ZeroMQ reconnects it invisibly to the new front.
        wait_for(lambda: _try_set(c, "after", "2"), timeout=20, what="the write after the restart")
    with node.client() as c0:
        assert c0.execute("DBSIZE") == 0  # nothing landed in db 0
        assert c0.execute_many([("SELECT", 4), ("GET", "before"), ("GET", "after")]) == ["OK", b"1", b"2"]


def _try_set(c: Client, key: str, value: str) -> bool:
    try:
        return c.execute("SET", key, value) == "OK"
    except Exception:  # noqa: BLE001 - a timeout or ABORTED while the front restarts
        return False


def test_identity_churn_cannot_move_a_write(make_node):
    """A few thousand identities come and go; the first client's db stays its own (the front
    used to forget the oldest of 100,000 remembered SELECTs)."""
    node = make_node("everysec").start()
    ctx = zmq.Context()
    try:
        first = ctx.socket(zmq.DEALER)
        first.connect(node.endpoint)
        first.send_multipart([b"", protocol.encode_request("SELECT", 7, db=0)])
        assert protocol.decode_reply(first.recv_multipart()[-1]) == "OK"
        for chunk in range(12):  # 3,000 identities, 250 at a time (each socket holds descriptors)
            churn_ctx = zmq.Context()
            socks = []
            for i in range(250):
                s = churn_ctx.socket(zmq.DEALER)
                s.setsockopt(zmq.LINGER, 0)
                s.setsockopt(zmq.IDENTITY, b"churn-%d-%d" % (chunk, i))
                s.connect(node.endpoint)
                s.send_multipart([b"", protocol.encode_request("SELECT", 3)])
                socks.append(s)
            for s in socks:  # each was answered: the front saw every identity
                assert s.poll(5000) and protocol.decode_reply(s.recv_multipart()[-1]) == "OK"
            churn_ctx.destroy(linger=0)
        # Protocol 2: the SELECT above held for its own message only; the client says its db.
        first.send_multipart([b"", protocol.encode_request("SET", "k", "v", db=7)])
        assert protocol.decode_reply(first.recv_multipart()[-1]) == "OK"
        first.send_multipart([b"", protocol.encode_request("SET", "k0", "v")])
        assert protocol.decode_reply(first.recv_multipart()[-1]) == "OK"
    finally:
        ctx.destroy(linger=0)
    with node.client() as c:
        assert c.execute("GET", "k0") == b"v" and c.execute("GET", "k") is None
        assert c.execute_many([("SELECT", 7), ("GET", "k")]) == ["OK", b"v"]


def test_a_protocol_1_message_is_refused_with_noproto(make_node):
    node = make_node("everysec").start()
    ctx = zmq.Context()
    try:
        s = ctx.socket(zmq.DEALER)
        s.connect(node.endpoint)
        s.send_multipart([b"", msgpack.packb(["SET", "k", "v"])])
        reply = msgpack.unpackb(s.recv_multipart()[-1], raw=False)
    finally:
        ctx.destroy(linger=0)
    assert reply[:2] == [1, protocol.NOPROTO] and "protocol 2" in reply[2]
    with node.client() as c:
        assert c.execute("EXISTS", "k") == 0  # nothing was executed
        assert c.execute("HELLO", 2)["proto"] == 2
