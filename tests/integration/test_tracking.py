"""CLIENT TRACKING on a real node: invalidations as RESP3 pushes and through REDIRECT to a RESP2
subscriber, BCAST, OPTIN, NOLOOP, RESET and closed connections, the table's bound; the same
scenarios against redis-server 7.0 where it is installed (the messages compared as parsed)."""
from __future__ import annotations

import socket

import pytest
import redis

from aofnode.bench.resp import ReplyParser, encode_command
from tests.integration.test_resp_front import _start
from tests.nodeproc import wait_for


class Raw:
    """A raw RESP connection: what it sends, and each reply or push as it comes."""

    def __init__(self, port: int, resp3: bool = False) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.parser = ReplyParser()
        self.ready: list = []
        self.raw = b""
        if resp3:
            assert self.call("HELLO", "3")[b"proto"] == 3

    def send(self, *args) -> None:
        self.sock.sendall(encode_command(*args))

    def read(self):
        while not self.ready:
            data = self.sock.recv(65536)
            assert data, "connection closed"
            self.raw += data
            self.parser.feed(data)
            self.ready += self.parser.replies()
        return self.ready.pop(0)

    def call(self, *args):
        self.send(*args)
        return self.read()

    def client_id(self) -> int:
        return self.call("CLIENT", "ID")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def port(make_node):
    return _start(make_node)[1]


def _default_mode_resp3(port: int) -> list:
    """A RESP3 client reads a key, another changes it: the reader gets one push, after the
    replies it asked for; a key it did not read gives nothing."""
    c, other = Raw(port, resp3=True), redis.Redis(port=port, protocol=2)
    other.set("a", 1)
    other.set("b", 1)
    got = [c.call("CLIENT", "TRACKING", "on"), c.call("GET", "a")]
    other.incr("b")
    other.incr("a")
    got.append(c.read())  # the push
    got.append(c.call("GET", "a"))
    got.append(c.call("SET", "a", "2"))  # its own write: the reply, then the push
    got.append(c.read())
    got.append(c.call("CLIENT", "TRACKINGINFO"))
    got.append(c.call("CLIENT", "GETREDIR"))
    c.close()
    return got


def _redirect_resp2(port: int) -> list:
    """RESP2: invalidations go to a client subscribed to __redis__:invalidate; FLUSHALL sends
    null; a closed target makes the redirect broken."""
    target = Raw(port)
    tid = target.client_id()
    got = [target.call("SUBSCRIBE", "__redis__:invalidate")]
    c, other = Raw(port), redis.Redis(port=port, protocol=2)
    got.append(c.call("CLIENT", "TRACKING", "on", "REDIRECT", tid))
    got.append(c.call("CLIENT", "GETREDIR") == tid)
    c.call("MGET", "x", "y")
    other.set("y", 1)
    got.append(target.read())
    other.flushall()
    got.append(target.read())
    got.append(c.call("CLIENT", "TRACKING", "on", "REDIRECT", 999999))
    got.append(c.call("CLIENT", "TRACKING", "on", "PREFIX", "p"))
    got.append(c.call("CLIENT", "CACHING", "yes"))
    got.append(c.call("CLIENT", "TRACKING", "maybe"))
    c.close()
    target.close()
    return got


def _bcast_optin_noloop(port: int) -> list:
    c, other = Raw(port, resp3=True), redis.Redis(port=port, protocol=2)
    got = [c.call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a:", "PREFIX", "b:", "NOLOOP")]
    got.append(c.call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a:x"))
    other.mset({"a:1": 1, "c:1": 1})
    push = c.read()
    got.append(push)
    c.call("SET", "b:mine", 1)  # NOLOOP: no push for its own change
    other.set("b:2", 1)
    got.append(c.read())
    got.append(c.call("CLIENT", "TRACKINGINFO"))
    got.append(c.call("CLIENT", "TRACKING", "off"))
    got.append(c.call("CLIENT", "TRACKING", "on", "OPTIN"))
    c.call("GET", "k1")  # not cached: no CACHING yes before it
    got.append(c.call("CLIENT", "CACHING", "yes"))
    c.call("GET", "k2")
    other.set("k1", 1)
    other.set("k2", 1)
    got.append(c.read())
    c.close()
    return got


def _scripts(port: int) -> list:
    """A script that reads has its declared keys remembered (not the keys it read)."""
    c, other = Raw(port, resp3=True), redis.Redis(port=port, protocol=2)
    got = [c.call("CLIENT", "TRACKING", "on")]
    got.append(c.call("EVAL", "return redis.call('set', KEYS[1], 'x')", 1, "s1"))  # no read
    got.append(c.call("EVAL", "return redis.call('get', 'zz')", 2, "s2", "s3"))
    other.mset({"s1": 1, "s2": 1, "s3": 1, "zz": 1})
    got += [c.read(), c.read(), c.call("PING")]
    c.close()
    return got


def _eviction_resp3(port: int) -> list:
    """A key evicted before a command runs is invalidated before that command's reply (the
    reply reflects the keyspace without it), as Redis does. Not compared with redis-server:
    its memory accounting (client buffers, the tracking table) decides which command evicts."""
    c, other = Raw(port, resp3=True), redis.Redis(port=port, protocol=2)
    memory = other.info("memory")
    limit = memory["used_memory"] - memory.get("mem_not_counted_for_evict", 0) + 100 * 1024
    got = [c.call("CLIENT", "TRACKING", "on"), c.call("CONFIG", "SET", "maxmemory", str(limit)),
           c.call("CONFIG", "SET", "maxmemory-policy", "volatile-random"),
           c.call("SETEX", "volatile-key", "10000", "x"), c.call("GET", "volatile-key"),
           c.call("SETBIT", "big-key", "1600000", "0")]  # ~200 KB: over the limit from now on
    c.send("GETBIT", "big-key", "0")  # evicts volatile-key before it runs
    got += [c.read(), c.read()]
    got.append(c.call("EXISTS", "volatile-key"))
    other.config_set("maxmemory", 0)
    other.config_set("maxmemory-policy", "noeviction")
    c.close()
    return got


@pytest.mark.parametrize("scenario", [_default_mode_resp3, _redirect_resp2, _bcast_optin_noloop,
                                      _scripts])
def test_as_redis_does(port, redis_port, scenario):
    assert scenario(port) == scenario(redis_port)


def test_the_invalidation_is_a_resp3_push(port):
    c = Raw(port, resp3=True)
    c.call("CLIENT", "TRACKING", "on")
    c.call("GET", "k")
    redis.Redis(port=port).set("k", 1)
    assert c.read() == [b"invalidate", [b"k"]]
    assert c.raw.endswith(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n")


def test_an_evicted_key_is_invalidated_before_the_reply_of_the_command_that_evicted_it(port):
    got = _eviction_resp3(port)
    assert got[6:] == [[b"invalidate", [b"volatile-key"]], 0, 0]


def _stat(port: int, field: str) -> int:
    return int(redis.Redis(port=port).info()[field])


def test_reset_and_close_end_tracking(port):
    c = Raw(port, resp3=True)
    c.call("CLIENT", "TRACKING", "on")
    c.call("GET", "k")
    assert _stat(port, "tracking_clients") == 1 and _stat(port, "tracking_total_keys") == 1
    assert c.call("RESET") == "RESET"
    wait_for(lambda: _stat(port, "tracking_clients") == 0, what="RESET turned tracking off")
    assert c.call("CLIENT", "TRACKINGINFO")[:2] == [b"flags", [b"off"]]  # RESET: RESP2 again
    c.call("CLIENT", "TRACKING", "on")
    assert _stat(port, "tracking_clients") == 1
    c.close()
    wait_for(lambda: _stat(port, "tracking_clients") == 0, what="a closed tracker forgotten")


def test_the_table_is_bounded_and_evicted_keys_are_invalidated(port):
    r = redis.Redis(port=port)
    assert r.config_get("tracking-table-max-keys") == {"tracking-table-max-keys": "1000000"}
    c = Raw(port, resp3=True)
    c.call("CLIENT", "TRACKING", "on")
    for i in range(10):
        c.call("GET", f"k{i}")
    assert _stat(port, "tracking_total_keys") == 10
    r.config_set("tracking-table-max-keys", 4)  # its cycle evicts the oldest, telling c
    evicted = [c.read() for _ in range(6)]
    assert evicted == [[b"invalidate", [b"k%d" % i]] for i in range(6)]  # oldest first
    assert c.call("GET", "k10") is None  # one more past the bound: the oldest goes, after it
    assert c.read() == [b"invalidate", [b"k6"]]
    assert _stat(port, "tracking_total_keys") == 4
    assert _stat(port, "tracking_table_max_keys") == 4


def test_zeromq_clients_are_refused_clearly(node):
    from aofnode.client import Client, CommandError
    with Client(node.endpoint, timeout=5) as z:
        with pytest.raises(CommandError, match="unknown command"):  # CLIENT is RESP's only
            z.execute("CLIENT", "TRACKING", "on")
