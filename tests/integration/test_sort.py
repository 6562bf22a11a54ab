"""SORT and SORT_RO on a real node: byte-identical RESP replies against redis-server (RESP2 and
RESP3; skipped without it), SORT ... STORE across a restart and a rewrite, the ZeroMQ front."""
from __future__ import annotations

import shutil

import pytest
import redis

from tests.integration.test_parity_commands import _start_again
from tests.integration.test_resp_differential import differing_replies
from tests.integration.test_resp_front import _start
from tests.integration.test_rewrite import wait_rewrites

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed")

SORTS = [
    ("FLUSHALL",), ("RPUSH", "l", "3", "1", "2", "10", "-1.5", "1e2", "2"),
    ("SORT", "l"), ("SORT", "l", "DESC"), ("SORT", "l", "ALPHA"), ("SORT", "l", "ALPHA", "DESC"),
    ("SORT", "l", "LIMIT", "1", "3"), ("SORT", "l", "LIMIT", "-5", "2"), ("SORT", "l", "LIMIT", "5", "-1"),
    ("SORT", "l", "LIMIT", "100", "2"), ("SORT", "l", "LIMIT", "0", "0"), ("SORT", "l", "LIMIT", "x", "1"),
    ("SORT", "l", "LIMIT", "1"), ("SORT", "l", "BY", "nosort"), ("SORT", "l", "BY", "nosort", "DESC"),
    ("SORT", "l", "BY", "nosort", "LIMIT", "2", "3"), ("SORT", "l", "BY", "nosort", "DESC", "LIMIT", "1", "2"),
    ("SORT", "l", "BOGUS"), ("SORT", "l", "ASC", "DESC", "ASC"),
    ("MSET", "w_3", "30", "w_1", "x", "w_2", "-5", "w_10", "", "o_1", "one", "o_3", "three"),
    ("SORT", "l", "BY", "w_*"), ("DEL", "w_1"), ("SORT", "l", "BY", "w_*"),
    ("SORT", "l", "BY", "w_*", "GET", "#", "GET", "o_*", "GET", "nostar"),
    ("SORT", "l", "BY", "o_*", "ALPHA"), ("SORT", "l", "BY", "o_*", "ALPHA", "DESC", "GET", "o_*"),
    ("HSET", "h_1", "f", "9"), ("HSET", "h_2", "f", "3"), ("HSET", "h_3", "g", "1"),
    ("SORT", "l", "BY", "h_*->f", "GET", "h_*->f", "GET", "h_*->"), ("SORT", "l", "BY", "h_*->"),
    ("SADD", "s", "b", "a", "c", "10"), ("SORT", "s", "ALPHA"), ("SORT", "s"),
    ("SORT", "s", "BY", "nosort", "STORE", "dst"), ("LRANGE", "dst", "0", "-1"), ("TTL", "dst"),
    # In a script, as with STORE, a set's own order is no order: Redis sorts it ALPHA.
    ("EVAL", "return redis.call('SORT', KEYS[1], 'BY', 'nosort')", "1", "s"),
    ("EVAL", "return redis.call('SORT', KEYS[1], 'BY', 'nosort', 'DESC', 'LIMIT', 0, 3)", "1", "s"),
    ("ZADD", "z", "3", "c", "1", "a", "2", "b"), ("SORT", "z", "ALPHA"),
    ("SORT", "z", "BY", "nosort"), ("SORT", "z", "BY", "nosort", "DESC", "LIMIT", "1", "5"),
    ("SET", "dst", "x"), ("EXPIRE", "dst", "100"),
    ("SORT", "l", "STORE", "dst"), ("TYPE", "dst"), ("TTL", "dst"), ("LRANGE", "dst", "0", "-1"),
    ("SORT", "l", "GET", "o_*", "STORE", "dst"), ("LRANGE", "dst", "0", "-1"),
    ("SORT", "missing", "STORE", "dst"), ("EXISTS", "dst"), ("SORT", "missing"),
    ("SET", "str", "v"), ("SORT", "str"), ("SORT", "str", "BOGUS"),
    ("SORT_RO", "l"), ("SORT_RO", "l", "STORE", "dst"), ("SORT_RO", "l", "BY", "w_*", "GET", "#"),
    ("RPUSH", "bad", "1", "a"), ("SORT", "bad"), ("SORT", "bad", "ALPHA"),
    ("RPUSH", "sp", " 5", "", "0x10", "inf", "-inf"), ("SORT", "sp"),
    ("RPUSH", "nan", "nan"), ("SORT", "nan"),
    ("COMMAND", "GETKEYSANDFLAGS", "SORT", "k1", "STORE", "k2"),
    ("COMMAND", "GETKEYS", "SORT", "k1", "LIMIT", "0", "1", "GET", "STORE", "STORE", "k3"),
    ("COMMAND", "GETKEYS", "SORT_RO", "k1", "STORE", "k2"),
]


@needs_redis
@pytest.mark.parametrize("protocol", ["2", "3"])
def test_replies_are_redis_servers_bytes(make_node, redis_port, protocol):
    _node, port = _start(make_node, appendfsync="everysec")
    assert differing_replies({"redis": redis_port, "aofnode": port}, protocol, SORTS) == []


def test_sort_store_is_replayed_and_rewritten(make_node):
    node, port = _start(make_node, appendfsync="always")
    with redis.Redis(port=port, socket_timeout=5) as r:
        r.sadd("s", *[f"m{i}" for i in range(300)])
        r.mset({f"w_m{i}": (i * 7919) % 300 for i in range(300)})
        assert r.sort("s", by="w_*", store="out") == 300
        r.set("keep", "x")
        assert r.sort("nope", store="keep") == 0 and not r.exists("keep")
        before = r.lrange("out", 0, -1)
        # The BY keys change after the sort: a replay must not sort again.
        r.mset({f"w_m{i}": 0 for i in range(300)})
    assert node.stop() == 0
    node.start()
    _start_again(port)
    with redis.Redis(port=port, socket_timeout=5) as r:
        assert r.lrange("out", 0, -1) == before and not r.exists("keep")
        r.bgrewriteaof()
    with node.client() as c:
        wait_rewrites(c, 1)
    assert node.stop() == 0
    node.start()
    _start_again(port)
    with redis.Redis(port=port, socket_timeout=5) as r:
        assert r.lrange("out", 0, -1) == before


def test_the_zeromq_front_serves_sort(node):
    with node.client() as c:
        assert c.execute("RPUSH", "l", "3", "1", "2") == 3
        assert c.execute("SORT", "l", "DESC") == [b"3", b"2", b"1"]
        assert c.execute("SORT_RO", "l", "GET", "nope_*") == [None, None, None]
        assert c.execute("SORT", "l", "STORE", "d") == 3
        assert c.execute("LRANGE", "d", 0, -1) == [b"1", b"2", b"3"]
