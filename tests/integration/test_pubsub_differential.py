"""Pub/sub on the RESP front against redis-server 7.0: the same steps on two connections (a
subscriber and a publisher), in RESP2 and RESP3, must get byte-identical bytes: subscribe
replies, messages and pmessages, subscriber mode's errors and PING, PUBSUB's introspection.
Skipped without redis-server."""
from __future__ import annotations

import shutil
import socket

import pytest

from aofnode.bench.resp import ReplyParser, encode_command
from tests.integration.test_resp_front import _start

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")

S, P = 0, 1  # the subscriber's and the publisher's connection
# (connection, command, how many replies or messages it gets)
STEPS = [
    (S, ("SUBSCRIBE", "news", "sport"), 2), (P, ("PUBLISH", "news", "hello"), 1), (S, None, 1),
    (P, ("PUBLISH", "nobody", "x"), 1), (S, ("PSUBSCRIBE", "n*", "s?ort"), 2),
    (P, ("PUBLISH", "news", "two"), 1), (S, None, 2), (P, ("PUBLISH", "sport", ""), 1), (S, None, 2),
    (P, ("PUBSUB", "NUMSUB", "news", "none"), 1), (P, ("PUBSUB", "NUMPAT"), 1),
    (P, ("PUBSUB", "CHANNELS", "n*"), 1), (P, ("PUBSUB", "NOPE"), 1),
    (P, ("PUBSUB", "NUMPAT", "x"), 1), (P, ("PUBSUB", "CHANNELS", "s*"), 1),  # one: Redis lists them in hash order
    (S, ("PING",), 1), (S, ("PING", "hi"), 1), (S, ("GET", "k"), 1), (S, ("SET", "k", "v"), 1),
    (S, ("UNSUBSCRIBE", "news"), 1), (S, ("UNSUBSCRIBE", "never"), 1), (S, ("PUNSUBSCRIBE",), 2),
    (S, ("UNSUBSCRIBE",), 1), (S, ("UNSUBSCRIBE",), 1), (S, ("PUNSUBSCRIBE",), 1),
    (S, ("PING",), 1), (S, ("GET", "k"), 1), (P, ("PUBLISH", "news", "late"), 1),
    (S, ("SUBSCRIBE",), 1), (P, ("PUBLISH",), 1),
    (S, ("SUBSCRIBE", "a"), 1), (S, ("PSUBSCRIBE", "b*"), 1), (S, ("RESET",), 1), (S, ("GET", "k"), 1),
    (P, ("PUBLISH", "a", "x"), 1), (P, ("PUBSUB", "NUMPAT"), 1), (S, ("RESET",), 1),
]


# CLIENT REPLY OFF|SKIP silences replies, not (P)(UN)SUBSCRIBE's confirmations nor messages
# (pushes: Redis 7.0 sends them whatever the mode); a SKIP is spent on a SUBSCRIBE.
SILENCED = [
    (S, ("CLIENT", "REPLY", "OFF"), 0), (S, ("SUBSCRIBE", "channel"), 1),
    (S, ("PSUBSCRIBE", "ch*"), 1), (P, ("PUBLISH", "channel", "hello"), 1), (S, None, 2),
    (S, ("UNSUBSCRIBE", "channel"), 1), (S, ("PUNSUBSCRIBE", "ch*"), 1), (S, ("GET", "k"), 0),
    (S, ("CLIENT", "REPLY", "ON"), 1), (S, ("CLIENT", "REPLY", "SKIP"), 0),
    (S, ("SUBSCRIBE", "x"), 1), (S, ("PING",), 1), (S, ("UNSUBSCRIBE",), 1),
    (S, ("GET", "nokey"), 1),
]


def _read(sock: socket.socket, parser: ReplyParser, n: int) -> bytes:
    raw, got = b"", 0
    while got < n:
        data = sock.recv(65536)
        assert data, "connection closed"
        raw += data
        parser.feed(data)
        got += len(parser.replies())
    return raw


def _run(port: int, protocol: str, steps: list = STEPS) -> list[bytes]:
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
    parsers = [ReplyParser(), ReplyParser()]
    try:
        for sock, parser in zip(socks, parsers):
            sock.sendall(encode_command("HELLO", protocol))
            _read(sock, parser, 1)
        out = []
        for who, command, n in steps:
            if command is not None:
                socks[who].sendall(encode_command(*command))
            out.append(_read(socks[who], parsers[who], n))
        return out
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("protocol", ["2", "3"])
def test_pubsub_is_redis_servers_bytes(make_node, redis_port, protocol):
    _node, port = _start(make_node, appendfsync="everysec")
    theirs, ours = _run(redis_port, protocol), _run(port, protocol)
    differences = [(step, t, o) for step, t, o in zip(STEPS, theirs, ours) if t != o]
    assert differences == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("protocol", ["2", "3"])
def test_subscriptions_are_pushed_under_client_reply_off(make_node, redis_port, protocol):
    _node, port = _start(make_node, appendfsync="everysec")
    theirs, ours = _run(redis_port, protocol, SILENCED), _run(port, protocol, SILENCED)
    assert [(step, t, o) for step, t, o in zip(SILENCED, theirs, ours) if t != o] == []
