"""node/store/sets.py: set commands' replies and errors, AOF forms, replay, SSCAN, memory."""
from __future__ import annotations

import random

import pytest

from tests.collection_helpers import (
    NOT_INT, SYNTAX, WRONGTYPE, check_replay, common_commands, run,
)
from tests.fakeclock import FakeClock

from aofnode.protocol.errors import Error
from aofnode.store.executor import Executor
from aofnode.store.typed import SMALL_COLLECTION


@pytest.fixture
def ex() -> Executor:
    return Executor(clock_ms=FakeClock(1_700_000_000_000))


A = ("SADD", "a", "1", "2", "3", "4")
B = ("SADD", "b", "3", "4", "5")
S = ("SET", "s", "x")
OUT_OF_RANGE = Error("ERR", "value is out of range, must be positive")


def _sorted(reply):
    return sorted(reply) if isinstance(reply, list) else reply


SEMANTICS = [
    ([], ("SADD", "a", "x", "y", "x"), 2),
    ([A], ("SADD", "a", "1", "9"), 1),
    ([A], ("SREM", "a", "1", "1", "9"), 1),
    ([], ("SREM", "a", "1"), 0),
    ([A, ("SREM", "a", "1", "2", "3", "4")], ("EXISTS", "a"), 0),
    ([A], ("SCARD", "a"), 4),
    ([], ("SCARD", "a"), 0),
    ([A], ("SISMEMBER", "a", "1"), 1),
    ([A], ("SISMEMBER", "a", "9"), 0),
    ([A], ("SMISMEMBER", "a", "1", "9"), [1, 0]),
    ([], ("SMISMEMBER", "a", "1"), [0]),
    ([A], ("SMEMBERS", "a"), [b"1", b"2", b"3", b"4"]),
    ([], ("SMEMBERS", "a"), []),
    ([A, B], ("SINTER", "a", "b"), [b"3", b"4"]),
    ([A, B], ("SINTER", "a", "b", "nope"), []),
    ([A, B], ("SUNION", "a", "b", "nope"), [b"1", b"2", b"3", b"4", b"5"]),
    ([A, B], ("SDIFF", "a", "b", "nope"), [b"1", b"2"]),
    ([A, B], ("SDIFF", "nope", "a"), []),
    ([A, S], ("SINTER", "nope", "s"), WRONGTYPE),
    ([A, S], ("SUNION", "a", "s"), WRONGTYPE),
    ([A, B], ("SINTERSTORE", "d", "a", "b"), 2),
    ([A, B, ("SUNIONSTORE", "d", "a", "b")], ("SMEMBERS", "d"), [b"1", b"2", b"3", b"4", b"5"]),
    ([A, B, ("SDIFFSTORE", "a", "a", "b")], ("SMEMBERS", "a"), [b"1", b"2"]),
    ([A, S, ("SINTERSTORE", "s", "a", "nope")], ("EXISTS", "s"), 0),
    ([A, B], ("SINTERCARD", 2, "a", "b"), 2),
    ([A, B], ("SINTERCARD", 2, "a", "b", "LIMIT", 1), 1),
    ([A], ("SINTERCARD", 0, "a"), Error("ERR", "numkeys should be greater than 0")),
    ([A], ("SINTERCARD", 2, "a"),
     Error("ERR", "Number of keys can't be greater than number of args")),
    ([A], ("SINTERCARD", 1, "a", "LIMIT", -1), Error("ERR", "LIMIT can't be negative")),
    ([A], ("SINTERCARD", 1, "a", "LIMIT", "x"), Error("ERR", "LIMIT can't be negative")),
    ([A], ("SINTERCARD", "x", "a"), Error("ERR", "numkeys should be greater than 0")),
    ([A], ("SINTERCARD", 1, "a", "FOO"), SYNTAX),
    ([A], ("SMOVE", "a", "b", "1"), 1),
    ([A], ("SMOVE", "a", "b", "9"), 0),
    ([], ("SMOVE", "a", "s", "1"), 0),
    ([A, S], ("SMOVE", "a", "s", "1"), WRONGTYPE),
    ([A], ("SMOVE", "a", "a", "1"), 1),
    ([A, ("SMOVE", "a", "b", "1")], ("SMEMBERS", "b"), [b"1"]),
    ([A], ("SPOP", "a", 0), []),
    ([], ("SPOP", "a", 3), []),
    ([], ("SPOP", "a"), None),
    ([A], ("SPOP", "a", -1), OUT_OF_RANGE),
    ([A], ("SPOP", "a", 9), [b"1", b"2", b"3", b"4"]),
    ([A, ("SPOP", "a", 9)], ("EXISTS", "a"), 0),
    ([A], ("SRANDMEMBER", "a", 9), [b"1", b"2", b"3", b"4"]),
    ([A], ("SRANDMEMBER", "a", 0), []),
    ([], ("SRANDMEMBER", "a", 3), []),
    ([], ("SRANDMEMBER", "a"), None),
    ([A], ("SRANDMEMBER", "a", "x"), NOT_INT),
    ([A], ("SSCAN", "a", "0"), [b"0", [b"1", b"2", b"3", b"4"]]),
    ([A], ("SSCAN", "a", "0", "MATCH", "[12]"), [b"0", [b"1", b"2"]]),
    ([], ("SSCAN", "a", "0"), [b"0", []]),
    ([A], ("SSCAN", "a", "x"), Error("ERR", "invalid cursor")),
    ([A], ("SSCAN", "a", "0", "COUNT", 0), SYNTAX),
    ([A], ("TYPE", "a"), "set"),
    ([S], ("SADD", "s", "a"), WRONGTYPE),
    ([S], ("SMEMBERS", "s"), WRONGTYPE),
    ([S], ("SSCAN", "s", "0"), WRONGTYPE),
    ([A], ("GET", "a"), WRONGTYPE),
    ([A], ("LPUSH", "a", "x"), WRONGTYPE),
    ([A], ("HGETALL", "a"), WRONGTYPE),
]


@pytest.mark.parametrize("setup, command, expected", SEMANTICS)
def test_semantics(ex, setup, command, expected):
    run(ex, *setup)
    reply = run(ex, command)
    if command[0] == "SSCAN" and isinstance(reply, list):
        assert [reply[0], sorted(reply[1])] == expected
    elif command[0] == "SMISMEMBER":
        assert reply == expected
    else:
        assert _sorted(reply) == expected


def test_random_picks_are_members_and_repeat_only_with_a_negative_count(ex):
    run(ex, A)
    ex.random = random.Random(1)
    assert run(ex, ("SRANDMEMBER", "a")) in {b"1", b"2", b"3", b"4"}
    two = run(ex, ("SRANDMEMBER", "a", 2))
    assert len(set(two)) == 2 and set(two) <= {b"1", b"2", b"3", b"4"}
    assert len(run(ex, ("SRANDMEMBER", "a", -20))) == 20
    seen = {run(ex, ("SRANDMEMBER", "a")) for _ in range(200)}
    assert seen == {b"1", b"2", b"3", b"4"}


def test_spop_is_logged_as_srem_of_what_it_popped(ex):
    run(ex, A)
    ex.take_propagated()
    one = run(ex, ("SPOP", "a"))
    two = run(ex, ("SPOP", "a", 2))
    assert ex.take_propagated() == [[0, "SREM", b"a", one], [0, "SREM", b"a", *two]]
    run(ex, ("SPOP", "a", 5))
    assert ex.take_propagated() == [[0, "DEL", b"a"]]


@pytest.mark.parametrize("setup, command, entries", [
    ([A], ("SADD", "a", "1", "9", "9"), [["SADD", "a", "9"]]),
    ([A], ("SADD", "a", "1"), []),
    ([A], ("SREM", "a", "9", "1"), [["SREM", "a", "1"]]),
    ([A, B], ("SINTERSTORE", "d", "a", "b"), [["SINTERSTORE", "d", "a", "b"]]),
    ([A], ("SINTERSTORE", "d", "a", "nope"), []),
    ([A], ("SINTERSTORE", "a", "a", "nope"), [["DEL", "a"]]),
    ([A], ("SMOVE", "a", "a", "1"), []),
    ([A], ("SMOVE", "a", "b", "1"), [["SMOVE", "a", "b", "1"]]),
])
def test_propagated_forms(ex, setup, command, entries):
    run(ex, *setup)
    ex.take_propagated()
    run(ex, command)
    assert ex.take_propagated() == [[0, e[0], *[a.encode() for a in e[1:]]] for e in entries]


def _sscan_all(ex, key, count, between=None):
    cursor, seen, calls = b"0", [], 0
    while True:
        cursor, members = run(ex, ("SSCAN", key, cursor, "COUNT", count))
        seen.extend(members)
        calls += 1
        if between is not None:
            between(calls)
        if cursor == b"0":
            return seen, calls


@pytest.mark.parametrize("size, count", [(SMALL_COLLECTION, 10), (1000, 10), (5000, 100)])
def test_sscan_returns_every_member_once(ex, size, count):
    run(ex, ("SADD", "big", *range(size)))
    seen, calls = _sscan_all(ex, "big", count)
    assert sorted(seen) == sorted(b"%d" % i for i in range(size))
    assert calls == 1 if size <= SMALL_COLLECTION else calls > 1


def test_sscan_guarantee_while_members_come_and_go(ex):
    rng = random.Random(7)
    run(ex, ("SADD", "big", *range(3000)))
    stable = {b"%d" % i for i in range(0, 3000, 2)}

    def churn(_calls):
        run(ex, ("SREM", "big", *[rng.randrange(1, 3000, 2) for _ in range(20)]),
            ("SADD", "big", *[rng.randrange(3000, 9000) for _ in range(20)]))

    seen, _ = _sscan_all(ex, "big", 50, churn)
    assert stable <= set(seen)


def test_memory_follows_every_change(ex):
    run(ex, A, B, ("SPOP", "a"), ("SMOVE", "a", "c", "3"), ("SUNIONSTORE", "d", "a", "b"),
        ("SREM", "b", "5"), ("SINTERSTORE", "b", "b", "d"))
    assert ex.keyspace.used_memory == ex.keyspace.recount_memory()
    run(ex, ("FLUSHALL",))
    assert ex.keyspace.used_memory == 0


KEYS = [b"s%d" % i for i in range(4)] + [b"t"]


def random_command(rng: random.Random, clock: FakeClock):
    k, k2, k3 = rng.choice(KEYS), rng.choice(KEYS), rng.choice(KEYS)
    m = rng.choice([b"a", b"b", b"c", b"d", b"e"])
    if rng.random() < 0.15:
        return common_commands(rng, clock, KEYS)
    return rng.choice([
        ("SADD", k, m, rng.choice([b"a", b"x"])), ("SADD", k, m), ("SREM", k, m, b"b"),
        ("SPOP", k), ("SPOP", k, rng.randrange(0, 4)), ("SMOVE", k, k2, m),
        ("SINTERSTORE", k, k2, k3), ("SUNIONSTORE", k, k2, k3), ("SDIFFSTORE", k3, k, k2),
        ("SRANDMEMBER", k, -3), ("SMEMBERS", k), ("SCARD", k), ("SINTERCARD", 2, k, k2),
    ])


@pytest.mark.parametrize("seed", range(8))
def test_replaying_the_propagated_entries_rebuilds_the_keyspace(seed):
    check_replay(seed, random_command)
