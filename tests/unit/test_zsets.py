"""node/store/zsets.py, zsetalgebra.py, zsetcore.py: sorted set replies and errors, scores as
Redis 7.0 parses and writes them, AOF forms, replay, ZSCAN, memory."""
from __future__ import annotations

import random

import pytest

from tests.collection_helpers import (
    NOT_INT, SYNTAX, WRONGTYPE, check_replay, common_commands, run,
)
from tests.fakeclock import FakeClock

from aofnode.protocol.errors import Error
from aofnode.store.executor import Executor
from aofnode.store.zsetcore import format_score, parse_score


@pytest.fixture
def ex() -> Executor:
    return Executor(clock_ms=FakeClock(1_700_000_000_000))


Z = ("ZADD", "z", "1", "a", "2", "b", "2", "c", "3.5", "d")
Y = ("ZADD", "y", "1", "b", "10", "c", "5", "x")
LEX = ("ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d")
S = ("SET", "s", "x")
NOT_FLOAT = Error("ERR", "value is not a valid float")
RANGE_FLOAT = Error("ERR", "min or max is not a float")
LEX_ERR = Error("ERR", "min or max not valid string range item")


@pytest.mark.parametrize("raw, value", [
    (b"1", 1.0), (b"-1.5", -1.5), (b"inf", float("inf")), (b"+inf", float("inf")),
    (b"-Infinity", float("-inf")), (b"1e3", 1000.0), (b".5", 0.5), (b"0x10", 16.0),
    (b"-0", 0.0), (b"nan", None), (b"", None), (b" 1", None), (b"1 ", None), (b"1e400", None),
    (b"abc", None), (b"1_0", None), (b"1.2.3", None),
])
def test_parse_score_is_strtod(raw, value):
    assert parse_score(raw) == value


@pytest.mark.parametrize("value, text", [
    (1.0, b"1"), (1.5, b"1.5"), (0.1, b"0.10000000000000001"), (1e20, b"1e+20"),
    (float("inf"), b"inf"), (float("-inf"), b"-inf"), (-2.0, b"-2"),
    (123456789012345678.0, b"1.2345678901234568e+17"),
])
def test_scores_are_written_as_redis_7_0_does(value, text):
    assert format_score(value) == text
    assert float(text) == value


SEMANTICS = [
    ([], ("ZADD", "z", "1", "a", "2", "a"), 1),
    ([Z], ("ZADD", "z", "CH", "9", "a", "1", "b", "0", "new"), 3),
    ([Z], ("ZADD", "z", "NX", "9", "a", "0", "new"), 1),
    ([Z, ("ZADD", "z", "XX", "9", "a", "0", "new")], ("ZRANGE", "z", 0, -1, "WITHSCORES"),
     [b"b", b"2", b"c", b"2", b"d", b"3.5", b"a", b"9"]),
    ([Z, ("ZADD", "z", "GT", "0", "a", "9", "b")], ("ZMSCORE", "z", "a", "b"), [b"1", b"9"]),
    ([Z, ("ZADD", "z", "LT", "0", "a", "9", "b")], ("ZMSCORE", "z", "a", "b"), [b"0", b"2"]),
    ([Z], ("ZADD", "z", "INCR", "2.5", "a"), b"3.5"),
    ([Z], ("ZADD", "z", "INCR", "0", "a"), b"1"),
    ([Z], ("ZADD", "z", "NX", "INCR", "1", "a"), None),
    ([], ("ZADD", "z", "XX", "INCR", "1", "a"), None),
    ([], ("ZADD", "z", "XX", "1", "a"), 0),
    ([Z], ("ZADD", "z", "GT", "INCR", "-1", "a"), None),
    ([Z], ("ZADD", "z", "INCR", "1", "a", "2", "b"),
     Error("ERR", "INCR option supports a single increment-element pair")),
    ([Z], ("ZADD", "z", "NX", "XX", "1", "a"),
     Error("ERR", "XX and NX options at the same time are not compatible")),
    ([Z], ("ZADD", "z", "GT", "LT", "1", "a"),
     Error("ERR", "GT, LT, and/or NX options at the same time are not compatible")),
    ([Z], ("ZADD", "z", "1", "a", "2"), SYNTAX),
    ([Z], ("ZADD", "z", "nan", "a"), NOT_FLOAT),
    ([Z], ("ZADD", "z", "x", "a"), NOT_FLOAT),
    ([("ZADD", "z", "inf", "a")], ("ZINCRBY", "z", "-inf", "a"),
     Error("ERR", "resulting score is not a number (NaN)")),
    ([Z], ("ZINCRBY", "z", "x", "a"), NOT_FLOAT),
    ([Z], ("ZINCRBY", "z", "1.1", "new"), b"1.1000000000000001"),
    ([Z], ("ZSCORE", "z", "d"), b"3.5"),
    ([Z], ("ZSCORE", "z", "nope"), None),
    ([], ("ZMSCORE", "z", "a"), [None]),
    ([Z], ("ZCARD", "z"), 4),
    ([Z], ("ZCOUNT", "z", "(1", "2"), 2),
    ([Z], ("ZCOUNT", "z", "-inf", "+inf"), 4),
    ([Z], ("ZCOUNT", "z", "a", "2"), RANGE_FLOAT),
    ([LEX], ("ZLEXCOUNT", "lex", "[b", "(d"), 2),
    ([LEX], ("ZLEXCOUNT", "lex", "-", "+"), 4),
    ([LEX], ("ZLEXCOUNT", "lex", "b", "+"), LEX_ERR),
    ([Z], ("ZRANK", "z", "c"), 2),
    ([Z], ("ZREVRANK", "z", "c"), 1),
    ([Z], ("ZRANK", "z", "nope"), None),
    ([Z], ("ZRANGE", "z", 1, 2), [b"b", b"c"]),
    ([Z], ("ZRANGE", "z", -2, -1, "REV"), [b"b", b"a"]),
    ([Z], ("ZRANGE", "z", "(1", 3.5, "BYSCORE", "LIMIT", 1, 5), [b"c", b"d"]),
    ([Z], ("ZRANGE", "z", "+inf", "(1", "BYSCORE", "REV", "WITHSCORES"),
     [b"d", b"3.5", b"c", b"2", b"b", b"2"]),
    ([LEX], ("ZRANGE", "lex", "(a", "[c", "BYLEX"), [b"b", b"c"]),
    ([LEX], ("ZRANGE", "lex", "+", "-", "BYLEX", "REV", "LIMIT", 0, 2), [b"d", b"c"]),
    ([Z], ("ZRANGE", "z", 0, -1, "LIMIT", 0, 1), Error("ERR", "syntax error, LIMIT is only "
                                                        "supported in combination with either BYSCORE or BYLEX")),
    ([LEX], ("ZRANGE", "lex", "-", "+", "BYLEX", "WITHSCORES"), Error(
        "ERR", "syntax error, WITHSCORES not supported in combination with BYLEX")),
    ([Z], ("ZRANGE", "z", "a", 1), NOT_INT),
    ([Z], ("ZRANGE", "z", 0, 1, "BYSCORE", "BYLEX"), SYNTAX),
    ([Z], ("ZRANGEBYSCORE", "z", 2, "+inf", "WITHSCORES", "LIMIT", 0, 1), [b"b", b"2"]),
    ([Z], ("ZRANGEBYSCORE", "z", 0, 1, "REV"), SYNTAX),
    ([Z], ("ZREVRANGEBYSCORE", "z", 2, 1), [b"c", b"b", b"a"]),
    ([LEX], ("ZRANGEBYLEX", "lex", "[c", "+"), [b"c", b"d"]),
    ([LEX], ("ZREVRANGEBYLEX", "lex", "[c", "-", "LIMIT", 1, 1), [b"b"]),
    ([Z], ("ZREVRANGE", "z", 0, 0, "WITHSCORES"), [b"d", b"3.5"]),
    ([], ("ZRANGE", "z", 0, -1), []),
    ([Z, ("ZRANGESTORE", "d", "z", 1, 2)], ("ZRANGE", "d", 0, -1, "WITHSCORES"),
     [b"b", b"2", b"c", b"2"]),
    ([Z], ("ZRANGESTORE", "d", "z", 0, -1, "WITHSCORES"), SYNTAX),
    ([Z], ("ZREM", "z", "a", "a", "nope"), 1),
    ([Z], ("ZREMRANGEBYRANK", "z", 0, 1), 2),
    ([Z], ("ZREMRANGEBYSCORE", "z", "(1", "2"), 2),
    ([LEX], ("ZREMRANGEBYLEX", "lex", "-", "[b"), 2),
    ([Z, ("ZREMRANGEBYRANK", "z", 0, -1)], ("EXISTS", "z"), 0),
    ([Z], ("ZPOPMIN", "z"), [b"a", b"1"]),
    ([Z], ("ZPOPMAX", "z", 2), [b"d", b"3.5", b"c", b"2"]),
    ([], ("ZPOPMIN", "z"), []),
    ([Z], ("ZPOPMIN", "z", -1), Error("ERR", "value is out of range, must be positive")),
    ([Z], ("ZMPOP", 2, "nope", "z", "MIN", "COUNT", 2), [b"z", [[b"a", b"1"], [b"b", b"2"]]]),
    ([], ("ZMPOP", 1, "z", "MAX"), None),
    ([Z], ("ZMPOP", 1, "z", "MAX", "COUNT", 0), Error("ERR", "count should be greater than 0")),
    ([Z], ("ZMPOP", 1, "z", "MIDDLE"), SYNTAX),
    ([Z, Y], ("ZUNION", 2, "z", "y", "WITHSCORES"),
     [b"a", b"1", b"b", b"3", b"d", b"3.5", b"x", b"5", b"c", b"12"]),
    ([Z, Y], ("ZINTER", 2, "z", "y", "WEIGHTS", 2, 1, "AGGREGATE", "MAX", "WITHSCORES"),
     [b"b", b"4", b"c", b"10"]),
    ([Z, Y], ("ZDIFF", 2, "z", "y"), [b"a", b"d"]),
    ([Z, ("SADD", "set", "a", "q")], ("ZUNION", 2, "z", "set", "WITHSCORES"),
     [b"q", b"1", b"a", b"2", b"b", b"2", b"c", b"2", b"d", b"3.5"]),
    ([Z, Y], ("ZUNIONSTORE", "d", 2, "z", "y", "AGGREGATE", "MIN"), 5),
    ([Z, Y], ("ZINTERSTORE", "d", 2, "z", "nope"), 0),
    ([Z, Y], ("ZDIFFSTORE", "d", 1, "z"), 4),
    ([Z], ("ZUNION", 0, "z"), Error("ERR", "at least 1 input key is needed for 'zunion' command")),
    ([Z], ("ZUNIONSTORE", "d", 0, "z"),
     Error("ERR", "at least 1 input key is needed for 'zunionstore' command")),
    ([Z], ("ZUNION", 1, "z", "WEIGHTS", "x"), Error("ERR", "weight value is not a float")),
    ([Z], ("ZUNION", 1, "z", "AGGREGATE", "AVG"), SYNTAX),
    ([Z], ("ZDIFF", 1, "z", "WEIGHTS", 1), SYNTAX),
    ([Z], ("ZINTERSTORE", "d", 1, "z", "WITHSCORES"), SYNTAX),
    ([Z, S], ("ZUNION", 2, "z", "s"), WRONGTYPE),
    ([Z, Y], ("ZINTERCARD", 2, "z", "y"), 2),
    ([Z, Y], ("ZINTERCARD", 2, "z", "y", "LIMIT", 1), 1),
    ([Z], ("ZINTERCARD", 1, "z", "LIMIT", -1), Error("ERR", "LIMIT can't be negative")),
    ([Z], ("ZINTERCARD", 1, "z", "LIMIT", "x"), Error("ERR", "LIMIT can't be negative")),
    ([Z], ("ZINTERCARD", 1, "z", "LIMIT", 1, "LIMIT", 0), 4),
    ([Z], ("ZINTERCARD", 0, "z"),
     Error("ERR", "at least 1 input key is needed for 'zintercard' command")),
    ([Z], ("ZINTERCARD", "x", "z"), NOT_INT),
    ([Z], ("ZINTERCARD", 2, "z"), SYNTAX),
    ([Z], ("ZMPOP", "x", "z", "MIN"), Error("ERR", "numkeys should be greater than 0")),
    ([Z], ("ZPOPMIN", "z", 1, 1), SYNTAX),
    ([Z], ("ZRANDMEMBER", "z", 0), []),
    ([], ("ZRANDMEMBER", "z"), None),
    ([Z], ("ZRANDMEMBER", "z", 9, "WITHSCORES"), [b"a", b"1", b"b", b"2", b"c", b"2", b"d", b"3.5"]),
    ([Z], ("ZSCAN", "z", 0), [b"0", [b"a", b"1", b"b", b"2", b"c", b"2", b"d", b"3.5"]]),
    ([Z], ("TYPE", "z"), "zset"),
    ([S], ("ZADD", "s", "1", "a"), WRONGTYPE),
    ([S], ("ZRANGE", "s", 0, -1), WRONGTYPE),
    ([S], ("ZSCORE", "s", "a"), WRONGTYPE),
    ([Z], ("GET", "z"), WRONGTYPE),
    ([Z], ("SADD", "z", "a"), WRONGTYPE),
    ([Z], ("HSET", "z", "f", "v"), WRONGTYPE),
    ([Z], ("RPUSH", "z", "v"), WRONGTYPE),
]


def _pairs_sorted(reply):
    """ZRANDMEMBER's and ZSCAN's pairs in a fixed order."""
    return [x for pair in sorted(zip(reply[::2], reply[1::2])) for x in pair]


@pytest.mark.parametrize("setup, command, expected", SEMANTICS)
def test_semantics(ex, setup, command, expected):
    run(ex, *setup)
    reply = run(ex, command)
    if command[0] == "ZRANDMEMBER" and isinstance(reply, list):
        reply = _pairs_sorted(reply)
    if command[0] == "ZSCAN":
        reply = [reply[0], _pairs_sorted(reply[1])]
    assert reply == expected


@pytest.mark.parametrize("setup, command, entries", [
    ([Z], ("ZADD", "z", "GT", "CH", "0", "a", "9", "b", "2", "c"), [["ZADD", "z", "9", "b"]]),
    ([Z], ("ZINCRBY", "z", "0.5", "a"), [["ZADD", "z", "1.5", "a"]]),
    ([Z], ("ZADD", "z", "NX", "5", "a"), []),
    ([Z], ("ZREM", "z", "nope", "a"), [["ZREM", "z", "a"]]),
    ([Z], ("ZPOPMAX", "z", 9), [["ZPOPMAX", "z", "4"]]),
    ([Z], ("ZMPOP", 1, "z", "MIN"), [["ZPOPMIN", "z", "1"]]),
    ([Z], ("ZREMRANGEBYSCORE", "z", 100, 200), []),
    ([Z], ("ZREMRANGEBYSCORE", "z", 2, 2), [["ZREMRANGEBYSCORE", "z", "2", "2"]]),
    ([Z, Y], ("ZINTERSTORE", "d", 2, "z", "y"), [["ZINTERSTORE", "d", "2", "z", "y"]]),
    ([Z, Y], ("ZINTERSTORE", "z", 2, "z", "nope"), [["DEL", "z"]]),
    ([Z], ("ZRANGESTORE", "d", "z", 0, 0), [["ZRANGESTORE", "d", "z", "0", "0"]]),
])
def test_propagated_forms(ex, setup, command, entries):
    run(ex, *setup)
    ex.take_propagated()
    run(ex, command)
    assert ex.take_propagated() == [[0, e[0], *[a.encode() for a in e[1:]]] for e in entries]


def test_zscan_returns_every_member_once(ex):
    run(ex, ("ZADD", "big", *[x for i in range(2000) for x in (i, b"m%d" % i)]))
    cursor, seen = b"0", []
    while True:
        cursor, flat = run(ex, ("ZSCAN", "big", cursor, "COUNT", 50))
        seen.extend(zip(flat[::2], flat[1::2]))
        if cursor == b"0":
            break
    assert sorted(seen) == sorted((b"m%d" % i, b"%d" % i) for i in range(2000))


def test_memory_follows_every_change(ex):
    run(ex, Z, Y, ("ZINCRBY", "z", 1, "new"), ("ZPOPMIN", "y"), ("ZUNIONSTORE", "u", 2, "z", "y"),
        ("ZREMRANGEBYRANK", "u", 0, 1), ("ZRANGESTORE", "r", "z", 0, 1), ("ZREM", "z", "a"))
    assert ex.keyspace.used_memory == ex.keyspace.recount_memory()
    run(ex, ("FLUSHALL",))
    assert ex.keyspace.used_memory == 0


KEYS = [b"z%d" % i for i in range(4)] + [b"w"]


def random_command(rng: random.Random, clock: FakeClock):
    k, k2 = rng.choice(KEYS), rng.choice(KEYS)
    m = rng.choice([b"a", b"b", b"c", b"d", b"e"])
    score = rng.choice([b"0", b"1", b"-2.5", b"0.1", b"inf", b"3e5", b"7"])
    lo, hi = rng.choice([(b"-inf", b"+inf"), (b"(0", b"1"), (b"0.1", b"(7")])
    flags = rng.choice([[], [b"NX"], [b"XX"], [b"GT"], [b"LT", b"CH"], [b"INCR"]])
    if rng.random() < 0.15:
        return common_commands(rng, clock, KEYS)
    return rng.choice([
        ("ZADD", k, *flags, score, m), ("ZADD", k, score, m, b"1", b"q"), ("ZINCRBY", k, score, m),
        ("ZREM", k, m, b"q"), ("ZREMRANGEBYRANK", k, 0, rng.randrange(-2, 2)),
        ("ZREMRANGEBYSCORE", k, lo, hi), ("ZREMRANGEBYLEX", k, b"[b", b"(d"), ("ZPOPMIN", k),
        ("ZPOPMAX", k, rng.randrange(0, 3)), ("ZMPOP", 2, k, k2, b"MIN", b"COUNT", 2),
        ("ZUNIONSTORE", k, 2, k, k2, b"WEIGHTS", b"2", b"0.5"), ("ZINTERSTORE", k2, 2, k, k2),
        ("ZDIFFSTORE", k, 2, k2, k), ("ZRANGESTORE", k2, k, lo, hi, b"BYSCORE"),
        ("ZRANGE", k, 0, -1, b"WITHSCORES"), ("ZRANDMEMBER", k, -2), ("ZCOUNT", k, lo, hi),
        ("SADD", k, m),
    ])


@pytest.mark.parametrize("seed", range(8))
def test_replaying_the_propagated_entries_rebuilds_the_keyspace(seed):
    check_replay(seed, random_command)
