"""Keyspace notifications (node/log/notify.py): the flags in process, and the events of a command
script against redis-server 7.0 (skipped without it): same channels, same messages, same order."""
from __future__ import annotations

import shutil
import time

import pytest
import redis

from aofnode.log.notify import Invalid, flags_text, parse_flags
from tests.nodeproc import RedisServer, wait_for
from tests.integration.test_resp_front import _start

FLAGS = [(b"", ""), (b"KEA", "AKE"), (b"Kg$", "g$K"), (b"Ex", "xE"), (b"KElshz", "lshzKE"),
         (b"En", "nE"), (b"KEAn", "AKE"), (b"Km", "Km")]  # as redis-server 7.0.15 spells them


@pytest.mark.parametrize("raw, text", FLAGS)
def test_flags(raw, text):
    assert flags_text(parse_flags(raw)) == text


def test_bad_flag():
    with pytest.raises(Invalid):
        parse_flags(b"KQ")


SCRIPT = [
    ("SET", "k", "v"), ("SET", "k", "v", "EX", "100"), ("APPEND", "k", "x"), ("SETRANGE", "k", "0", "a"),
    ("INCR", "n"), ("DECRBY", "n", "2"), ("INCRBYFLOAT", "n", "1.5"), ("MSET", "a", "1", "b", "2"),
    ("EXPIRE", "a", "100"), ("PERSIST", "a"), ("PERSIST", "a"), ("RENAME", "a", "a2"),
    ("DEL", "a2", "b", "nope"), ("GETDEL", "k"), ("GETDEL", "k"),
    ("LPUSH", "l", "1", "2"), ("RPUSH", "l", "3"), ("LPOP", "l"), ("RPOP", "l", "5"),
    ("SADD", "s", "x", "y"), ("SADD", "s", "x"), ("SREM", "s", "x"), ("SREM", "s", "y"),
    ("ZADD", "z", "1", "m"), ("ZINCRBY", "z", "2", "m"), ("ZREM", "z", "m"),
    ("HSET", "h", "f", "1"), ("HINCRBY", "h", "f", "2"), ("HDEL", "h", "f"),
    ("SET", "t", "v", "PX", "1"),
]


def _events(port: int) -> list[tuple[bytes, bytes]]:
    r = redis.Redis(port=port, socket_timeout=5)
    r.config_set("notify-keyspace-events", "KEAn")
    assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": "AKE"}  # sic
    p = redis.Redis(port=port, socket_timeout=5).pubsub(ignore_subscribe_messages=True)
    try:
        p.psubscribe("__key*__:*")
        p.subscribe("end")
        wait_for(lambda: r.pubsub_numpat() == 1 and r.pubsub_numsub("end") == [(b"end", 1)])
        r.flushall()
        for command in SCRIPT:
            r.execute_command(*command)
        time.sleep(0.05)
        r.exists("t")  # expired on lookup
        r.publish("end", "")
        out = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = p.get_message(timeout=0.5)
            if msg is None:
                continue
            if msg["channel"] == b"end":
                return out
            out.append((msg["channel"], msg["data"]))
        raise AssertionError(f"no end marker after {out}")
    finally:
        r.config_set("notify-keyspace-events", "")
        p.close()
        r.close()


@pytest.mark.timeout(120)
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_events_are_redis_servers(make_node, tmp_path):
    server = RedisServer(tmp_path / "redis")
    try:
        theirs = _events(server.port)
    finally:
        server.stop()
    _node, port = _start(make_node, appendfsync="everysec")
    ours = _events(port)
    assert ours == theirs


@pytest.mark.timeout(60)
def test_off_by_default_and_config_set_errors(make_node):
    _node, port = _start(make_node, appendfsync="everysec")
    r = redis.Redis(port=port, socket_timeout=5)
    assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": ""}
    p = r.pubsub()
    p.psubscribe("*")
    r.set("k", "v")
    assert r.publish("x", "y") == 1  # only this one: SET notified nothing
    with pytest.raises(redis.ResponseError, match="Invalid event class character"):
        r.config_set("notify-keyspace-events", "KQ")
    p.close()
    r.close()


@pytest.mark.timeout(60)
def test_evicted_when_config_set_lowers_maxmemory(make_node):
    """Redis evicts at once when CONFIG SET lowers maxmemory; so does aofnode, and says so."""
    _node, port = _start(make_node, appendfsync="everysec")
    r = redis.Redis(port=port, socket_timeout=5)
    p = redis.Redis(port=port, socket_timeout=5).pubsub(ignore_subscribe_messages=True)
    try:
        r.config_set("notify-keyspace-events", "Ee")
        r.config_set("maxmemory-policy", "allkeys-lru")
        p.psubscribe("*")
        wait_for(lambda: r.pubsub_numpat() == 1)
        r.set("foo", "bar")
        r.config_set("maxmemory", 1)
        msg = wait_for(lambda: p.get_message(timeout=0.2), timeout=10)
        assert (msg["channel"], msg["data"]) == (b"__keyevent@0__:evicted", b"foo")
    finally:
        r.config_set("maxmemory", 0)
        p.close()
        r.close()
