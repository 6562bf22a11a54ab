"""DUMP/RESTORE: Redis's value serialisation (node/store/rdb.py), the commands (dump.py), their
AOF forms, and values moved between redis-server and aofnode both ways."""
from __future__ import annotations


import pytest
import redis

from tests.fakeclock import FakeClock
from tests.unit.test_commands import NOT_INT, SYNTAX, T0, dump, replay, run
from tests.integration.test_resp_front import _start, _wait_resp

from aofnode.protocol.errors import Error
from aofnode.store.executor import Executor
from aofnode.store.rdb import crc64, dump_value, load_value, lzf_decompress, verify_payload

# Payloads written by redis-server 7.0.15: a string it compressed with LZF, and a small hash it
# wrote as a listpack (7/13-bit, 16-bit and 64-bit integers, strings), itself LZF-compressed.
REDIS_LZF_STRING = bytes.fromhex("00c30b1b0361626361e00c020162630a0028b67f7fba109493")
REDIS_LISTPACK_HASH = bytes.fromhex(
    "10c334405917590000000a0081610201018162020201846e616d6505a878e01e001029836e656704f178ec03"
    "8362696704f4ff8000027f09ff0a007e8ad1609fc66dd8")


def test_crc64_is_redis_crc64() -> None:
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA


def test_redis_payloads_load() -> None:
    assert verify_payload(REDIS_LZF_STRING) and verify_payload(REDIS_LISTPACK_HASH)
    assert load_value(REDIS_LZF_STRING) == b"abc" * 9
    assert load_value(REDIS_LISTPACK_HASH) == {
        b"a": b"1", b"b": b"2", b"name": b"x" * 40, b"neg": b"-5000",
        b"big": b"9223372036854775807"}


def _ziplist(entries: list[bytes]) -> bytes:
    """A Redis 6 ziplist of short strings and the 4-bit immediates 0..12."""
    body = b""
    prev = 0
    for e in entries:
        if e.isdigit() and int(e) <= 12:
            enc = bytes((0xF1 + int(e),))
        else:
            enc = bytes((len(e),)) + e
        entry = bytes((prev,)) + enc
        body += entry
        prev = len(entry)
    total = 10 + len(body) + 1
    return total.to_bytes(4, "little") + (0).to_bytes(4, "little") + \
        len(entries).to_bytes(2, "little") + body + b"\xff"


def test_ziplist_hash_of_redis_6_loads() -> None:
    blob = _ziplist([b"f", b"7", b"g", b"hello"])
    body = b"\x0d" + bytes((len(blob),)) + blob + (9).to_bytes(2, "little")
    payload = body + crc64(body).to_bytes(8, "little")
    assert load_value(payload) == {b"f": b"7", b"g": b"hello"}


@pytest.mark.parametrize("value", [b"", b"hello", b"123", b"-129", b"70000", b"007", b"-0",
                                   b"9223372036854775807", bytes(range(256)) * 3,
                                   {b"a": b"1", b"b": b"x" * 20000}])
def test_dump_then_load_is_the_identity(value) -> None:
    payload = dump_value(value)
    assert verify_payload(payload) and load_value(payload) == value


def test_short_strings_are_written_as_redis_writes_them() -> None:
    assert dump_value(b"hello")[:7] == b"\x00\x05hello"
    assert dump_value(b"123")[:3] == b"\x00\xc0\x7b"
    assert dump_value(b"70000")[:6] == b"\x00\xc2\x70\x11\x01\x00"


@pytest.mark.parametrize("data, size", [(b"\x05abc", 6), (b"\x00a\xe0\xff\x00", 3), (b"\x20\x00", 3)])
def test_lzf_refuses_bad_input(data, size) -> None:
    with pytest.raises(ValueError):
        lzf_decompress(data, size)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ex(clock: FakeClock) -> Executor:
    return Executor(clock_ms=clock)


def test_restore_errors(ex: Executor) -> None:
    good = dump_value(b"v")
    run(ex, ("SET", "k", "v"))
    assert run(ex, ("RESTORE", "k", "0", good)) == Error("BUSYKEY", "Target key name already exists.")
    assert run(ex, ("RESTORE", "n", "-1", good)) == Error("ERR", "Invalid TTL value, must be >= 0")
    assert run(ex, ("RESTORE", "n", "x", good)) == NOT_INT
    assert run(ex, ("RESTORE", "n", "0", good[:-1] + b"\x00")) == Error(
        "ERR", "DUMP payload version or checksum are wrong")
    assert run(ex, ("RESTORE", "n", "0", good, "BAD")) == SYNTAX
    assert run(ex, ("RESTORE", "n", "0", good, "FREQ", "1", "IDLETIME", "1")) == SYNTAX
    assert run(ex, ("RESTORE", "n", "0", good, "FREQ", "256")) == Error(
        "ERR", "Invalid FREQ value, must be >= 0 and <= 255")
    list_type = b"\x0e\x00" + (10).to_bytes(2, "little")  # a quicklist of no nodes: empty
    list_type += crc64(list_type).to_bytes(8, "little")
    assert run(ex, ("RESTORE", "n", "0", list_type)) == Error("ERR", "Bad data format")
    assert run(ex, ("EXISTS", "n")) == 0


def test_restore_logs_what_it_made(ex: Executor) -> None:
    run(ex, ("HSET", "h", "old", "1"), ("SET", "s", "v"))
    ex.take_propagated()
    assert run(ex, ("RESTORE", "h", "5000", dump_value({b"f": b"1"}), "REPLACE")) == "OK"
    assert ex.take_propagated() == [[0, "DEL", b"h"], [0, "HSET", b"h", b"f", b"1"],
                                    [0, "PEXPIREAT", b"h", b"%d" % (T0 + 5000)]]
    assert run(ex, ("RESTORE", "t", str(T0 + 9), dump_value(b"x"), "ABSTTL")) == "OK"
    assert ex.take_propagated() == [[0, "SET", b"t", b"x", b"PXAT", b"%d" % (T0 + 9)]]
    assert run(ex, ("RESTORE", "s", "1", dump_value(b"x"), "REPLACE", "ABSTTL")) == "OK"
    assert ex.take_propagated() == [[0, "DEL", b"s"]]  # a TTL already passed: no key
    assert run(ex, ("EXISTS", "s")) == 0


def test_dump_of_every_type(ex: Executor) -> None:
    run(ex, ("RPUSH", "l", "a", "b"), ("LPUSH", "l", "z"), ("SADD", "s", "m", "7"),
        ("ZADD", "z", "1.5", "a", "-inf", "b"), ("HSET", "h", "f", "v"), ("SET", "t", "x"))
    for key in ("l", "s", "z", "h", "t"):
        payload = run(ex, ("DUMP", key))
        assert run(ex, ("RESTORE", key + "2", "0", payload)) == "OK"
        assert run(ex, ("DUMP", key + "2")) == payload
    assert run(ex, ("LRANGE", "l2", "0", "-1")) == [b"z", b"a", b"b"]
    assert sorted(run(ex, ("SMEMBERS", "s2"))) == [b"7", b"m"]
    assert run(ex, ("ZRANGE", "z2", "0", "-1", "WITHSCORES")) == [b"b", b"-inf", b"a", b"1.5"]


def test_restore_of_collections_logs_write_commands(ex: Executor) -> None:
    run(ex, ("SET", "l", "old"))
    ex.take_propagated()
    assert run(ex, ("RESTORE", "l", "0", dump_value([[], [b"a", b"b"]]), "REPLACE")) == "OK"
    assert run(ex, ("RESTORE", "s", "0", dump_value(({b"m": None},)))) == "OK"
    assert run(ex, ("RESTORE", "z", "5000", dump_value(({b"a": 0.5}, [[(0.5, b"a")]])))) == "OK"
    assert ex.take_propagated() == [
        [0, "DEL", b"l"], [0, "RPUSH", b"l", b"a", b"b"], [0, "SADD", b"s", b"m"],
        [0, "ZADD", b"z", b"0.5", b"a"], [0, "PEXPIREAT", b"z", b"%d" % (T0 + 5000)]]


def test_restore_of_a_big_collection_logs_entries_of_about_a_mebibyte(ex: Executor) -> None:
    members = {b"%08d" % i + b"x" * 1000: None for i in range(3000)}  # ~3 MB of members
    assert run(ex, ("RESTORE", "s", "0", dump_value((members,)))) == "OK"
    entries = ex.take_propagated()
    assert [e[1] for e in entries] == ["SADD"] * len(entries) and 3 <= len(entries) <= 4
    assert sum(len(e) - 3 for e in entries) == len(members)


def test_restore_replays_to_the_same_keyspace(clock: FakeClock) -> None:
    live = Executor(clock_ms=clock)
    run(live, ("SET", "s", "old"), ("HSET", "h", "a", "1"))
    run(live, ("RESTORE", "s", "0", dump_value({b"x": b"y"}), "REPLACE"),
        ("RESTORE", "h", "1000", dump_value(b"now a string"), "REPLACE"),
        ("RESTORE", "n", "0", dump_value(b"123")), ("COPY", "n", "n2", "DB", "2"),
        ("RESTORE", "l", "0", dump_value([[b"b", b"a"], [b"c"]])),
        ("RESTORE", "st", "0", dump_value(({b"1": None, b"x": None},))),
        ("RESTORE", "z", "9000", dump_value(({b"a": 2.0, b"b": -0.5}, [[(-0.5, b"b"), (2.0, b"a")]]))))
    assert dump(replay(live.take_propagated(), clock)) == dump(live)


VALUES = {
    "short": b"hello", "int": b"-129", "big-int": b"9223372036854775807", "empty": b"",
    "compressible": b"x" * 65535, "binary": bytes(range(256)) * 10,
    "small-hash": {b"a": b"1", b"b": b"2", b"neg": b"-100000000", b"u64": b"9223372036854775808"},
    "long-fields": {b"s06": b"x" * 31, b"s14": b"x" * 8191, b"s32": b"x" * 65535, b"imm": b"12"},
    "big-hash": {b"f%d" % i: b"v%d" % i for i in range(300)},
    "small-list": [b"a", b"1", b"-5000", b"x" * 70],
    "big-list": [b"e%d" % i for i in range(1000)] + [b"y" * 70000],  # a node of one long string
    "int-set": {b"1", b"-3", b"70000", b"9223372036854775807"},
    "small-set": {b"a", b"b", b"1"},
    "big-set": {b"m%d" % i for i in range(300)},
    "small-zset": {b"a": 1.5, b"b": -3.0, b"c": float("inf"), b"d": 0.1},
    "big-zset": {b"m%d" % i: i / 3 for i in range(300)},
}


def _write(c: redis.Redis, key: str, value) -> None:
    if isinstance(value, bytes):
        c.set(key, value)
    elif isinstance(value, list):
        c.rpush(key, *value)
    elif isinstance(value, set):
        c.sadd(key, *value)
    elif isinstance(next(iter(value.values())), float):
        c.zadd(key, value)
    else:
        c.hset(key, mapping=value)


def _read(c: redis.Redis, key: str, value):
    if isinstance(value, bytes):
        return c.get(key)
    if isinstance(value, list):
        return c.lrange(key, 0, -1)
    if isinstance(value, set):
        return c.smembers(key)
    if isinstance(next(iter(value.values())), float):
        return dict(c.zrange(key, 0, -1, withscores=True))
    return c.hgetall(key)


def test_values_move_between_redis_server_and_aofnode(make_node, redis_port) -> None:
    node, port = _start(make_node, appendfsync="everysec")
    with redis.Redis(port=redis_port) as r, redis.Redis(port=port, socket_timeout=10) as a:
        r.flushall()
        for key, value in VALUES.items():
            _write(r, key, value)
            r.pexpire(key, 600_000)
        for key, value in VALUES.items():
            assert a.restore(key, 600_000, r.dump(key))
            assert r.restore(key + ":back", 0, a.dump(key))
            assert _read(a, key, value) == value == _read(r, key + ":back", value), key
            assert 590_000 < a.pttl(key) <= 600_000
        before = {key: a.dump(key) for key in VALUES}
    assert node.stop() == 0
    node.start()
    _wait_resp(port)
    with redis.Redis(port=redis_port) as r, redis.Redis(port=port, socket_timeout=10) as a:
        assert {key: a.dump(key) for key in VALUES} == before  # the AOF rebuilt every value
        for key, value in VALUES.items():
            assert r.restore(key + ":again", 0, a.dump(key))
            assert _read(r, key + ":again", value) == value, key
