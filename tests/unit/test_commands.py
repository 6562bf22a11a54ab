"""node/store/executor.py: Redis semantics, reply shapes, propagation, SCAN, INFO and replay."""

from __future__ import annotations

import random

import pytest

from tests.fakeclock import FakeClock

from aofnode.store.executor import Executor
from aofnode.store.keyspace import NUM_DBS, SHARDS
from aofnode.store.scan import MAX_SLICE_BITS, parse_cursor, scan_keys
from aofnode.protocol.errors import UNKNOWNCMD, Error
from aofnode.protocol.commands import COMMANDS

T0 = 1_700_000_000_000  # fake "now", unix ms
WRONGTYPE = Error("WRONGTYPE", "Operation against a key holding the wrong kind of value")
NOT_INT = Error("ERR", "value is not an integer or out of range")
OVERFLOW = Error("ERR", "increment or decrement would overflow")
SYNTAX = Error("ERR", "syntax error")
MAX = 2**63 - 1
MIN = -(2**63)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ex(clock: FakeClock) -> Executor:
    return Executor(clock_ms=clock)


def _b(arg) -> bytes:
    return arg if isinstance(arg, bytes) else str(arg).encode()


def run(ex: Executor, *commands, db: int = 0):
    """Execute ``("NAME", arg, ...)`` tuples in order; the reply of the last one."""
    reply = None
    for name, *args in commands:
        reply = ex.execute(db, name, [_b(a) for a in args])
    return reply


# --- semantics table: (setup commands, command, expected reply) -----------------------------
S = ("SET", "s", "hello")
H = ("HSET", "h", "f", "v", "g", "w")
SEMANTICS = [
    # connection
    ([], ("PING",), "PONG"),
    ([], ("PING", "hi"), b"hi"),
    ([], ("ECHO", "x y"), b"x y"),
    # strings
    ([], ("SET", "k", "v"), "OK"),
    ([S], ("GET", "s"), b"hello"),
    ([], ("GET", "missing"), None),
    ([H], ("GET", "h"), WRONGTYPE),
    ([S], ("GETDEL", "s"), b"hello"),
    ([S, ("GETDEL", "s")], ("EXISTS", "s"), 0),
    ([], ("GETDEL", "s"), None),
    ([H], ("GETDEL", "h"), WRONGTYPE),
    ([], ("SETNX", "k", "v"), 1),
    ([S], ("SETNX", "s", "v"), 0),
    ([S, ("SETNX", "s", "v")], ("GET", "s"), b"hello"),
    ([H], ("SETNX", "h", "v"), 0),
    ([], ("MSET", "a", "1", "b", "2"), "OK"),
    ([("MSET", "a", "1", "b", "2", "a", "3")], ("MGET", "a", "b", "c"), [b"3", b"2", None]),
    ([], ("MSET", "a", "1", "b"), Error("ARITY", "wrong number of arguments for 'mset' command")),
    ([S, H], ("MGET", "s", "h", "x"), [b"hello", None, None]),
    ([], ("APPEND", "k", "ab"), 2),
    ([S], ("APPEND", "s", " world"), 11),
    ([S, ("APPEND", "s", "!")], ("GET", "s"), b"hello!"),
    ([H], ("APPEND", "h", "x"), WRONGTYPE),
    ([S], ("STRLEN", "s"), 5),
    ([], ("STRLEN", "s"), 0),
    ([H], ("STRLEN", "h"), WRONGTYPE),
    ([], ("INCR", "n"), 1),
    ([("SET", "n", "41")], ("INCR", "n"), 42),
    ([("SET", "n", "41")], ("DECR", "n"), 40),
    ([("SET", "n", "10")], ("INCRBY", "n", "-15"), -5),
    ([("SET", "n", "10")], ("DECRBY", "n", "15"), -5),
    ([S], ("INCR", "s"), NOT_INT),
    ([H], ("INCR", "h"), WRONGTYPE),
    ([H], ("INCRBY", "h", "x"), NOT_INT),  # the increment is parsed before the key is looked up
    ([], ("INCRBY", "n", "1.5"), NOT_INT),
    # keys
    ([S, H], ("DEL", "s", "h", "x", "s"), 2),
    ([S], ("EXISTS", "s", "s", "x"), 2),
    ([S], ("TYPE", "s"), "string"),
    ([H], ("TYPE", "h"), "hash"),
    ([], ("TYPE", "x"), "none"),
    ([S], ("RENAME", "s", "t"), "OK"),
    ([S, ("RENAME", "s", "t")], ("MGET", "s", "t"), [None, b"hello"]),
    ([], ("RENAME", "s", "t"), Error("ERR", "no such key")),
    ([S], ("RENAME", "s", "s"), "OK"),
    ([S, ("RENAME", "s", "s")], ("GET", "s"), b"hello"),
    ([S, H, ("RENAME", "h", "s")], ("HGET", "s", "f"), b"v"),
    ([S], ("TTL", "s"), -1),
    ([], ("TTL", "s"), -2),
    ([], ("PTTL", "s"), -2),
    ([S], ("PERSIST", "s"), 0),
    ([], ("PERSIST", "s"), 0),
    ([S, ("EXPIRE", "s", "10")], ("PERSIST", "s"), 1),
    ([S, ("EXPIRE", "s", "10"), ("PERSIST", "s")], ("TTL", "s"), -1),
    ([S, H], ("DBSIZE",), 2),
    ([S, H], ("FLUSHDB",), "OK"),
    ([S, H, ("FLUSHDB", "async")], ("DBSIZE",), 0),
    ([], ("FLUSHDB", "now"), SYNTAX),
    ([], ("FLUSHDB", "SYNC", "ASYNC"), SYNTAX),
    ([], ("FLUSHALL", "x"), SYNTAX),
    ([S], ("FLUSHALL", "SYNC"), "OK"),
    # hashes
    ([], ("HSET", "h", "f", "v"), 1),
    ([H], ("HSET", "h", "f", "v2", "new", "x"), 1),
    ([], ("HSET", "h", "f"), Error("ARITY", "wrong number of arguments for 'hset' command")),
    ([S], ("HSET", "s", "f", "v"), WRONGTYPE),
    ([H], ("HGET", "h", "g"), b"w"),
    ([H], ("HGET", "h", "nope"), None),
    ([], ("HGET", "h", "f"), None),
    ([S], ("HGET", "s", "f"), WRONGTYPE),
    ([H], ("HMGET", "h", "g", "x", "f"), [b"w", None, b"v"]),
    ([], ("HMGET", "h", "a", "b"), [None, None]),
    ([S], ("HMGET", "s", "a"), WRONGTYPE),
    ([H], ("HDEL", "h", "f", "f", "x"), 1),
    ([H, ("HDEL", "h", "f", "g")], ("EXISTS", "h"), 0),
    ([], ("HDEL", "h", "f"), 0),
    ([S], ("HDEL", "s", "f"), WRONGTYPE),
    ([H], ("HGETALL", "h"), [b"f", b"v", b"g", b"w"]),
    ([], ("HGETALL", "h"), []),
    ([S], ("HGETALL", "s"), WRONGTYPE),
    ([H], ("HLEN", "h"), 2),
    ([], ("HLEN", "h"), 0),
    ([S], ("HLEN", "s"), WRONGTYPE),
    ([H], ("HEXISTS", "h", "f"), 1),
    ([H], ("HEXISTS", "h", "x"), 0),
    ([], ("HEXISTS", "h", "x"), 0),
    ([S], ("HEXISTS", "s", "x"), WRONGTYPE),
    ([H], ("HKEYS", "h"), [b"f", b"g"]),
    ([H], ("HVALS", "h"), [b"v", b"w"]),
    ([], ("HKEYS", "h"), []),
    ([], ("HVALS", "h"), []),
    ([S], ("HKEYS", "s"), WRONGTYPE),
    ([S], ("HVALS", "s"), WRONGTYPE),
    ([], ("HINCRBY", "h", "n", "5"), 5),
    ([("HSET", "h", "n", "-7")], ("HINCRBY", "h", "n", "5"), -2),
    ([H], ("HINCRBY", "h", "f", "1"), Error("ERR", "hash value is not an integer")),
    ([H], ("HINCRBY", "h", "n", "x"), NOT_INT),
    ([S], ("HINCRBY", "s", "n", "1"), WRONGTYPE),
    ([("HSET", "h", "n", str(MAX))], ("HINCRBY", "h", "n", "1"), OVERFLOW),
]


@pytest.mark.parametrize("setup, command, expected", SEMANTICS,
                         ids=[" ".join(c) for _, c, _ in SEMANTICS])
def test_semantics(ex: Executor, setup, command, expected) -> None:
    run(ex, *setup)
    assert run(ex, command) == expected


# --- integers --------------------------------------------------------------------------------
@pytest.mark.parametrize("stored, command, expected", [
    (str(MAX - 1), ("INCR", "n"), MAX),
    (str(MAX), ("INCR", "n"), OVERFLOW),
    (str(MIN), ("DECR", "n"), OVERFLOW),
    (str(MIN + 1), ("DECR", "n"), MIN),
    ("1", ("INCRBY", "n", str(MAX)), OVERFLOW),
    ("-1", ("INCRBY", "n", str(MIN)), OVERFLOW),
    ("0", ("INCRBY", "n", str(MIN)), MIN),
    ("0", ("DECRBY", "n", str(MIN)), Error("ERR", "decrement would overflow")),
    ("0", ("INCRBY", "n", str(MAX + 1)), NOT_INT),
    ("0", ("INCRBY", "n", "+1"), NOT_INT),
    (str(MIN), ("INCR", "n"), MIN + 1),
    (str(MAX + 1), ("INCR", "n"), NOT_INT),
    (" 1", ("INCR", "n"), NOT_INT),
    ("1 ", ("INCR", "n"), NOT_INT),
    ("+1", ("INCR", "n"), NOT_INT),
    ("01", ("INCR", "n"), NOT_INT),
    ("-0", ("INCR", "n"), NOT_INT),
    ("1_000", ("INCR", "n"), NOT_INT),
    ("", ("INCR", "n"), NOT_INT),
    ("-", ("INCR", "n"), NOT_INT),
    ("0x10", ("INCR", "n"), NOT_INT),
    ("1e3", ("INCR", "n"), NOT_INT),
    ("0", ("INCR", "n"), 1),
    ("-1", ("INCR", "n"), 0),
])
def test_integer_edge_cases(ex: Executor, stored, command, expected) -> None:
    run(ex, ("SET", "n", stored))
    assert run(ex, command) == expected
    if isinstance(expected, Error):
        assert run(ex, ("GET", "n")) == stored.encode()  # a failed INCR changes nothing


# --- SET options -----------------------------------------------------------------------------
INVALID_SET = Error("ERR", "invalid expire time in 'set' command")


@pytest.mark.parametrize("setup, command, reply, value, pttl", [
    ([], ("SET", "k", "v", "NX"), "OK", b"v", -1),
    ([("SET", "k", "old")], ("SET", "k", "v", "NX"), None, b"old", -1),
    ([], ("SET", "k", "v", "XX"), None, None, -2),
    ([("SET", "k", "old")], ("SET", "k", "v", "xx"), "OK", b"v", -1),
    ([], ("SET", "k", "v", "NX", "XX"), SYNTAX, None, -2),
    ([], ("SET", "k", "v", "XX", "NX"), SYNTAX, None, -2),
    ([], ("SET", "k", "v", "NX", "NX"), "OK", b"v", -1),
    ([], ("SET", "k", "v", "FOO"), SYNTAX, None, -2),
    ([("SET", "k", "old")], ("SET", "k", "v", "GET"), b"old", b"v", -1),
    ([], ("SET", "k", "v", "GET"), None, b"v", -1),
    ([("HSET", "k", "f", "x")], ("SET", "k", "v", "GET"), WRONGTYPE, None, -1),
    ([("SET", "k", "old")], ("SET", "k", "v", "NX", "GET"), b"old", b"old", -1),
    ([], ("SET", "k", "v", "XX", "GET"), None, None, -2),
    ([("HSET", "k", "f", "x")], ("SET", "k", "v"), "OK", b"v", -1),
    ([], ("SET", "k", "v", "EX", "10"), "OK", b"v", 10_000),
    ([], ("SET", "k", "v", "px", "1500"), "OK", b"v", 1500),
    ([], ("SET", "k", "v", "EXAT", str(T0 // 1000 + 20)), "OK", b"v", 20_000),
    ([], ("SET", "k", "v", "PXAT", str(T0 + 77)), "OK", b"v", 77),
    ([], ("SET", "k", "v", "EX", "1", "EX", "2"), "OK", b"v", 2000),
    ([], ("SET", "k", "v", "EX", "1", "PX", "2"), SYNTAX, None, -2),
    ([], ("SET", "k", "v", "EX"), SYNTAX, None, -2),
    ([], ("SET", "k", "v", "EX", "1", "KEEPTTL"), SYNTAX, None, -2),
    ([], ("SET", "k", "v", "KEEPTTL", "PX", "5"), SYNTAX, None, -2),
    ([], ("SET", "k", "v", "EX", "0"), INVALID_SET, None, -2),
    ([], ("SET", "k", "v", "PX", "-5"), INVALID_SET, None, -2),
    ([], ("SET", "k", "v", "EX", str(MAX // 1000 + 1)), INVALID_SET, None, -2),
    ([], ("SET", "k", "v", "PX", str(MAX)), INVALID_SET, None, -2),
    ([], ("SET", "k", "v", "PXAT", str(MAX)), "OK", b"v", MAX - T0),
    ([], ("SET", "k", "v", "EX", "ten"), NOT_INT, None, -2),
    ([("SET", "k", "old", "EX", "100")], ("SET", "k", "v", "KEEPTTL"), "OK", b"v", 100_000),
    ([("SET", "k", "old", "EX", "100")], ("SET", "k", "v"), "OK", b"v", -1),
    ([("SET", "k", "old")], ("SET", "k", "v", "PXAT", str(T0)), "OK", None, -2),
    ([("SET", "k", "old")], ("SET", "k", "v", "PXAT", "1", "GET"), b"old", None, -2),
])
def test_set_options(ex: Executor, setup, command, reply, value, pttl) -> None:
    run(ex, *setup)
    assert run(ex, command) == reply
    if value is not None:
        assert run(ex, ("GET", "k")) == value
    assert run(ex, ("PTTL", "k")) == pttl


# --- EXPIRE family ---------------------------------------------------------------------------
@pytest.mark.parametrize("setup, command, reply, pttl", [
    ([S], ("EXPIRE", "s", "10"), 1, 10_000),
    ([S], ("PEXPIRE", "s", "10"), 1, 10),
    ([S], ("EXPIREAT", "s", str(T0 // 1000 + 3)), 1, 3000),
    ([S], ("PEXPIREAT", "s", str(T0 + 3)), 1, 3),
    ([], ("EXPIRE", "s", "10"), 0, -2),
    ([S], ("EXPIRE", "s", "0"), 1, -2),
    ([S], ("EXPIRE", "s", "-1"), 1, -2),
    ([S], ("PEXPIREAT", "s", str(T0)), 1, -2),
    ([S], ("EXPIRE", "s", "x"), NOT_INT, -1),
    ([S], ("EXPIRE", "s", str(MAX // 1000 + 1)),
     Error("ERR", "invalid expire time in 'expire' command"), -1),
    ([S], ("PEXPIRE", "s", str(MAX - T0 + 1)),
     Error("ERR", "invalid expire time in 'pexpire' command"), -1),
    ([S], ("PEXPIREAT", "s", str(MAX)), 1, MAX - T0),
    ([S], ("EXPIRE", "s", "10", "NX"), 1, 10_000),
    ([S, ("EXPIRE", "s", "5")], ("EXPIRE", "s", "10", "NX"), 0, 5000),
    ([S], ("EXPIRE", "s", "10", "XX"), 0, -1),
    ([S, ("EXPIRE", "s", "5")], ("EXPIRE", "s", "10", "xx"), 1, 10_000),
    ([S], ("EXPIRE", "s", "10", "GT"), 0, -1),
    ([S, ("EXPIRE", "s", "5")], ("EXPIRE", "s", "10", "GT"), 1, 10_000),
    ([S, ("EXPIRE", "s", "5")], ("EXPIRE", "s", "5", "GT"), 0, 5000),
    ([S], ("EXPIRE", "s", "10", "LT"), 1, 10_000),
    ([S, ("EXPIRE", "s", "5")], ("EXPIRE", "s", "10", "LT"), 0, 5000),
    ([S, ("EXPIRE", "s", "5")], ("EXPIRE", "s", "2", "LT"), 1, 2000),
    ([S, ("EXPIRE", "s", "5")], ("EXPIRE", "s", "10", "XX", "GT"), 1, 10_000),
    ([S], ("EXPIRE", "s", "10", "NX", "XX"),
     Error("ERR", "NX and XX, GT or LT options at the same time are not compatible"), -1),
    ([S], ("EXPIRE", "s", "10", "GT", "LT"),
     Error("ERR", "GT and LT options at the same time are not compatible"), -1),
    ([S], ("EXPIRE", "s", "10", "YY"), Error("ERR", "Unsupported option YY"), -1),
    ([S], ("EXPIRE", "s", "x", "YY"), Error("ERR", "Unsupported option YY"), -1),
])
def test_expire_family(ex: Executor, setup, command, reply, pttl) -> None:
    run(ex, *setup)
    assert run(ex, command) == reply
    assert run(ex, ("PTTL", "s")) == pttl


@pytest.mark.parametrize("remaining_ms, ttl", [
    (10_000, 10), (9_501, 10), (9_500, 10), (9_499, 9), (1, 0), (499, 0), (500, 1),
])
def test_ttl_rounds_like_redis(ex: Executor, clock: FakeClock, remaining_ms, ttl) -> None:
    run(ex, ("SET", "k", "v", "PX", "10000"))
    clock.now += 10_000 - remaining_ms
    assert run(ex, ("PTTL", "k")) == remaining_ms
    assert run(ex, ("TTL", "k")) == ttl


def test_rename_moves_ttl_and_drops_destination_ttl(ex: Executor) -> None:
    run(ex, ("SET", "a", "1", "PX", "5000"), ("SET", "b", "2", "PX", "9000"))
    assert run(ex, ("RENAME", "a", "b")) == "OK"
    assert run(ex, ("PTTL", "b")) == 5000 and run(ex, ("PTTL", "a")) == -2
    run(ex, ("SET", "c", "3"), ("RENAME", "c", "b"))
    assert run(ex, ("PTTL", "b")) == -1


def test_emptied_hash_loses_its_ttl(ex: Executor) -> None:
    run(ex, ("HSET", "h", "f", "v"), ("EXPIRE", "h", "100"), ("HDEL", "h", "f"))
    run(ex, ("HSET", "h", "f", "v"))
    assert run(ex, ("TTL", "h")) == -1


def test_incr_and_append_keep_the_ttl(ex: Executor) -> None:
    run(ex, ("SET", "n", "1", "PX", "5000"), ("INCR", "n"), ("APPEND", "n", "0"))
    assert run(ex, ("GET", "n")) == b"20" and run(ex, ("PTTL", "n")) == 5000


# --- expiry with a fake clock ----------------------------------------------------------------
def test_lazy_expiry_on_access_propagates_del(ex: Executor, clock: FakeClock) -> None:
    run(ex, ("SET", "k", "v", "PX", "100"), ("HSET", "h", "f", "v"), ("PEXPIRE", "h", "100"))
    ex.take_propagated()
    clock.now += 100
    assert run(ex, ("GET", "k")) is None
    assert run(ex, ("HGET", "h", "f")) is None
    assert ex.take_propagated() == [[0, "DEL", b"k"], [0, "DEL", b"h"]]
    assert ex.expired_keys == 2
    assert run(ex, ("DBSIZE",)) == 0


def test_expired_key_then_write_logs_del_first(ex: Executor, clock: FakeClock) -> None:
    run(ex, ("SET", "k", "5", "PX", "100"))
    ex.take_propagated()
    clock.now += 200
    assert run(ex, ("INCR", "k")) == 1
    assert ex.take_propagated() == [[0, "DEL", b"k"], [0, "SET", b"k", b"1", b"KEEPTTL"]]


def test_active_cycle_deletes_and_propagates_del(ex: Executor, clock: FakeClock) -> None:
    run(ex, ("SET", "a", "v", "PX", "10"), ("SET", "b", "v", "PX", "20"), ("SET", "c", "v"))
    run(ex, ("SET", "d", "v", "PX", "10"), db=5)
    ex.take_propagated()
    clock.now += 15
    assert ex.active_expire_cycle() == 2
    assert sorted(ex.take_propagated()) == [[0, "DEL", b"a"], [5, "DEL", b"d"]]
    assert ex.expired_keys == 2
    assert run(ex, ("DBSIZE",)) == 2


def test_loading_mode_neither_expires_nor_propagates(ex: Executor, clock: FakeClock) -> None:
    run(ex, ("SET", "k", "v", "PX", "10"))
    ex.take_propagated()
    ex.loading = True
    clock.now += 1000
    assert run(ex, ("GET", "k")) == b"v"
    assert ex.active_expire_cycle(10.0) == 0
    assert run(ex, ("SET", "x", "1", "PXAT", str(T0)), ("GET", "x")) == b"1"  # past PXAT kept
    assert run(ex, ("PEXPIREAT", "k", "5")) == 1
    assert run(ex, ("INCR", "n"), ("DEL", "x")) == 1
    assert ex.take_propagated() == [] and ex.expired_keys == 0
    ex.loading = False
    assert run(ex, ("GET", "k")) is None
    assert ex.take_propagated() == [[0, "DEL", b"k"]]


def test_keys_and_exists_hide_expired_keys(ex: Executor, clock: FakeClock) -> None:
    run(ex, ("SET", "a", "v", "PX", "10"), ("SET", "b", "v"))
    clock.now += 10
    assert run(ex, ("KEYS", "*")) == [b"b"]
    assert run(ex, ("EXISTS", "a", "b")) == 1
    assert run(ex, ("TTL", "a")) == -2


# --- propagation -----------------------------------------------------------------------------
P = T0 + 10_000  # the absolute time of a 10 s TTL


@pytest.mark.parametrize("setup, command, entries", [
    ([], ("SET", "k", "v"), [["SET", b"k", b"v"]]),
    ([], ("SET", "k", "v", "EX", "10"), [["SET", b"k", b"v", b"PXAT", b"%d" % P]]),
    ([], ("SET", "k", "v", "PX", "10000", "NX", "GET"), [["SET", b"k", b"v", b"PXAT", b"%d" % P]]),
    ([], ("SET", "k", "v", "EXAT", str(P // 1000)), [["SET", b"k", b"v", b"PXAT", b"%d" % P]]),
    ([], ("SET", "k", "v", "KEEPTTL"), [["SET", b"k", b"v"]]),
    ([("SET", "k", "o", "EX", "10")], ("SET", "k", "v", "KEEPTTL"),
     [["SET", b"k", b"v", b"KEEPTTL"]]),
    ([("SET", "k", "o")], ("SET", "k", "v", "NX"), []),
    ([], ("SET", "k", "v", "XX"), []),
    ([("SET", "k", "o")], ("SET", "k", "v", "PXAT", "1"), [["DEL", b"k"]]),
    ([], ("SET", "k", "v", "PXAT", "1"), []),
    ([], ("SETNX", "k", "v"), [["SET", b"k", b"v"]]),
    ([("SET", "k", "o")], ("SETNX", "k", "v"), []),
    ([], ("MSET", "a", "1", "b", "2"), [["MSET", b"a", b"1", b"b", b"2"]]),
    ([], ("APPEND", "k", "x"), [["APPEND", b"k", b"x"]]),
    ([], ("INCR", "n"), [["SET", b"n", b"1", b"KEEPTTL"]]),
    ([], ("DECRBY", "n", "5"), [["SET", b"n", b"-5", b"KEEPTTL"]]),
    ([("SET", "n", "x")], ("INCR", "n"), []),
    ([S], ("GETDEL", "s"), [["DEL", b"s"]]),
    ([], ("GETDEL", "s"), []),
    ([S], ("DEL", "x", "s", "s"), [["DEL", b"s"]]),
    ([], ("DEL", "x"), []),
    ([S], ("EXPIRE", "s", "10"), [["PEXPIREAT", b"s", b"%d" % P]]),
    ([S], ("PEXPIRE", "s", "10000", "NX"), [["PEXPIREAT", b"s", b"%d" % P]]),
    ([S], ("EXPIREAT", "s", str(P // 1000)), [["PEXPIREAT", b"s", b"%d" % P]]),
    ([S], ("EXPIRE", "s", "10", "XX"), []),
    ([], ("EXPIRE", "s", "10"), []),
    ([S], ("EXPIRE", "s", "-10"), [["DEL", b"s"]]),
    ([S], ("PERSIST", "s"), []),
    ([S, ("EXPIRE", "s", "10")], ("PERSIST", "s"), [["PERSIST", b"s"]]),
    ([S], ("RENAME", "s", "t"), [["RENAME", b"s", b"t"]]),
    ([S], ("RENAME", "s", "s"), []),
    ([], ("HSET", "h", "f", "1", "g", "2"), [["HSET", b"h", b"f", b"1", b"g", b"2"]]),
    ([H], ("HDEL", "h", "x", "f", "f"), [["HDEL", b"h", b"f"]]),
    ([H], ("HDEL", "h", "x"), []),
    ([H], ("HINCRBY", "h", "n", "3"), [["HSET", b"h", b"n", b"3"]]),
    ([S, H], ("GET", "s"), []),
    ([], ("FLUSHDB",), [["FLUSHDB"]]),
])
def test_propagated_canonical_forms(ex: Executor, setup, command, entries) -> None:
    run(ex, *setup, db=3)
    ex.take_propagated()
    run(ex, command, db=3)
    assert ex.take_propagated() == [[3, *entry] for entry in entries]


def test_flushall_is_logged_in_db0(ex: Executor) -> None:
    run(ex, ("SET", "a", "1"), db=7)
    ex.take_propagated()
    run(ex, ("FLUSHALL",), db=7)
    assert ex.take_propagated() == [[0, "FLUSHALL"]]
    assert all(ex.keyspace.dbsize(db) == 0 for db in range(NUM_DBS))


def test_take_propagated_empties_the_queue(ex: Executor) -> None:
    run(ex, ("SET", "a", "1"))
    assert len(ex.take_propagated()) == 1
    assert ex.take_propagated() == []


# --- KEYS (the glob table is in tests/integration/test_pattern.py) -----------------------------------
def test_keys_filters_by_glob(ex: Executor) -> None:
    run(ex, ("MSET", "user:1", "a", "user:2", "b", "item:1", "c"), ("HSET", "user:h", "f", "v"))
    assert sorted(run(ex, ("KEYS", "user:*"))) == [b"user:1", b"user:2", b"user:h"]
    assert sorted(run(ex, ("KEYS", "*:1"))) == [b"item:1", b"user:1"]
    assert run(ex, ("KEYS", "nothing*")) == []
    assert run(ex, ("KEYS", "*"), db=1) == []


# --- SCAN ------------------------------------------------------------------------------------
def scan_all(ex: Executor, *options, db: int = 0, between=None) -> list[bytes]:
    cursor, seen, calls = b"0", [], 0
    while True:
        reply = ex.execute(db, "SCAN", [cursor, *[_b(o) for o in options]])
        assert isinstance(reply, list), reply
        cursor, keys = reply
        assert isinstance(cursor, bytes) and cursor.isdigit()
        seen.extend(keys)
        calls += 1
        assert calls <= SHARDS * 2**MAX_SLICE_BITS  # every call moves on by one slice at least
        if cursor == b"0":
            return seen
        if between is not None:
            between(calls)


def test_scan_returns_every_key_once(ex: Executor) -> None:
    keys = [b"k%d" % i for i in range(1000)]
    for k in keys:
        run(ex, ("SET", k, "v"))
    seen = scan_all(ex, "COUNT", "7")
    assert sorted(seen) == sorted(keys)


def test_scan_while_keys_are_added_and_deleted(ex: Executor) -> None:
    stable = [b"stable%d" % i for i in range(300)]
    doomed = [b"doomed%d" % i for i in range(300)]
    for k in stable + doomed:
        run(ex, ("SET", k, "v"))

    def churn(call: int) -> None:
        run(ex, ("DEL", doomed[call]), ("SET", b"new%d" % call, "v"))

    seen = scan_all(ex, "COUNT", "10", between=churn)
    assert set(stable) <= set(seen)  # every key present throughout: at least once
    # Stateless cursors (scan.py) read each slice as it is when they reach it, so a key added
    # meanwhile may be returned (Redis allows either); the snapshot cursors never returned one.
    assert set(seen) <= set(stable) | set(doomed) | {b"new%d" % i for i in range(300)}


def test_scan_skips_deleted_and_expired_keys(ex: Executor, clock: FakeClock) -> None:
    # SCAN promises no order (the keyspace is sharded by hash): what the first call returns is
    # any one shard; the keys it has not reached yet are expired or deleted before the next.
    for i in range(50):
        run(ex, ("SET", b"live%d" % i, "v"), ("SET", b"ttl%d" % i, "v", "PX", "5"),
            ("SET", b"gone%d" % i, "v"))
    cursor, first = run(ex, ("SCAN", "0", "COUNT", "1"))
    assert first and cursor != b"0"
    clock.now += 5
    run(ex, *[("DEL", b"gone%d" % i) for i in range(50)])
    ex.take_propagated()
    rest = []
    while cursor != b"0":
        cursor, keys = run(ex, ("SCAN", cursor, "COUNT", "10"))
        rest += keys
    assert not [k for k in rest if k.startswith((b"ttl", b"gone"))]  # gone after the scan began
    assert {b"live%d" % i for i in range(50)} <= set(first + rest)  # present throughout
    reclaimed = ex.take_propagated()  # the scan looked the expired keys up: expired lazily
    assert reclaimed and all(e[1] == "DEL" and e[2].startswith(b"ttl") for e in reclaimed)


def test_scan_match_and_type(ex: Executor) -> None:
    run(ex, ("MSET", "s1", "a", "s2", "b", "x", "c"), ("HSET", "h1", "f", "v"))
    assert sorted(scan_all(ex, "MATCH", "s*", "COUNT", "2")) == [b"s1", b"s2"]
    assert sorted(scan_all(ex, "TYPE", "HASH")) == [b"h1"]
    assert sorted(scan_all(ex, "type", "string", "match", "*1")) == [b"s1"]
    assert scan_all(ex, "TYPE", "list") == []
    assert sorted(scan_all(ex, "MATCH", "*")) == [b"h1", b"s1", b"s2", b"x"]


@pytest.mark.parametrize("args, expected", [
    (("SCAN", "abc"), Error("ERR", "invalid cursor")),
    (("SCAN", " 1"), Error("ERR", "invalid cursor")),
    (("SCAN", str(2**64)), Error("ERR", "invalid cursor")),
    (("SCAN", "0", "COUNT", "0"), SYNTAX),
    (("SCAN", "0", "COUNT", "x"), NOT_INT),
    (("SCAN", "0", "COUNT"), SYNTAX),
    (("SCAN", "0", "BOGUS", "1"), SYNTAX),
    (("SCAN", "0", "MATCH"), SYNTAX),
    (("SCAN", "0"), [b"0", []]),
])
def test_scan_errors(ex: Executor, args, expected) -> None:
    assert run(ex, args) == expected


# Redis's parseScanCursorOrReply: strtoul(s, &end, 10), then "invalid cursor" if s starts with
# a space, if anything is left after the digits, or on ERANGE. strtoul takes a sign ("-1" wraps
# to 2**64-1), leading zeros, and stops at a NUL; converting nothing leaves end at the start, so
# "" is cursor 0 but "+" and "-" are invalid. (Issue 10: Redis accepts -1 and +0, we did not.)
@pytest.mark.parametrize("raw, cursor", [
    (b"0", 0), (b"+0", 0), (b"-0", 0), (b"", 0), (b"007", 7), (b"+42", 42),
    (b"-1", 2**64 - 1), (b"-18446744073709551615", 1), (b"18446744073709551615", 2**64 - 1),
    (b"5\x00junk", 5), (b"\x00", 0),
    (b" 1", None), (b"\t1", None), (b"1 ", None), (b"+", None), (b"-", None), (b"+-1", None),
    (b"0x10", None), (b"1e3", None), (b"abc", None), (b"18446744073709551616", None),
    (b"-18446744073709551616", None), (b"\xd9\xa1", None),
])
def test_scan_cursor_is_parsed_as_redis_does(raw: bytes, cursor: int | None) -> None:
    assert parse_cursor(raw) == cursor


@pytest.mark.parametrize("raw", [b"-1", b"+0", b"-0", b""])
def test_scan_accepts_signed_and_empty_cursors(ex: Executor, raw: bytes) -> None:
    run(ex, ("SET", "a", "1"))
    reply = ex.execute(0, "SCAN", [raw])
    assert isinstance(reply, list) and reply[0] == b"0"
    assert reply[1] == ([] if raw == b"-1" else [b"a"])  # -1 is past the last shard: the end


def test_scan_keeps_no_state(ex: Executor) -> None:
    keys = {b"k%d" % i for i in range(3000)}
    for k in keys:
        run(ex, ("SET", k, "v"))
    cursor, first = run(ex, ("SCAN", "0", "COUNT", "20"))
    for _ in range(100):  # abandoned scans: nothing to keep, nothing to evict
        run(ex, ("SCAN", "0", "COUNT", "1"))
    assert run(ex, ("SCAN", cursor, "COUNT", "20")) == run(ex, ("SCAN", cursor, "COUNT", "20"))
    other = Executor(keyspace=ex.keyspace, clock_ms=ex.clock_ms)  # another executor: same scan
    seen = list(first)
    while cursor != b"0":
        cursor, more = run(other, ("SCAN", cursor, "COUNT", "20"))
        seen.extend(more)
    assert sorted(seen) == sorted(keys)


def test_scan_cursor_from_another_db_scans_that_db(ex: Executor) -> None:
    run(ex, *[("SET", b"a%d" % i, "1") for i in range(100)], db=0)
    run(ex, *[("SET", b"x%d" % i, "1") for i in range(100)], db=1)
    cursor, _ = run(ex, ("SCAN", "0", "COUNT", "1"), db=0)
    _, keys = run(ex, ("SCAN", cursor, "COUNT", "10"), db=1)
    # A cursor is a place in hash space, not a db's snapshot: in db 1 it goes on from there.
    assert keys and all(k.startswith(b"x") for k in keys)


def test_scan_work_per_call_is_about_count_or_one_shard(ex: Executor) -> None:
    for i in range(40_000):  # ~156 keys per shard: COUNT 10 cuts each shard into 16 slices
        ex.keyspace.set(0, b"k%d" % i, b"v")
    biggest = max(ex.keyspace.shard_size(0, i) for i in range(SHARDS))
    cursor, calls, seen = 0, 0, 0
    while True:
        cursor, keys = scan_keys(ex.keyspace, 0, cursor, 10)
        calls += 1
        seen += len(keys)
        assert len(keys) <= max(2 * 10, biggest // 2**MAX_SLICE_BITS + 30)
        if cursor == 0:
            break
    assert seen == 40_000 and calls <= SHARDS * 2**MAX_SLICE_BITS


def test_scan_arbitrary_cursors_are_harmless(ex: Executor) -> None:
    run(ex, *[("SET", b"k%d" % i, "1") for i in range(500)])
    rng = random.Random(3)
    for cursor in [2**64 - 1, 2**63, 1 << 16, 0xFFFF, 0xFF, 0x1F, 0x0F, 0x51, 0x4F] + [
            rng.getrandbits(rng.randrange(1, 65)) for _ in range(200)]:
        reply = run(ex, ("SCAN", b"%d" % cursor, "COUNT", "5"))
        assert isinstance(reply, list) and reply[0].isdigit()


@pytest.mark.parametrize("seed", range(6))
def test_scan_guarantee_under_random_writes_and_deletes(seed: int, clock: FakeClock) -> None:
    """Redis's guarantee: a key present from the first call to the last is returned. Between
    calls a random mix of inserts, deletes, re-inserts, overwrites, expiries and COUNT changes
    runs, enough to resize shard dicts and reorder nothing we rely on."""
    rng = random.Random(seed)
    ex = Executor(clock_ms=clock)
    stable = [b"stable:%d" % i for i in range(rng.choice([50, 2000, 20_000]))]
    churn = [b"churn:%d" % i for i in range(len(stable))]
    for k in stable + churn:
        ex.keyspace.set(0, k, b"v")
    ever = set(stable) | set(churn)
    cursor, seen, calls = b"0", [], 0
    while True:
        count = b"%d" % rng.choice([1, 5, 10, 100])
        cursor, keys = ex.execute(0, "SCAN", [cursor, b"COUNT", count])
        seen.extend(keys)
        calls += 1
        if cursor == b"0":
            break
        for _ in range(rng.randrange(60)):
            op, k = rng.random(), rng.choice(churn)
            if op < 0.3:
                ex.execute(0, "DEL", [k])
            elif op < 0.6:
                new = b"new:%d" % rng.randrange(10**6)
                ever.add(new)
                ex.execute(0, "SET", [new, b"v"])
            elif op < 0.8:
                ex.execute(0, "SET", [k, b"w"])  # re-insert (at the end of its dict) or overwrite
            elif op < 0.9:
                ex.execute(0, "SET", [rng.choice(stable), b"x"])  # overwrite: stays present
            else:
                ex.execute(0, "PEXPIRE", [k, b"1"])
        clock.now += 1
    assert set(stable) <= set(seen)
    assert set(seen) <= ever
    assert len(seen) == len(set(seen))  # scan.py never repeats a key (Redis may: not promised)
    assert calls <= SHARDS * 2**MAX_SLICE_BITS


# --- INFO ------------------------------------------------------------------------------------
def provider() -> dict[str, dict]:
    return {"server": {"redis_version": "7.0.0", "process_id": 42},
            "persistence": {"aof_enabled": 1},
            "stats": {"total_commands_processed": 9}}


def test_info_all_sections(clock: FakeClock) -> None:
    ex = Executor(clock_ms=clock, info_provider=provider)
    run(ex, ("SET", "a", "1", "PX", "1000"), ("SET", "b", "2", "PX", "3000"), ("SET", "c", "3"))
    run(ex, ("HSET", "h", "f", "v"), db=2)
    run(ex, ("GET", "a"), ("GET", "zz"), ("GET", "zz"))
    info = run(ex, ("INFO",))
    assert set(info) == {"server", "persistence", "stats", "memory", "keyspace"}
    assert info["server"]["process_id"] == 42
    assert info["stats"] == {"total_commands_processed": 9, "expired_keys": 0,
                             "keyspace_hits": 1, "keyspace_misses": 2, "evicted_keys": 0}
    assert info["memory"] == {"used_memory": ex.keyspace.used_memory, "maxmemory": 0,
                              "maxmemory_policy": "noeviction"}
    assert info["keyspace"] == {"db0": {"keys": 3, "expires": 2, "avg_ttl": 2000},
                                "db2": {"keys": 1, "expires": 0, "avg_ttl": 0}}
    for arg in ("default", "ALL", "everything"):
        assert run(ex, ("INFO", arg)) == info
    assert provider()["stats"] == {"total_commands_processed": 9}  # provider dict not mutated


@pytest.mark.parametrize("arg, sections", [
    ("keyspace", {"keyspace"}), ("STATS", {"stats"}), ("Server", {"server"}),
    ("nosuch", set()), ("clients", set()),
])
def test_info_one_section(arg, sections) -> None:
    ex = Executor(info_provider=provider)
    assert set(run(ex, ("INFO", arg))) == sections


def test_info_without_provider(ex: Executor, clock: FakeClock) -> None:
    run(ex, ("SET", "a", "1", "PX", "5"))
    clock.now += 5
    run(ex, ("GET", "a"))
    assert run(ex, ("INFO",)) == {
        "stats": {"expired_keys": 1, "keyspace_hits": 0, "keyspace_misses": 1, "evicted_keys": 0},
        "memory": {"used_memory": 0, "maxmemory": 0, "maxmemory_policy": "noeviction"},
        "keyspace": {}}


# --- dispatch --------------------------------------------------------------------------------
def test_executes_every_table_command_but_those_other_actors_own(ex: Executor) -> None:
    others = {"SELECT", "HELLO", "BGREWRITEAOF", "SAVE", "CONFIG", "SLOWLOG", "LATENCY", "DEBUG", "WATCH",
              "UNWATCH", "SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "PUBLISH", "PUBSUB",
              "SHUTDOWN", "MONITOR"}
    for name, spec in COMMANDS.items():
        reply = ex.execute(0, name, [b"1"] * (abs(spec.arity) - 1))
        unknown = isinstance(reply, Error) and reply.code == UNKNOWNCMD
        assert unknown == (name in others), (name, reply)


def test_unknown_command_is_an_error_reply(ex: Executor) -> None:
    reply = run(ex, ("NOPE", "x"))
    assert isinstance(reply, Error) and "unknown command" in reply.message


def test_missing_arguments_are_an_error_not_a_crash(ex: Executor) -> None:
    reply = ex.execute(0, "GET", [])
    assert isinstance(reply, Error) and "wrong number of arguments" in reply.message


# --- replay equivalence ----------------------------------------------------------------------
KEYS = [b"k%d" % i for i in range(8)] + [b"h%d" % i for i in range(4)]


def random_command(rng: random.Random, clock: FakeClock):
    k, k2 = rng.choice(KEYS), rng.choice(KEYS)
    v = b"%d" % rng.randrange(-5, 50)
    f = rng.choice([b"f1", b"f2", b"f3"])
    t = rng.randrange(1, 400)
    return rng.choice([
        ("SET", k, v), ("SET", k, v, b"PX", b"%d" % t), ("SET", k, v, b"EX", b"1", b"NX"),
        ("SET", k, v, b"XX", b"KEEPTTL"), ("SET", k, v, b"GET", b"PXAT", b"%d" % (clock.now + t)),
        ("SET", k, v, b"EXAT", b"1"), ("SETNX", k, v), ("MSET", k, v, k2, v), ("GETDEL", k),
        ("APPEND", k, v), ("INCR", k), ("DECRBY", k, v), ("INCRBY", k, b"%d" % 2**62),
        ("DEL", k, k2), ("RENAME", k, k2), ("EXPIRE", k, b"%d" % (t // 100)),
        ("PEXPIRE", k, b"%d" % t, rng.choice([b"NX", b"XX", b"GT", b"LT"])),
        ("PEXPIREAT", k, b"%d" % (clock.now + t - 100)), ("EXPIRE", k, b"-1"), ("PERSIST", k),
        ("HSET", k, f, v), ("HSET", k, f, v, b"f9", v), ("HDEL", k, f, b"f9"),
        ("HINCRBY", k, f, b"3"), ("GET", k), ("HGETALL", k), ("TTL", k), ("EXISTS", k),
        ("SCAN", b"0", b"COUNT", b"5"), ("KEYS", b"*"),
        ("FLUSHDB",) if rng.random() < 0.1 else ("GET", k),
        ("FLUSHALL",) if rng.random() < 0.03 else ("GET", k),
    ])


def _comparable(v):
    """A value in a form that compares by content: a list's two parts joined, a set's or a
    sorted set's dict sorted (its order is not part of the value)."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, list):
        return ("list", v[0][::-1] + v[1])
    if isinstance(v, tuple):
        return ("set" if len(v) == 1 else "zset", sorted(v[0].items()))
    return ("hash", sorted(v.items()))


def dump(ex: Executor) -> list:
    was = ex.loading
    ex.loading = True  # keys() and lookup() then also see keys whose TTL passed: compare all
    ks = ex.keyspace
    out = []
    try:
        for db in range(NUM_DBS):
            items = []
            for k in ks.keys(db):
                v = ks.lookup(db, k)
                items.append((k, _comparable(v), ks.get_expire(db, k)))
            out.append(sorted(items))
        return out
    finally:
        ex.loading = was


def replay_check(seed: int, make_command, prefixes: bool) -> tuple[list[list], Executor]:
    """Run 1,500 random commands (``make_command(rng, clock)``) in 3 dbs with time passing and
    active expiry, then replay what they propagated into a fresh keyspace: the same keyspace,
    and with ``prefixes`` also after random prefixes (a crash can happen anywhere)."""
    rng = random.Random(seed)
    clock = FakeClock()
    live = Executor(clock_ms=clock)
    log: list[list] = []
    for _ in range(1500):
        clock.now += rng.choice([0, 0, 1, 5, 50])
        name, *args = make_command(rng, clock)
        live.execute(rng.randrange(3), name, args)
        if rng.random() < 0.05:
            live.active_expire_cycle(1.0)
        log.extend(live.take_propagated())
        if prefixes and rng.random() < 0.02:
            assert dump(replay(log, clock)) == dump(live)
    assert dump(replay(log, clock)) == dump(live)
    return log, live


@pytest.mark.parametrize("seed", range(12))
def test_replaying_the_propagated_entries_rebuilds_the_keyspace(seed: int) -> None:
    log, _live = replay_check(seed, random_command, prefixes=True)
    assert all(isinstance(entry[0], int) and isinstance(entry[1], str) and
               all(isinstance(a, bytes) for a in entry[2:]) for entry in log)


def replay(log: list[list], clock: FakeClock) -> Executor:
    fresh = Executor(clock_ms=FakeClock(clock.now + 10**9))  # much later: nothing may expire
    fresh.loading = True
    for entry in log:
        reply = fresh.execute(entry[0], entry[1], entry[2:])
        assert not isinstance(reply, Error), (entry, reply)
    assert fresh.take_propagated() == []
    return fresh
