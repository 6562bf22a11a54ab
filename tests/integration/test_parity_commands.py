"""Issue 18's string, bit, hash and key commands on a real node: byte-identical RESP replies
against redis-server (RESP2 and RESP3), redis-py's helpers for them, and AOF replay and rewrite
of every new write across a restart. The differential tests skip without redis-server."""
from __future__ import annotations

import shutil

import pytest
import redis

from tests.integration.test_resp_differential import differing_replies
from tests.integration.test_resp_front import _start
from tests.integration.test_rewrite import wait_rewrites

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed")

STRINGS = [
    ("FLUSHALL",), ("SET", "s", "hello world"), ("GETEX", "s"), ("GETEX", "s", "EX", "100"),
    ("TTL", "s"), ("GETEX", "s", "PERSIST"), ("TTL", "s"), ("GETEX", "s", "EX", "0"),
    ("GETEX", "s", "EX", "x"), ("GETEX", "s", "BAD"), ("GETEX", "s", "EX"),
    ("GETEX", "nokey", "EX", "-1"), ("GETEX", "s", "PERSIST", "EX", "1"),
    ("GETEX", "s", "EX", "1", "PX", "1"), ("GETEX", "s", "EX", "10", "EX", "20"), ("TTL", "s"),
    ("GETEX", "s", "PXAT", "1"), ("EXISTS", "s"),
    ("SETEX", "e", "100", "v"), ("TTL", "e"), ("SETEX", "e", "0", "v"), ("SETEX", "e", "x", "v"),
    ("PSETEX", "e", "100000", "v"), ("PSETEX", "e", "-5", "v"),
    ("SETEX", "e", "9223372036854775807", "v"),
    ("GETSET", "g", "1"), ("GETSET", "g", "2"), ("HSET", "hh", "f", "v"), ("GETSET", "hh", "x"),
    ("MSETNX", "m1", "a", "m2", "b"), ("MSETNX", "m1", "a", "m3", "b"), ("MSETNX", "m1"),
    ("MSETNX", "x1", "a", "x1", "b"), ("GET", "x1"),
    ("SETRANGE", "r", "5", "abc"), ("GET", "r"), ("SETRANGE", "r", "0", "XY"),
    ("SETRANGE", "r", "-1", "a"), ("SETRANGE", "r", "1", ""), ("SETRANGE", "nope", "1", ""),
    ("SETRANGE", "r", "536870908", "world"), ("SETRANGE", "r", "9223372036854775807", "A"),
    ("SETRANGE", "r", "x", "a"), ("SETRANGE", "hh", "0", "a"),
    ("SET", "gr", "Hello World"), ("GETRANGE", "gr", "0", "3"), ("GETRANGE", "gr", "-3", "-1"),
    ("GETRANGE", "gr", "0", "-1"), ("GETRANGE", "gr", "10", "100"), ("GETRANGE", "gr", "-1", "-5"),
    ("GETRANGE", "gr", "5", "3"), ("GETRANGE", "nope", "0", "-1"),
    ("GETRANGE", "gr", "0", "4294967297"), ("GETRANGE", "gr", "x", "1"),
    ("SUBSTR", "gr", "0", "3"), ("SET", "num", "1234"), ("GETRANGE", "num", "0", "2"),
    ("INCRBYFLOAT", "f", "1.5"), ("INCRBYFLOAT", "f", "0.1"), ("INCRBYFLOAT", "f", "-1.6"),
    ("INCRBYFLOAT", "f", "x"), ("INCRBYFLOAT", "f", "+inf"), ("INCRBYFLOAT", "f", "1e5000"),
    ("SET", "sp", " 1"), ("INCRBYFLOAT", "sp", "1"), ("INCRBYFLOAT", "hh", "1"),
    ("INCRBYFLOAT", "f", "0x10"), ("INCRBYFLOAT", "f", "5.0e3"),
    ("INCRBYFLOAT", "f", "-0.000000000000000001"), ("SET", "z", "0"), ("INCRBYFLOAT", "z", "-0.0"),
    ("INCRBYFLOAT", "f", "17179869184"), ("INCRBYFLOAT", "f", "1e300"),
    ("SET", "l1", "ohmytext"), ("SET", "l2", "mynewtext"), ("LCS", "l1", "l2"),
    ("LCS", "l1", "l2", "LEN"), ("LCS", "l1", "l2", "IDX"), ("LCS", "l1", "l2", "IDX", "WITHMATCHLEN"),
    ("LCS", "l1", "l2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"), ("LCS", "l1", "l2", "LEN", "IDX"),
    ("LCS", "l1", "l2", "BAD"), ("LCS", "l1", "hh"), ("LCS", "nope", "l1"),
    ("LCS", "l1", "l2", "MINMATCHLEN", "x"),
]
BITS = [
    ("FLUSHALL",), ("HSET", "hh", "f", "v"),
    ("SETBIT", "b", "7", "1"), ("GET", "b"), ("SETBIT", "b", "7", "1"), ("SETBIT", "b", "100", "1"),
    ("SETBIT", "b", "4294967296", "1"), ("SETBIT", "b", "0", "-1"), ("SETBIT", "b", "0", "2"),
    ("SETBIT", "b", "-1", "1"), ("SETBIT", "hh", "0", "1"), ("GETBIT", "b", "7"),
    ("GETBIT", "b", "8"), ("GETBIT", "b", "100000"), ("GETBIT", "nope", "0"), ("GETBIT", "b", "-1"),
    ("SET", "bc", "foobar"), ("BITCOUNT", "bc"), ("BITCOUNT", "bc", "0", "0"),
    ("BITCOUNT", "bc", "1", "1"), ("BITCOUNT", "bc", "1", "1", "BYTE"),
    ("BITCOUNT", "bc", "5", "30", "BIT"), ("BITCOUNT", "bc", "-5", "-1", "BIT"),
    ("BITCOUNT", "bc", "1"), ("BITCOUNT", "bc", "0", "1", "XX"), ("BITCOUNT", "nope"),
    ("BITCOUNT", "bc", "-1", "-5"), ("BITCOUNT", "bc", "x", "1"),
    ("SET", "bp", b"\xff\xf0\x00"), ("BITPOS", "bp", "0"), ("BITPOS", "bp", "1"),
    ("BITPOS", "bp", "1", "2"), ("BITPOS", "bp", "0", "0", "0"), ("BITPOS", "bp", "0", "0", "-1"),
    ("BITPOS", "bp", "1", "7", "15", "BIT"), ("BITPOS", "bp", "0", "7", "15", "BIT"),
    ("BITPOS", "bp", "2"), ("BITPOS", "nope", "1"), ("BITPOS", "nope", "0"),
    ("SET", "ones", b"\xff\xff"), ("BITPOS", "ones", "0"), ("BITPOS", "ones", "0", "0", "-1"),
    ("BITPOS", "ones", "0", "1"), ("SET", "empty", ""), ("BITPOS", "empty", "0"),
    ("BITPOS", "bp", "1", "0", "1", "BAD"),
    ("SET", "o1", "abc"), ("SET", "o2", "a"), ("BITOP", "AND", "dst", "o1", "o2"), ("GET", "dst"),
    ("BITOP", "OR", "dst", "o1", "o2"), ("GET", "dst"), ("BITOP", "XOR", "dst", "o1", "o2"),
    ("GET", "dst"), ("BITOP", "NOT", "dst", "o1"), ("GET", "dst"),
    ("BITOP", "NOT", "dst", "o1", "o2"), ("BITOP", "BAD", "dst", "o1"),
    ("BITOP", "AND", "dst", "nope1", "nope2"), ("EXISTS", "dst"), ("BITOP", "AND", "dst", "o1", "hh"),
    ("BITFIELD", "bf", "SET", "i8", "0", "100", "GET", "u4", "0", "INCRBY", "i5", "100", "1",
     "GET", "u4", "0"),
    ("BITFIELD", "bf", "INCRBY", "u2", "100", "1", "OVERFLOW", "SAT", "INCRBY", "u2", "102", "1"),
    ("BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "i8", "0", "100"),
    ("BITFIELD", "bf", "OVERFLOW", "WRAP", "INCRBY", "i8", "0", "100"),
    ("BITFIELD", "bf", "SET", "u8", "#1", "255", "GET", "u8", "8"),
    ("BITFIELD", "bf", "GET", "u64", "0"), ("BITFIELD", "bf", "GET", "i64", "0"),
    ("BITFIELD", "bf", "GET", "x8", "0"), ("BITFIELD", "bf", "OVERFLOW", "BAD"),
    ("BITFIELD", "bf", "BAD"), ("BITFIELD", "bf", "GET", "i8"),
    ("BITFIELD", "bf", "SET", "u8", "0", "-1"),
    ("BITFIELD", "bf", "OVERFLOW", "SAT", "SET", "u8", "0", "-1"),
    ("BITFIELD", "bf", "OVERFLOW", "SAT", "SET", "i8", "0", "-1000"),
    ("BITFIELD_RO", "bf", "GET", "u8", "0"), ("BITFIELD_RO", "bf", "SET", "u8", "0", "1"),
    ("BITFIELD", "hh", "GET", "u8", "0"), ("BITFIELD", "bf"),
    ("BITFIELD", "bf", "SET", "i64", "0", "-9223372036854775808", "INCRBY", "i64", "0", "-1"),
    ("GET", "bf"),
]
HASHES_AND_KEYS = [
    ("FLUSHALL",),
    ("HMSET", "h", "a", "1", "b", "2"), ("HMSET", "h", "a"), ("HSETNX", "h", "a", "x"),
    ("HSETNX", "h", "c", "3"), ("HSETNX", "nh", "c", "3"), ("HGETALL", "nh"), ("HSTRLEN", "h", "a"),
    ("HSTRLEN", "h", "zz"), ("HSTRLEN", "nope", "a"), ("HSET", "h", "fl", "1.5"),
    ("HINCRBYFLOAT", "h", "fl", "0.1"), ("HINCRBYFLOAT", "h", "new", "2.5"),
    ("HINCRBYFLOAT", "h", "fl", "x"), ("HINCRBYFLOAT", "h", "fl", "inf"), ("HSET", "h", "sp", " 1"),
    ("HINCRBYFLOAT", "h", "sp", "1"), ("HINCRBYFLOAT", "nh2", "f", "1e3"), ("HGETALL", "nh2"),
    ("SET", "str", "x"), ("HINCRBYFLOAT", "str", "f", "1"), ("HSETNX", "str", "a", "b"),
    ("HSTRLEN", "str", "a"), ("HMSET", "str", "a", "b"),
    ("HRANDFIELD", "nope"), ("HRANDFIELD", "nope", "5"), ("HRANDFIELD", "h", "0"),
    ("HRANDFIELD", "h", "-9223372036854775808"),
    ("HRANDFIELD", "h", "-9223372036854770000", "WITHVALUES"), ("HRANDFIELD", "h", "5", "BAD"),
    ("HRANDFIELD", "h", "x"), ("HRANDFIELD", "h", "100"), ("HRANDFIELD", "h", "100", "WITHVALUES"),
    ("HRANDFIELD", "str"), ("HRANDFIELD", "str", "1"),
    ("HSCAN", "h", "0"), ("HSCAN", "h", "x"), ("HSCAN", "nope", "0"), ("HSCAN", "h", "0", "COUNT", "0"),
    ("HSCAN", "h", "0", "MATCH", "f*"), ("HSCAN", "h", "0", "TYPE", "string"),
    ("HSCAN", "h", "0", "COUNT"), ("HSCAN", "str", "0"), ("HSCAN", "nope", "0", "BAD"),
    ("SET", "k", "v"), ("RENAMENX", "k", "k2"), ("SET", "k", "v"), ("RENAMENX", "k", "k2"),
    ("RENAMENX", "k", "k"), ("RENAMENX", "zz", "k"),
    ("SET", "c", "v"), ("EXPIRE", "c", "1000"), ("COPY", "c", "c2"), ("TTL", "c2"), ("COPY", "c", "c2"),
    ("COPY", "c", "c2", "REPLACE"), ("COPY", "c", "c", "DB", "0"), ("COPY", "c", "c"),
    ("COPY", "c", "c", "DB", "1"), ("COPY", "c", "c", "DB", "16"), ("COPY", "c", "c", "DB", "x"),
    ("COPY", "c", "c", "BAD"), ("COPY", "c", "c", "DB"), ("COPY", "zz", "c3"), ("COPY", "h", "h2"),
    ("HGETALL", "h2"), ("HSET", "h2", "a", "changed"), ("HGET", "h", "a"),
    ("COPY", "c", "c", "DB", "99999999999"),
    ("MOVE", "c", "1"), ("MOVE", "c", "1"), ("MOVE", "c2", "0"), ("MOVE", "c2", "16"),
    ("MOVE", "c2", "x"), ("SELECT", "1"), ("TTL", "c"), ("GET", "c"), ("SELECT", "0"),
    ("SET", "c", "other"), ("MOVE", "c", "1"), ("MOVE", "zz", "1"),
    ("EXPIRETIME", "k2"), ("PEXPIRETIME", "k2"), ("EXPIRETIME", "zz"),
    ("PEXPIREAT", "k2", "9999999999500"), ("EXPIRETIME", "k2"), ("PEXPIRETIME", "k2"),
    ("UNLINK", "k2", "zz", "c2"), ("TOUCH", "h", "zz", "h"),
    ("SWAPDB", "0", "1"), ("GET", "c"), ("SWAPDB", "0", "1"), ("SWAPDB", "x", "1"),
    ("SWAPDB", "0", "x"), ("SWAPDB", "0", "16"), ("SWAPDB", "-1", "0"), ("SWAPDB", "0", "0"),
    ("FLUSHDB",), ("RANDOMKEY",), ("SET", "only", "1"), ("RANDOMKEY",), ("FLUSHALL",),
]
# Nothing differs in RESP3 either: the RESP front shapes HRANDFIELD's WITHVALUES reply as Redis's
# [field, value] pairs (protocol/resp_reply.py).
DIFFERENT_IN_RESP3: set[tuple[str, ...]] = set()


@needs_redis
@pytest.mark.parametrize("protocol", ["2", "3"])
@pytest.mark.parametrize("commands", [STRINGS, BITS, HASHES_AND_KEYS],
                         ids=["strings", "bits", "hashes-and-keys"])
def test_replies_are_redis_servers_bytes(make_node, redis_port, protocol, commands):
    _node, port = _start(make_node, appendfsync="everysec")
    different = DIFFERENT_IN_RESP3 if protocol == "3" else set()
    ports = {"redis": redis_port, "aofnode": port}
    assert differing_replies(ports, protocol, commands, different) == []


def test_redis_py_helpers(make_node):
    _node, port = _start(make_node, appendfsync="everysec")
    with redis.Redis(port=port, socket_timeout=5) as r:
        assert r.setex("k", 100, "v") and r.ttl("k") == 100
        assert r.getex("k", persist=True) == b"v" and r.ttl("k") == -1
        assert r.incrbyfloat("f", 10.5) == 10.5 and r.incrbyfloat("f", 0.1) == 10.6
        assert r.hsetnx("h", "a", 1) == 1 and r.hsetnx("h", "a", 2) == 0
        r.hset("big", mapping={f"f{i}": i for i in range(500)})
        assert dict(r.hscan_iter("big", count=50)) == {b"f%d" % i: b"%d" % i for i in range(500)}
        assert r.copy("h", "h2") == 1 and r.hgetall("h2") == {b"a": b"1"}
        assert r.touch("h", "nope") == 1 and r.unlink("h", "h2", "nope") == 2
        assert r.getset("k", "w") == b"v" and r.getrange("k", 0, 0) == b"w"
        assert r.setbit("b", 9, 1) == 0 and r.bitcount("b") == 1 and r.bitpos("b", 1) == 9
        seconds, micros = r.time()
        assert seconds > 1_600_000_000 and 0 <= micros < 1_000_000


# Writes of every new kind, in several dbs, each leaving something behind for the dump.
WRITES = [
    (0, ("SETEX", "sx", "1000", "v")), (0, ("PSETEX", "px", "900000", "v")),
    (0, ("SET", "g", "x", "EX", "500")), (0, ("GETSET", "g", "y")), (0, ("SET", "ge", "v")),
    (0, ("GETEX", "ge", "PX", "700000")), (0, ("MSETNX", "m1", "a", "m2", "b")),
    (0, ("SET", "r", "hello")), (0, ("EXPIRE", "r", "800")), (0, ("SETRANGE", "r", "10", "x")),
    (0, ("INCRBYFLOAT", "f", "10.5")), (0, ("INCRBYFLOAT", "f", "0.1")),
    (0, ("SETBIT", "b", "100", "1")), (0, ("SETBIT", "b", "3", "1")),
    (0, ("BITOP", "XOR", "bx", "b", "r")),
    (0, ("BITFIELD", "bf", "SET", "i8", "0", "-3", "INCRBY", "u4", "20", "7")),
    (0, ("HMSET", "h", "a", "1", "b", "2")), (0, ("HSETNX", "h", "c", "3")),
    (0, ("HINCRBYFLOAT", "h", "a", "0.25")), (0, ("PEXPIRE", "h", "600000")),
    (0, ("COPY", "h", "hc", "DB", "2")), (0, ("COPY", "r", "rc")), (0, ("SET", "mv", "v")),
    (0, ("EXPIRE", "mv", "300")), (0, ("MOVE", "mv", "3")), (0, ("SET", "rn", "v")),
    (0, ("RENAMENX", "rn", "rn2")), (0, ("SET", "gone", "v")), (0, ("UNLINK", "gone")),
    (1, ("SET", "one", "1")), (1, ("HSET", "h1", "f", "v")), (0, ("SWAPDB", "1", "4")),
    (4, ("INCRBYFLOAT", "one", "1.5")), (2, ("HINCRBYFLOAT", "hc", "z", "1e3")),
]


def dump_keyspace(r: redis.Redis) -> dict:
    """Every key of every db with its type, value and absolute expire time (ms)."""
    out = {}
    for db in range(16):
        r.execute_command("SELECT", db)
        for key in r.keys("*"):
            kind = r.type(key)
            value = r.get(key) if kind == b"string" else sorted(r.hgetall(key).items())
            out[(db, key)] = (kind, value, r.pexpiretime(key))
    r.execute_command("SELECT", 0)
    return out


def test_aof_replay_and_rewrite_rebuild_every_new_write(make_node):
    node, port = _start(make_node, appendfsync="always")
    with redis.Redis(port=port, socket_timeout=5, single_connection_client=True) as r:
        for db, command in WRITES:
            r.execute_command("SELECT", db)
            r.execute_command(*command)
        before = dump_keyspace(r)
    assert len(before) >= 15 and (4, b"one") in before and (3, b"mv") in before
    assert before[(0, b"f")][1] == b"10.6"
    assert node.stop() == 0
    node.start()
    _start_again(port)
    with redis.Redis(port=port, socket_timeout=5, single_connection_client=True) as r:
        assert dump_keyspace(r) == before
        r.bgrewriteaof()
    with node.client() as c:
        wait_rewrites(c, 1)
    assert node.stop() == 0
    node.start()
    _start_again(port)
    with redis.Redis(port=port, socket_timeout=5, single_connection_client=True) as r:
        assert dump_keyspace(r) == before


def _start_again(port: int) -> None:
    from tests.integration.test_resp_front import _wait_resp
    _wait_resp(port)


def test_the_zeromq_front_serves_the_new_commands(node):
    with node.client() as c:
        assert c.execute("SET", "a", "ohmytext") == "OK" and c.execute("SET", "b", "mynewtext")
        assert c.execute("LCS", "a", "b", "IDX", "MINMATCHLEN", 4) == {
            "matches": [[[4, 7], [5, 8]]], "len": 6}
        assert c.execute("BITFIELD", "bf", "SET", "i8", 0, -3, "GET", "u8", 0) == [0, 253]
        assert c.execute("INCRBYFLOAT", "f", "10.5") == b"10.5"
        assert c.execute("HSETNX", "h", "f", 1) == 1
        assert c.execute("HSCAN", "h", 0) == [b"0", [b"f", b"1"]]
        payload = c.execute("DUMP", "h")
        assert c.execute("RESTORE", "h2", 0, payload) == "OK"
        assert c.execute("HGETALL", "h2") == [b"f", b"1"]
        assert c.execute("SWAPDB", 0, 5) == "OK" and c.execute("DBSIZE") == 0
        seconds, micros = c.execute("TIME")
        assert int(seconds) > 1_600_000_000 and 0 <= int(micros) < 1_000_000
