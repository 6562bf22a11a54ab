"""node/store/hashes.py (HMSET HSETNX HSTRLEN HINCRBYFLOAT HRANDFIELD HSCAN), keys.py
(UNLINK TOUCH EXPIRETIME PEXPIRETIME) and dbops.py (RENAMENX COPY MOVE SWAPDB RANDOMKEY TIME):
replies, errors, AOF forms, and replay of every new write on random workloads."""

from __future__ import annotations

import random
import time

import pytest

from tests.fakeclock import FakeClock
from tests.unit.test_commands import NOT_INT, SYNTAX, T0, WRONGTYPE, replay_check, run

from aofnode.protocol.errors import Error
from aofnode.store.executor import Executor
from aofnode.store.hashes import MAX_RANDOM_PICKS
from aofnode.store.scan import SMALL_HASH_FIELDS, scan_fields

S = ("SET", "s", "v")
H = ("HSET", "h", "a", "1", "b", "2")
SAME = Error("ERR", "source and destination objects are the same")
DB_RANGE = Error("ERR", "DB index is out of range")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ex(clock: FakeClock) -> Executor:
    return Executor(clock_ms=clock)


SEMANTICS = [
    # hashes
    ([], ("HMSET", "h", "a", "1", "b", "2"), "OK"),
    ([], ("HMSET", "h", "a", "1", "b"),
     Error("ARITY", "wrong number of arguments for 'hmset' command")),
    ([S], ("HMSET", "s", "a", "1"), WRONGTYPE),
    ([H], ("HSETNX", "h", "a", "x"), 0),
    ([H], ("HSETNX", "h", "c", "x"), 1),
    ([], ("HSETNX", "n", "c", "x"), 1),
    ([S], ("HSETNX", "s", "c", "x"), WRONGTYPE),
    ([H], ("HSTRLEN", "h", "a"), 1),
    ([H], ("HSTRLEN", "h", "zz"), 0),
    ([], ("HSTRLEN", "n", "a"), 0),
    ([("HSET", "h", "f", "10.5")], ("HINCRBYFLOAT", "h", "f", "0.1"), b"10.6"),
    ([], ("HINCRBYFLOAT", "h", "f", "2.5"), b"2.5"),
    ([("HSET", "h", "f", " 1")], ("HINCRBYFLOAT", "h", "f", "1"),
     Error("ERR", "hash value is not a float")),
    ([H], ("HINCRBYFLOAT", "h", "a", "x"), Error("ERR", "value is not a valid float")),
    ([H], ("HINCRBYFLOAT", "h", "a", "-inf"), Error("ERR", "value is NaN or Infinity")),
    ([("HSET", "h", "f", "inf")], ("HINCRBYFLOAT", "h", "f", "1"),
     Error("ERR", "increment would produce NaN or Infinity")),
    ([S], ("HINCRBYFLOAT", "s", "a", "1"), WRONGTYPE),
    ([], ("HRANDFIELD", "n"), None),
    ([], ("HRANDFIELD", "n", "3"), []),
    ([H], ("HRANDFIELD", "h", "0"), []),
    ([H], ("HRANDFIELD", "h", "5"), [b"a", b"b"]),
    ([H], ("HRANDFIELD", "h", "5", "WITHVALUES"), [b"a", b"1", b"b", b"2"]),
    ([H], ("HRANDFIELD", "h", "5", "BAD"), SYNTAX),
    ([H], ("HRANDFIELD", "h", "x"), NOT_INT),
    ([H], ("HRANDFIELD", "h", "-9223372036854775808"),
     Error("ERR", "value is out of range, value must between -9223372036854775807 and "
                  "9223372036854775807")),
    ([H], ("HRANDFIELD", "h", "-9223372036854770000", "WITHVALUES"),
     Error("ERR", "value is out of range")),
    ([S], ("HRANDFIELD", "s"), WRONGTYPE),
    ([H], ("HSCAN", "h", "0"), [b"0", [b"a", b"1", b"b", b"2"]]),
    ([H], ("HSCAN", "h", "0", "MATCH", "b*"), [b"0", [b"b", b"2"]]),
    ([H], ("HSCAN", "h", "x"), Error("ERR", "invalid cursor")),
    ([H], ("HSCAN", "h", "0", "COUNT", "0"), SYNTAX),
    ([H], ("HSCAN", "h", "0", "TYPE", "hash"), SYNTAX),
    ([], ("HSCAN", "n", "0", "BAD"), [b"0", []]),
    ([S], ("HSCAN", "s", "0"), WRONGTYPE),
    # keys
    ([S], ("UNLINK", "s", "zz", "s"), 1),
    ([S], ("TOUCH", "s", "zz", "s"), 2),
    ([S], ("EXPIRETIME", "s"), -1),
    ([], ("PEXPIRETIME", "s"), -2),
    ([("SET", "s", "v", "PXAT", T0 + 1500)], ("EXPIRETIME", "s"), (T0 + 1500 + 500) // 1000),
    ([("SET", "s", "v", "PXAT", T0 + 1500)], ("PEXPIRETIME", "s"), T0 + 1500),
    ([S], ("RENAMENX", "s", "t"), 1),
    ([S, ("SET", "t", "x")], ("RENAMENX", "s", "t"), 0),
    ([S], ("RENAMENX", "s", "s"), 0),
    ([], ("RENAMENX", "s", "t"), Error("ERR", "no such key")),
    ([S], ("COPY", "s", "t"), 1),
    ([S, ("SET", "t", "x")], ("COPY", "s", "t"), 0),
    ([S, ("SET", "t", "x")], ("COPY", "s", "t", "REPLACE"), 1),
    ([S], ("COPY", "s", "s"), SAME),
    ([S], ("COPY", "s", "s", "DB", "1"), 1),
    ([S], ("COPY", "s", "t", "DB", "16"), DB_RANGE),
    ([S], ("COPY", "s", "t", "DB", "x"), NOT_INT),
    ([S], ("COPY", "s", "t", "DB", "99999999999"),
     Error("ERR", "value is out of range, value must between -2147483648 and 2147483647")),
    ([S], ("COPY", "s", "t", "DB"), SYNTAX),
    ([], ("COPY", "s", "t"), 0),
    ([S], ("MOVE", "s", "1"), 1),
    ([S], ("MOVE", "s", "0"), SAME),
    ([S], ("MOVE", "s", "16"), DB_RANGE),
    ([], ("MOVE", "s", "1"), 0),
    ([], ("SWAPDB", "0", "1"), "OK"),
    ([], ("SWAPDB", "x", "1"), Error("ERR", "invalid first DB index")),
    ([], ("SWAPDB", "0", "99999999999"), Error("ERR", "invalid second DB index")),
    ([], ("SWAPDB", "0", "16"), DB_RANGE),
    ([], ("RANDOMKEY",), None),
    ([S], ("RANDOMKEY",), b"s"),
]


@pytest.mark.parametrize("setup, command, expected", SEMANTICS)
def test_semantics(ex: Executor, setup, command, expected) -> None:
    run(ex, *setup)
    assert run(ex, command) == expected


def test_copy_and_move_carry_the_ttl_and_copies_are_independent(ex: Executor) -> None:
    run(ex, ("HSET", "h", "f", "1"), ("PEXPIREAT", "h", T0 + 5000), ("COPY", "h", "h2", "DB", "3"))
    assert run(ex, ("PEXPIRETIME", "h2"), db=3) == T0 + 5000
    run(ex, ("HSET", "h2", "f", "changed"), db=3)
    assert run(ex, ("HGET", "h", "f")) == b"1"
    assert run(ex, ("MOVE", "h", "1")) == 1
    assert run(ex, ("PEXPIRETIME", "h"), db=1) == T0 + 5000
    assert run(ex, ("EXISTS", "h")) == 0
    assert ex.keyspace.used_memory == ex.keyspace.recount_memory()


@pytest.mark.parametrize("make, change, check, original", [
    (("RPUSH", "c", "1"), ("RPUSH", "c2", "2"), ("LLEN", "c"), 1),
    (("SADD", "c", "1"), ("SADD", "c2", "2"), ("SCARD", "c"), 1),
    (("ZADD", "c", "1", "m"), ("ZADD", "c2", "2", "n"), ("ZCARD", "c"), 1),
    (("ZADD", "c", "1", "m"), ("ZADD", "c2", "2", "m"), ("ZRANGE", "c", "0", "-1", "WITHSCORES"),
     [b"m", b"1"]),
])
def test_a_copied_collection_is_independent(ex: Executor, make, change, check, original) -> None:
    run(ex, make, ("COPY", "c", "c2"), change)
    assert run(ex, check) == original
    assert ex.keyspace.used_memory == ex.keyspace.recount_memory()


def test_move_refuses_when_the_target_db_has_the_key(ex: Executor) -> None:
    run(ex, S, ("SET", "s", "other"))
    run(ex, ("SET", "s", "there"), db=1)
    assert run(ex, ("MOVE", "s", "1")) == 0
    assert run(ex, ("GET", "s"), db=1) == b"there"


def test_swapdb_exchanges_data_and_ttls(ex: Executor) -> None:
    run(ex, ("SET", "a", "0", "PXAT", T0 + 9000))
    run(ex, ("SET", "b", "1"), db=1)
    used = ex.keyspace.used_memory
    assert run(ex, ("SWAPDB", "0", "1")) == "OK"
    assert run(ex, ("GET", "b")) == b"1"
    assert run(ex, ("PEXPIRETIME", "a"), db=1) == T0 + 9000
    assert ex.keyspace.used_memory == used


def test_randomkey_skips_and_deletes_expired_keys(ex: Executor, clock: FakeClock) -> None:
    for i in range(20):
        run(ex, ("SET", f"t{i}", "v", "PX", "10"))
    run(ex, ("SET", "live", "v"))
    clock.now += 100
    ex.take_propagated()
    assert run(ex, ("RANDOMKEY",)) == b"live"
    assert all(entry[1] == "DEL" for entry in ex.take_propagated())


def test_hrandfield_negative_count_repeats_and_is_bounded(ex: Executor) -> None:
    run(ex, ("HSET", "h", "a", "1"))
    assert run(ex, ("HRANDFIELD", "h", "-5")) == [b"a"] * 5
    assert run(ex, ("HRANDFIELD", "h", "-3", "WITHVALUES")) == [b"a", b"1"] * 3
    too_many = run(ex, ("HRANDFIELD", "h", str(-MAX_RANDOM_PICKS - 1)))
    assert isinstance(too_many, Error) and "too large" in too_many.message


def test_hrandfield_positive_count_gives_distinct_fields(ex: Executor) -> None:
    run(ex, ("HSET", "h", *[x for i in range(50) for x in (f"f{i}", str(i))]))
    picked = run(ex, ("HRANDFIELD", "h", "20"))
    assert len(picked) == len(set(picked)) == 20


def test_time_is_now() -> None:
    seconds, micros = Executor().execute(0, "TIME", [])
    assert abs(int(seconds) + int(micros) / 1e6 - time.time()) < 5
    assert 0 <= int(micros) < 1_000_000


# --- HSCAN -----------------------------------------------------------------------------------
def hscan_all(ex: Executor, key: str, count: int, between=None) -> list[bytes]:
    cursor, seen = b"0", []
    for _ in range(100_000):
        cursor, flat = run(ex, ("HSCAN", key, cursor, "COUNT", count))
        seen.extend(flat[::2])
        if between is not None:
            between()
        if cursor == b"0":
            return seen
    raise AssertionError("HSCAN did not end")


def test_hscan_small_hash_in_one_call_big_hash_in_about_count(ex: Executor) -> None:
    run(ex, ("HSET", "small", *[x for i in range(SMALL_HASH_FIELDS) for x in (f"f{i}", "v")]))
    assert len(run(ex, ("HSCAN", "small", "0", "COUNT", "1"))[1]) == 2 * SMALL_HASH_FIELDS
    run(ex, ("HSET", "big", *[x for i in range(5000) for x in (f"f{i}", "v")]))
    cursor, flat = run(ex, ("HSCAN", "big", "0", "COUNT", "100"))
    assert cursor != b"0" and 50 <= len(flat) // 2 <= 400
    assert sorted(hscan_all(ex, "big", 100)) == sorted(b"f%d" % i for i in range(5000))


def test_hscan_returns_fields_present_throughout_while_others_change(ex: Executor) -> None:
    rng = random.Random(3)
    run(ex, ("HSET", "h", *[x for i in range(2000) for x in (f"keep{i}", "v")]))

    def churn():
        for _ in range(20):
            name = f"tmp{rng.randrange(3000)}"
            run(ex, ("HSET", "h", name, "v") if rng.random() < 0.5 else ("HDEL", "h", name))

    seen = set(hscan_all(ex, "h", 37, churn))
    assert {b"keep%d" % i for i in range(2000)} <= seen


def test_hscan_foreign_cursors_end_the_iteration() -> None:
    h = {b"f%d" % i: b"v" for i in range(1000)}
    for cursor in (1, 31, 2**40, 2**64 - 1):
        assert scan_fields(h, cursor, 10) == (0, [])


# --- AOF forms and replay --------------------------------------------------------------------
PROPAGATED = [
    ([], ("HMSET", "h", "a", "1"), [[0, "HSET", b"h", b"a", b"1"]]),
    ([H], ("HSETNX", "h", "c", "3"), [[0, "HSET", b"h", b"c", b"3"]]),
    ([H], ("HSETNX", "h", "a", "3"), []),
    ([H], ("HINCRBYFLOAT", "h", "a", "0.5"), [[0, "HSET", b"h", b"a", b"1.5"]]),
    ([S], ("UNLINK", "s", "zz"), [[0, "DEL", b"s"]]),
    ([S], ("TOUCH", "s"), []),
    ([S], ("RENAMENX", "s", "t"), [[0, "RENAME", b"s", b"t"]]),
    ([S], ("COPY", "s", "t"), [[0, "COPY", b"s", b"t", b"DB", b"0"]]),
    ([S, ("SET", "t", "x")], ("COPY", "s", "t", "DB", "0", "REPLACE"),
     [[0, "COPY", b"s", b"t", b"DB", b"0", b"REPLACE"]]),
    ([S], ("COPY", "s", "t", "REPLACE"), [[0, "COPY", b"s", b"t", b"DB", b"0"]]),
    ([S], ("MOVE", "s", "7"), [[0, "MOVE", b"s", b"7"]]),
    ([], ("SWAPDB", "3", "5"), [[0, "SWAPDB", b"3", b"5"]]),
    ([], ("SWAPDB", "3", "3"), []),
]


@pytest.mark.parametrize("setup, command, entries", PROPAGATED)
def test_propagated_forms(ex: Executor, setup, command, entries) -> None:
    run(ex, *setup)
    ex.take_propagated()
    run(ex, command)
    assert ex.take_propagated() == entries


KEYS = [b"k%d" % i for i in range(6)] + [b"h%d" % i for i in range(3)]


def random_new_command(rng: random.Random, clock: FakeClock):
    """One of the new write commands (and a few old ones to give them something to work on)."""
    k, k2 = rng.choice(KEYS), rng.choice(KEYS)
    v = rng.choice([b"%d" % rng.randrange(-5, 50), b"1.5", b"abc", b""])
    f = rng.choice([b"f1", b"f2"])
    t = rng.randrange(1, 400)
    n = b"%d" % rng.randrange(0, 40)
    db = b"%d" % rng.randrange(3)
    return rng.choice([
        ("SET", k, v), ("HSET", k, f, v), ("PEXPIRE", k, b"%d" % t),
        ("GETEX", k, b"PX", b"%d" % t), ("GETEX", k, b"PERSIST"),
        ("GETEX", k, b"PXAT", b"%d" % (clock.now + t - 100)),
        ("SETEX", k, b"1", v), ("PSETEX", k, b"%d" % t, v), ("GETSET", k, v),
        ("MSETNX", k, v, k2, v), ("SETRANGE", k, n, v), ("INCRBYFLOAT", k, b"0.1"),
        ("SETBIT", k, n, b"%d" % rng.randrange(2)),
        ("BITOP", rng.choice([b"AND", b"OR", b"XOR"]), k, k2, rng.choice(KEYS)),
        ("BITOP", b"NOT", k, k2),
        ("BITFIELD", k, b"OVERFLOW", rng.choice([b"WRAP", b"SAT", b"FAIL"]), b"INCRBY", b"i5",
         n, b"%d" % rng.randrange(-40, 40)),
        ("HMSET", k, f, v), ("HSETNX", k, f, v), ("HINCRBYFLOAT", k, f, b"2.5"),
        ("UNLINK", k, k2), ("RENAMENX", k, k2), ("COPY", k, k2, b"DB", db),
        ("COPY", k, k2, b"DB", db, b"REPLACE"), ("MOVE", k, db),
        ("SWAPDB", db, b"%d" % rng.randrange(3)), ("RANDOMKEY",), ("HRANDFIELD", k, b"-2"),
    ])


@pytest.mark.parametrize("seed", range(8))
def test_replaying_new_commands_rebuilds_the_keyspace(seed: int) -> None:
    _log, live = replay_check(seed, random_new_command, prefixes=False)
    assert live.keyspace.used_memory == live.keyspace.recount_memory()
