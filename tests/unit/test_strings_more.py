"""node/store/stringops.py, bits.py, lcs.py, floats.py: GETEX SETEX PSETEX GETSET MSETNX
SETRANGE GETRANGE INCRBYFLOAT LCS and the bit commands, their errors and their AOF forms."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from tests.fakeclock import FakeClock
from tests.unit.test_commands import NOT_INT, SYNTAX, T0, WRONGTYPE, run

from aofnode.protocol.errors import Error
from aofnode.store.executor import Executor
from aofnode.store.floats import add_long_double, format_human, parse_long_double
from aofnode.store.lcs import lcs_rows

S = ("SET", "s", "hello")
H = ("HSET", "h", "f", "v")
NOT_FLOAT = Error("ERR", "value is not a valid float")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ex(clock: FakeClock) -> Executor:
    return Executor(clock_ms=clock)


SEMANTICS = [
    # GETEX
    ([S], ("GETEX", "s"), b"hello"),
    ([], ("GETEX", "nope", "EX", "-1"), None),  # a missing key is nil before the time is read
    ([S], ("GETEX", "s", "EX", "0"), Error("ERR", "invalid expire time in 'getex' command")),
    ([S], ("GETEX", "s", "EX", "x"), NOT_INT),
    ([S], ("GETEX", "s", "BAD"), SYNTAX),
    ([S], ("GETEX", "s", "EX"), SYNTAX),
    ([S], ("GETEX", "s", "PERSIST", "EX", "1"), SYNTAX),
    ([S], ("GETEX", "s", "EX", "1", "PX", "1"), SYNTAX),
    ([H], ("GETEX", "h"), WRONGTYPE),
    # SETEX / PSETEX / GETSET / MSETNX
    ([], ("SETEX", "k", "0", "v"), Error("ERR", "invalid expire time in 'setex' command")),
    ([], ("PSETEX", "k", "-5", "v"), Error("ERR", "invalid expire time in 'psetex' command")),
    ([], ("SETEX", "k", "x", "v"), NOT_INT),
    ([], ("GETSET", "k", "1"), None),
    ([S], ("GETSET", "s", "1"), b"hello"),
    ([H], ("GETSET", "h", "1"), WRONGTYPE),
    ([], ("MSETNX", "a", "1", "b", "2"), 1),
    ([S], ("MSETNX", "a", "1", "s", "2"), 0),
    ([], ("MSETNX", "a"), Error("ARITY", "wrong number of arguments for 'msetnx' command")),
    # SETRANGE / GETRANGE
    ([], ("SETRANGE", "k", "3", "ab"), 5),
    ([S], ("SETRANGE", "s", "1", "EY"), 5),
    ([S], ("SETRANGE", "s", "1", ""), 5),
    ([], ("SETRANGE", "k", "1", ""), 0),
    ([S], ("SETRANGE", "s", "-1", "a"), Error("ERR", "offset is out of range")),
    ([S], ("SETRANGE", "s", "536870908", "world"),
     Error("ERR", "string exceeds maximum allowed size (proto-max-bulk-len)")),
    ([H], ("SETRANGE", "h", "0", "a"), WRONGTYPE),
    ([S], ("GETRANGE", "s", "0", "1"), b"he"),
    ([S], ("GETRANGE", "s", "-3", "-1"), b"llo"),
    ([S], ("GETRANGE", "s", "-1", "-5"), b""),
    ([S], ("GETRANGE", "s", "3", "1"), b""),
    ([S], ("GETRANGE", "s", "0", "4294967297"), b"hello"),
    ([], ("GETRANGE", "nope", "0", "-1"), b""),
    ([S], ("SUBSTR", "s", "1", "2"), b"el"),
    # INCRBYFLOAT
    ([("SET", "f", "10.5")], ("INCRBYFLOAT", "f", "0.1"), b"10.6"),
    ([], ("INCRBYFLOAT", "f", "5.0e3"), b"5000"),
    ([("SET", "f", "1")], ("INCRBYFLOAT", "f", "0x1p3"), b"9"),
    ([("SET", "f", " 1")], ("INCRBYFLOAT", "f", "1"), NOT_FLOAT),
    ([("SET", "f", "1 ")], ("INCRBYFLOAT", "f", "1"), NOT_FLOAT),
    ([("SET", "f", "1\x002")], ("INCRBYFLOAT", "f", "1"), NOT_FLOAT),
    ([], ("INCRBYFLOAT", "f", "nan"), NOT_FLOAT),
    ([], ("INCRBYFLOAT", "f", "1e5000"), NOT_FLOAT),
    ([], ("INCRBYFLOAT", "f", "+inf"), Error("ERR", "increment would produce NaN or Infinity")),
    ([("SET", "f", "0.5")], ("INCRBYFLOAT", "f", "-0.5"), b"0"),
    ([H], ("INCRBYFLOAT", "h", "1"), WRONGTYPE),
    # LCS
    ([("SET", "a", "ohmytext"), ("SET", "b", "mynewtext")], ("LCS", "a", "b"), b"mytext"),
    ([("SET", "a", "ohmytext"), ("SET", "b", "mynewtext")], ("LCS", "a", "b", "LEN"), 6),
    ([("SET", "a", "ohmytext"), ("SET", "b", "mynewtext")],
     ("LCS", "a", "b", "IDX", "WITHMATCHLEN"),
     {"matches": [[[4, 7], [5, 8], 4], [[2, 3], [0, 1], 2]], "len": 6}),
    ([("SET", "a", "ohmytext"), ("SET", "b", "mynewtext")],
     ("LCS", "a", "b", "IDX", "MINMATCHLEN", "4"), {"matches": [[[4, 7], [5, 8]]], "len": 6}),
    ([], ("LCS", "a", "b", "LEN", "IDX"),
     Error("ERR", "If you want both the length and indexes, please just use IDX.")),
    ([H], ("LCS", "h", "b"), Error("ERR", "The specified keys must contain string values")),
    ([], ("LCS", "a", "b"), b""),
    # bits
    ([], ("SETBIT", "b", "7", "1"), 0),
    ([("SETBIT", "b", "7", "1")], ("GET", "b"), b"\x01"),
    ([("SETBIT", "b", "7", "1")], ("SETBIT", "b", "7", "0"), 1),
    ([], ("SETBIT", "b", "4294967296", "1"),
     Error("ERR", "bit offset is not an integer or out of range")),
    ([], ("SETBIT", "b", "0", "2"), Error("ERR", "bit is not an integer or out of range")),
    ([H], ("SETBIT", "h", "0", "1"), WRONGTYPE),
    ([S], ("GETBIT", "s", "1"), 1),
    ([S], ("GETBIT", "s", "100000"), 0),
    ([("SET", "c", "foobar")], ("BITCOUNT", "c"), 26),
    ([("SET", "c", "foobar")], ("BITCOUNT", "c", "1", "1"), 6),
    ([("SET", "c", "foobar")], ("BITCOUNT", "c", "5", "30", "BIT"), 17),
    ([("SET", "c", "foobar")], ("BITCOUNT", "c", "1"), SYNTAX),
    ([], ("BITCOUNT", "nope", "x"), 0),  # a missing key answers before the arguments are read
    ([("SET", "p", b"\xff\xf0\x00")], ("BITPOS", "p", "0"), 12),
    ([("SET", "p", b"\xff\xff")], ("BITPOS", "p", "0"), 16),
    ([("SET", "p", b"\xff\xff")], ("BITPOS", "p", "0", "0", "-1"), -1),
    ([("SET", "p", b"\xff\xf0\x00")], ("BITPOS", "p", "1", "7", "15", "BIT"), 7),
    ([], ("BITPOS", "nope", "0"), 0),
    ([], ("BITPOS", "nope", "1"), -1),
    ([S], ("BITPOS", "s", "2"), Error("ERR", "The bit argument must be 1 or 0.")),
    ([("SET", "x", "abc"), ("SET", "y", "a")], ("BITOP", "AND", "d", "x", "y"), 3),
    ([("SET", "x", "abc")], ("BITOP", "NOT", "d", "x", "x"),
     Error("ERR", "BITOP NOT must be called with a single source key.")),
    ([("SET", "x", "abc")], ("BITOP", "NAND", "d", "x"), SYNTAX),
    ([], ("BITFIELD", "k", "SET", "i8", "0", "100", "INCRBY", "i8", "0", "100"), [0, -56]),
    ([], ("BITFIELD", "k", "OVERFLOW", "SAT", "INCRBY", "u2", "0", "9"), [3]),
    ([], ("BITFIELD", "k", "OVERFLOW", "FAIL", "INCRBY", "u2", "0", "9"), [None]),
    ([], ("BITFIELD", "k", "OVERFLOW", "SAT", "SET", "u8", "0", "-1"), [0]),
    ([], ("BITFIELD", "k", "GET", "u64", "0"),
     Error("ERR", "Invalid bitfield type. Use something like i16 u8. Note that u64 is not "
                  "supported but i64 is.")),
    ([], ("BITFIELD", "k", "OVERFLOW", "NO"), Error("ERR", "Invalid OVERFLOW type specified")),
    ([], ("BITFIELD_RO", "k", "SET", "u8", "0", "1"),
     Error("ERR", "BITFIELD_RO only supports the GET subcommand")),
    ([("SET", "k", b"\xff")], ("BITFIELD_RO", "k", "GET", "i4", "#1"), [-1]),
]


@pytest.mark.parametrize("setup, command, expected", SEMANTICS)
def test_semantics(ex: Executor, setup, command, expected) -> None:
    run(ex, *setup)
    assert run(ex, command) == expected


def test_getex_options_set_or_remove_the_ttl(ex: Executor, clock: FakeClock) -> None:
    run(ex, S)
    ex.take_propagated()
    assert run(ex, ("GETEX", "s", "EX", "100")) == b"hello"
    assert run(ex, ("PTTL", "s")) == 100_000
    assert ex.take_propagated() == [[0, "PEXPIREAT", b"s", b"%d" % (T0 + 100_000)]]
    assert run(ex, ("GETEX", "s", "PERSIST")) == b"hello"
    assert run(ex, ("GETEX", "s", "PERSIST")) == b"hello"
    assert ex.take_propagated() == [[0, "PERSIST", b"s"]]  # once: the second changed nothing
    assert run(ex, ("GETEX", "s", "PXAT", T0 - 1)) == b"hello"
    assert run(ex, ("EXISTS", "s")) == 0
    assert ex.take_propagated() == [[0, "DEL", b"s"]]


PROPAGATED = [
    ([], ("SETEX", "k", "10", "v"), [[0, "SET", b"k", b"v", b"PXAT", b"%d" % (T0 + 10_000)]]),
    ([], ("PSETEX", "k", "10", "v"), [[0, "SET", b"k", b"v", b"PXAT", b"%d" % (T0 + 10)]]),
    ([S], ("GETSET", "s", "v"), [[0, "SET", b"s", b"v"]]),
    ([], ("MSETNX", "a", "1", "b", "2"), [[0, "MSET", b"a", b"1", b"b", b"2"]]),
    ([S], ("MSETNX", "a", "1", "s", "2"), []),
    ([S], ("SETRANGE", "s", "1", "a"), [[0, "SETRANGE", b"s", b"1", b"a"]]),
    ([S], ("SETRANGE", "s", "1", ""), []),
    ([("SET", "f", "1")], ("INCRBYFLOAT", "f", "0.5"), [[0, "SET", b"f", b"1.5", b"KEEPTTL"]]),
    ([], ("SETBIT", "b", "3", "1"), [[0, "SETBIT", b"b", b"3", b"1"]]),
    ([("SETBIT", "b", "3", "1")], ("SETBIT", "b", "3", "1"), []),
    ([S], ("BITOP", "NOT", "d", "s"), [[0, "BITOP", b"NOT", b"d", b"s"]]),
    ([], ("BITOP", "OR", "d", "x"), []),
    ([], ("BITFIELD", "k", "INCRBY", "u8", "0", "1"),
     [[0, "BITFIELD", b"k", b"INCRBY", b"u8", b"0", b"1"]]),
    ([("SET", "k", b"\x01")], ("BITFIELD", "k", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "255"), []),
    ([S], ("GETEX", "s"), []),
    ([S], ("LCS", "s", "s"), []),
]


@pytest.mark.parametrize("setup, command, entries", PROPAGATED)
def test_propagated_forms(ex: Executor, setup, command, entries) -> None:
    run(ex, *setup)
    ex.take_propagated()
    run(ex, command)
    assert ex.take_propagated() == entries


def test_setrange_setbit_and_incrbyfloat_keep_the_ttl(ex: Executor) -> None:
    run(ex, ("SET", "k", "1", "EX", "100"))
    for command in [("SETRANGE", "k", "3", "x"), ("SETBIT", "k", "100", "1"),
                    ("BITFIELD", "k", "SET", "u8", "0", "50"), ("SET", "f", "1", "EX", "100"),
                    ("INCRBYFLOAT", "f", "1.5")]:
        run(ex, command)
    assert run(ex, ("PTTL", "k")) == 100_000
    assert run(ex, ("PTTL", "f")) == 100_000


def test_getset_and_setex_replace_the_ttl(ex: Executor) -> None:
    run(ex, ("SET", "k", "1", "EX", "100"), ("GETSET", "k", "2"))
    assert run(ex, ("TTL", "k")) == -1
    run(ex, ("SETEX", "k", "5", "3"))
    assert run(ex, ("TTL", "k")) == 5


# --- long double arithmetic ------------------------------------------------------------------
# (stored, increment, result) as redis-server 7.0 on x86-64 replies
FLOATS = [
    (b"10.5", b"0.1", b"10.6"), (b"0", b"0.024390243902439025", b"0.02439024390243902"),
    (b"1.0", b"-1.1", b"-0.1"), (b"0.1", b"0.2", b"0.3"), (b"3.0", b"1e-20", b"3"),
    (b"-3.0", b"1e-20", b"-3"), (b"17179869184", b"1.5", b"17179869185.5"),
    (b"1e100", b"1", b"9999999999999999999669353532207342619498699019828496079271391541752018669"
                     b"482644324418977840117055488"),
]


@pytest.mark.parametrize("stored, incr, result", FLOATS)
def test_incrbyfloat_digits_are_redis_long_double_digits(stored, incr, result) -> None:
    total = add_long_double(parse_long_double(stored), parse_long_double(incr))
    assert format_human(total) == result


@pytest.mark.parametrize("raw", [b"", b" 1", b"1 ", b"1e", b"0x", b"nan", b"1e-5000", b"1e5000",
                                 b"1\x00", b"--1", b"x" * 5120])
def test_strings_strtold_refuses(raw) -> None:
    assert parse_long_double(raw) is None


def test_long_double_rounding_is_to_a_64_bit_significand() -> None:
    one = parse_long_double(b"1")
    assert parse_long_double(b"1") + Fraction(1, 2**63) == add_long_double(
        one, parse_long_double(b"%r" % (2**-63)))
    assert add_long_double(one, Fraction(1, 2**64)) == 1  # a tie: to even
    assert add_long_double(one, Fraction(3, 2**65)) == 1 + Fraction(1, 2**63)


# --- LCS -------------------------------------------------------------------------------------
def test_lcs_rows_match_the_dynamic_programming_table() -> None:
    rng = random.Random(7)
    for _ in range(200):
        a = bytes(rng.choice(b"abc") for _ in range(rng.randint(0, 25)))
        b = bytes(rng.choice(b"abc") for _ in range(rng.randint(0, 25)))
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                table[i][j] = (table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1]
                               else max(table[i - 1][j], table[i][j - 1]))
        rows = lcs_rows(a, b)
        for i in range(len(a) + 1):
            for j in range(len(b) + 1):
                assert table[i][j] == j - (rows[i] & ((1 << j) - 1)).bit_count()


# --- bit ranges against a plain list of bits -------------------------------------------------
def _naive_range(size, start, end):
    if start < 0:
        start += size
    if end < 0:
        end += size
    return max(start, 0), min(max(end, 0), size - 1)


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_bitcount_and_bitpos_match_a_plain_bit_list(ex: Executor, monkeypatch, chunk) -> None:
    import aofnode.store.bitmath as bitmath
    monkeypatch.setattr(bitmath, "CHUNK", chunk)
    rng = random.Random(chunk)
    for _ in range(300):
        value = bytes(rng.choice([0, 0xFF, rng.randrange(256)]) for _ in range(rng.randrange(1, 12)))
        run(ex, ("SET", "v", value))
        bits = [(byte >> (7 - k)) & 1 for byte in value for k in range(8)]
        isbit = rng.random() < 0.5
        size = len(bits) if isbit else len(value)
        start, end = rng.randrange(-size - 3, size + 3), rng.randrange(-size - 3, size + 3)
        unit = "BIT" if isbit else "BYTE"
        lo, hi = _naive_range(size, start, end)
        if not isbit:
            lo, hi = lo * 8, hi * 8 + 7
        expected = 0 if (start < 0 and end < 0 and start > end) or lo > hi else sum(bits[lo:hi + 1])
        assert run(ex, ("BITCOUNT", "v", start, end, unit)) == expected
        for bit in (0, 1):
            hits = [p for p in range(lo, hi + 1) if bits[p] == bit] if lo <= hi else []
            assert run(ex, ("BITPOS", "v", bit, start, end, unit)) == (hits[0] if hits else -1)
        assert run(ex, ("BITCOUNT", "v")) == sum(bits)
        run(ex, ("SET", "w", bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))))
        width = max(len(value), len(run(ex, ("GET", "w"))))
        assert run(ex, ("BITOP", "XOR", "x", "v", "w")) == width
        other = run(ex, ("GET", "w")).ljust(width, b"\0")
        assert run(ex, ("GET", "x")) == bytes(a ^ b for a, b in zip(value.ljust(width, b"\0"), other))
