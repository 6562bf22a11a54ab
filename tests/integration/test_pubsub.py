"""Pub/sub: the log actor's registry in process, and redis-py's ``pubsub()`` against a real node
(messages published from another RESP connection and from the ZeroMQ front, a slow subscriber
cut off while the publisher keeps its latency)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import shutil

import pytest
import redis
import zmq

from aofnode import exitcodes
from aofnode.client import Client, CommandError

from aofnode.log.pubsub import MAX_PER_CLIENT, PubSub
from aofnode.log.work import owner_base
from aofnode.protocol.errors import Error
from aofnode.runtime import messages as m
from aofnode.tools.keygen import load_client_curve, write_key_pair
from tests.nodeproc import AOFNODE, free_port, wait_for
from tests.integration.test_curve import _answers
from tests.integration.test_resp_front import _start

KEY_A, KEY_B = owner_base(1) | 5, owner_base(3) | 7  # two clients on two front connections


def _as(ps: PubSub, key: int, name: str, *args: bytes):
    ps.client = key
    return ps.handlers()[name](0, list(args))


# -- the registry, in process --------------------------------------------------------------------

REGISTRY = [  # (client, command, args, reply)
    (KEY_A, "SUBSCRIBE", (b"a", b"b", b"a"), [[b"subscribe", b"a", 1], [b"subscribe", b"b", 2],
                                               [b"subscribe", b"a", 2]]),
    (KEY_B, "PSUBSCRIBE", (b"a*",), [[b"psubscribe", b"a*", 1]]),
    (KEY_B, "PUBLISH", (b"a", b"m"), 2),
    (KEY_B, "PUBLISH", (b"zz", b"m"), 0),
    (KEY_A, "PUBSUB", (b"NUMSUB", b"a", b"zz"), [b"a", 1, b"zz", 0]),
    (KEY_A, "PUBSUB", (b"NUMPAT",), 1),
    (KEY_A, "UNSUBSCRIBE", (b"b", b"never"), [[b"unsubscribe", b"b", 1], [b"unsubscribe", b"never", 1]]),
    (KEY_A, "UNSUBSCRIBE", (), [[b"unsubscribe", b"a", 0]]),
    (KEY_A, "UNSUBSCRIBE", (), [[b"unsubscribe", None, 0]]),
    (KEY_B, "PUNSUBSCRIBE", (), [[b"punsubscribe", b"a*", 0]]),
    (KEY_B, "PUBLISH", (b"a", b"m"), 0),
]


@pytest.mark.parametrize("step", range(len(REGISTRY)))
def test_registry_table(step):
    ps = PubSub()
    for client, name, args, _reply in REGISTRY[:step + 1]:
        got = _as(ps, client, name, *args)
    assert got == REGISTRY[step][3]
    assert all(ps.channels.values()) and all(ps.patterns.values())


def test_publish_delivers_per_front_connection():
    ps = PubSub()
    _as(ps, KEY_A, "SUBSCRIBE", b"ch")
    _as(ps, KEY_B, "PSUBSCRIBE", b"c?")
    assert ps.publish(b"ch", b"hi") == 2
    assert sorted(ps.take(), key=lambda x: x[0]) == [(1, m.Deliver([5], b"ch", b"hi", None)),
                                                      (3, m.Deliver([7], b"ch", b"hi", b"c?"))]
    assert ps.take() == []


def test_forget_and_bounds():
    ps = PubSub()
    _as(ps, KEY_A, "SUBSCRIBE", b"x")
    _as(ps, KEY_B, "SUBSCRIBE", b"x")
    ps.forget(KEY_A)
    assert ps.publish(b"x", b"") == 1
    ps.forget_owner(owner_base(3))
    assert ps.publish(b"x", b"") == 0 and ps.clients == {} and ps.channels == {}
    many = [b"%d" % i for i in range(MAX_PER_CLIENT + 1)]
    assert type(_as(ps, KEY_A, "SUBSCRIBE", *many)) is Error
    ps.subscribable = lambda key: False
    assert type(_as(ps, KEY_B, "PSUBSCRIBE", b"*")) is Error


def test_deliver_message_round_trips():
    for msg in (m.Deliver([1, 2], b"c", b"m", None), m.Deliver([3], b"c", b"", b"*")):
        assert m.decode(m.encode(msg)) == msg
    with pytest.raises(m.BadMessage):
        m.decode([b"P", [1], "c", b"m", None])


# -- a real node -------------------------------------------------------------------------------


def _messages(p, n: int, timeout: float = 5.0) -> list[dict]:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        msg = p.get_message(timeout=0.2)
        if msg is not None and msg["type"] in ("message", "pmessage"):
            got.append(msg)
    return got


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_pubsub_across_fronts(make_node, protocol):
    node, port = _start(make_node, appendfsync="everysec")
    sub = redis.Redis(port=port, protocol=protocol, socket_timeout=5)
    pub = redis.Redis(port=port, protocol=protocol, socket_timeout=5)
    p = sub.pubsub()
    try:
        p.subscribe("news")
        p.psubscribe("n*")
        wait_for(lambda: pub.pubsub_numpat() == 1 and pub.pubsub_numsub("news") == [(b"news", 1)])
        assert pub.publish("news", "from resp") == 2
        with node.client() as zmq:
            assert zmq.execute("PUBLISH", "nice", "from zmq") == 1
        got = _messages(p, 3)
        assert [(g["type"], g["channel"], g["data"]) for g in got] == [
            ("message", b"news", b"from resp"), ("pmessage", b"news", b"from resp"),
            ("pmessage", b"nice", b"from zmq")]
        p.unsubscribe()
        p.punsubscribe()
        wait_for(lambda: pub.pubsub_numpat() == 0)
        assert pub.publish("news", "nobody") == 0
    finally:
        p.close()
        sub.close()
        pub.close()


@pytest.mark.timeout(60)
def test_listen_and_forgotten_at_close(make_node):
    node, port = _start(make_node, appendfsync="everysec")
    pub = redis.Redis(port=port, socket_timeout=5)
    p = redis.Redis(port=port, socket_timeout=5).pubsub(ignore_subscribe_messages=True)
    try:
        p.subscribe("jobs")
        wait_for(lambda: pub.pubsub_numsub("jobs") == [(b"jobs", 1)])
        for i in range(3):
            pub.publish("jobs", f"job {i}")
        listened = []
        for msg in p.listen():
            listened.append(msg["data"])
            if len(listened) == 3:
                break
        assert listened == [b"job 0", b"job 1", b"job 2"]
    finally:
        p.close()
        pub.close()
    wait_for(lambda: redis.Redis(port=port).pubsub_numsub("jobs") == [(b"jobs", 0)])  # forgotten at close


@pytest.mark.xdist_group("heavy")  # 50 MiB published: one heavy test at a time
@pytest.mark.solo  # and a latency bound: no other test beside it (tests/conftest.py)
@pytest.mark.timeout(120)
def test_slow_subscriber_is_cut_off_and_never_slows_the_publisher(make_node):
    node, port = _start(make_node, appendfsync="everysec")
    slow = socket.create_connection(("127.0.0.1", port), timeout=5)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"SUBSCRIBE firehose\r\n")
    pub = redis.Redis(port=port, socket_timeout=5)
    try:
        wait_for(lambda: pub.pubsub_numsub("firehose") == [(b"firehose", 1)])
        payload = b"x" * 256 * 1024
        worst = 0.0
        for _ in range(200):  # 50 MiB: past the 32 MiB hard limit
            start = time.perf_counter()
            pub.publish("firehose", payload)
            worst = max(worst, time.perf_counter() - start)
        wait_for(lambda: pub.pubsub_numsub("firehose") == [(b"firehose", 0)], timeout=20)
        wait_for(lambda: pub.info("clients").get("resp_pubsub_limit_disconnections", 0) >= 1)  # Stats: 1 s
        assert pub.info("clients")["resp_pubsub_hard_limit"] == 32 * 1024 * 1024
        assert worst < 1.0, worst
        assert pub.ping()
    finally:
        slow.close()
        pub.close()


@pytest.mark.timeout(60)
def test_zeromq_sub_socket_on_pub_bind(make_node):
    pub_endpoint = f"tcp://127.0.0.1:{free_port()}"
    node, port = _start(make_node, "--pub-bind", pub_endpoint, appendfsync="everysec")
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVTIMEO, 200)
    sub.setsockopt(zmq.SUBSCRIBE, b"news")  # a prefix: news and newsroom, not sport
    sub.connect(pub_endpoint)
    r = redis.Redis(port=port, socket_timeout=5)
    try:
        def joined():  # a SUB's subscription reaches the PUB asynchronously: probe until it has
            r.publish("news.probe", "")
            try:
                return sub.recv_multipart()
            except zmq.Again:
                return None
        wait_for(joined, timeout=10)
        assert r.publish("sport", "no") == 0  # a PUB socket's subscribers are not counted
        r.publish("newsroom", "yes")
        with node.client() as client:
            client.execute("PUBLISH", "news", b"\x00bin")
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            try:
                frames = sub.recv_multipart()
            except zmq.Again:
                continue
            if frames[0] != b"news.probe":
                got.append(frames)
        assert got == [[b"newsroom", b"yes"], [b"news", b"\x00bin"]]
    finally:
        r.close()
        sub.close()
        ctx.term()


def test_serve_refuses_a_reachable_pub_bind_without_curve(tmp_path):
    proc = subprocess.run([AOFNODE, "serve", "--dir", str(tmp_path / "data"), "--pub-bind", "tcp://0.0.0.0:7799",
                           "--log-file", str(tmp_path / "log")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == exitcodes.BIND
    assert proc.stderr.startswith("aofnode: refusing to bind --pub-bind tcp://0.0.0.0:7799 without CURVE")


@pytest.mark.timeout(60)
def test_zeromq_clients_publish_but_do_not_subscribe(make_node):
    node = make_node().start()
    with node.client() as client:
        with pytest.raises(CommandError, match="need a RESP connection"):
            client.execute("SUBSCRIBE", "news")
        assert client.execute("PUBLISH", "news", "x") == 0
        assert client.execute("PUBSUB", "NUMPAT") == 0


@pytest.mark.timeout(90)
def test_subscribers_are_closed_when_the_log_actor_dies(make_node):
    node, port = _start(make_node, appendfsync="everysec")
    sub = socket.create_connection(("127.0.0.1", port), timeout=20)
    sub.sendall(b"SUBSCRIBE news\r\n")
    assert sub.recv(100).startswith(b"*3\r\n$9\r\nsubscribe")
    os.kill(node.actor_pids()["log"], signal.SIGKILL)
    try:
        assert sub.recv(100) == b""  # closed: the registry died with the log actor
    finally:
        sub.close()
    r = redis.Redis(port=port, socket_timeout=5)
    wait_for(lambda: _publish_ok(r), timeout=30)
    r.close()


def _publish_ok(r) -> bool:
    try:
        return r.publish("news", "x") == 0
    except (redis.ConnectionError, redis.BusyLoadingError, redis.ResponseError):
        return False


@pytest.fixture
def curve_keys(tmp_path):
    allow = tmp_path / "allow"
    allow.mkdir()
    server_public, server_secret = write_key_pair(str(tmp_path / "server"), "server")
    alice_public, alice_secret = write_key_pair(str(tmp_path / "clients"), "alice")
    shutil.copy(alice_public, allow)
    return {"allow": allow, "server_secret": server_secret,
            "alice": load_client_curve(server_public, alice_secret)}


@pytest.mark.timeout(90)
def test_pub_socket_takes_curve_as_the_router_does(make_node, curve_keys):
    """With CURVE the PUB socket is a CURVE server with the ROUTER's key and allowed clients:
    an allowed SUB gets the messages, a plain one nothing."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    node = make_node(extra=("--curve-secret-key", curve_keys["server_secret"],
                            "--curve-allow", str(curve_keys["allow"]), "--pub-bind", endpoint))
    node.start(wait=False)
    wait_for(lambda: _answers(node, curve_keys["alice"]), 30, what="allowed client served")
    server_public, public, secret = curve_keys["alice"]
    ctx = zmq.Context()
    subs = {}
    for name in ("alice", "plain"):
        sub = subs[name] = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVTIMEO, 200)
        if name == "alice":
            sub.setsockopt(zmq.CURVE_SERVERKEY, server_public)
            sub.setsockopt(zmq.CURVE_PUBLICKEY, public)
            sub.setsockopt(zmq.CURVE_SECRETKEY, secret)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(endpoint)
    try:
        with Client(node.endpoint, timeout=5, curve=curve_keys["alice"]) as client:
            def received():
                client.execute("PUBLISH", "c", "m")
                try:
                    return subs["alice"].recv_multipart()
                except zmq.Again:
                    return None
            assert wait_for(received, timeout=20) == [b"c", b"m"]
        with pytest.raises(zmq.Again):
            subs["plain"].recv_multipart()
    finally:
        for sub in subs.values():
            sub.close()
        ctx.term()
