"""RDB payloads of lists, sets and sorted sets (node/store/rdb.py): what redis-server writes
loads, what aofnode writes loads back the same, and malformed payloads are refused."""
from __future__ import annotations

import math
import random
import struct

import pytest

from aofnode.store import listcore
from aofnode.store.rdb import crc64, dump_value, load_value, verify_payload
from aofnode.store.zsetcore import z_from_scores


def _payload(body: bytes, version: int = 10) -> bytes:
    body += version.to_bytes(2, "little")
    return body + crc64(body).to_bytes(8, "little")


def _ziplist(entries: list[bytes]) -> bytes:
    """A Redis 6 ziplist of short strings and the 4-bit immediates 0..12."""
    body, prev = b"", 0
    for e in entries:
        enc = bytes((0xF1 + int(e),)) if e.isdigit() and int(e) <= 12 else bytes((len(e),)) + e
        entry = bytes((prev,)) + enc
        body += entry
        prev = len(entry)
    return (10 + len(body) + 1).to_bytes(4, "little") + bytes(4) + \
        len(entries).to_bytes(2, "little") + body + b"\xff"


def _blob(b: bytes) -> bytes:
    assert len(b) < 64
    return bytes((len(b),)) + b


def _plain(value):
    """A loaded value as plain Python data: list, set or {member: score}."""
    if value.__class__ is list:
        return listcore.items(value)
    if len(value) == 1:
        return set(value[0])
    return dict(value[0])


# Written by redis-server 7.0.15 (DUMP), one per encoding it uses for these types.
REDIS_PAYLOADS = [
    ("quicklist 2, one listpack node",
     "120102c3194059115900000004008161020101f178ec03e04678e03c000148ff0a001886d022af019cca",
     [b"a", b"1", b"-5000", b"x" * 70]),
    ("quicklist 2, two listpack nodes",
     "1202020d0d0000000200816102816202ff020a0a0000000100816302ff0a00a60192a8f736b5c0",
     [b"a", b"b", b"c"]),
    ("intset", "0b180400000004000000fdffffff0100000002000000701101000a0015ef637b140fcd64",
     {b"-3", b"1", b"2", b"70000"}),
    ("plain set", "02030162c00101610a0069f402e5f760831a", {b"a", b"b", b"1"}),
    ("zset listpack",
     "1122220000000800816302dffd0281610283312e3504816202020181640283696e6604ff0a00270e8ae94204c247",
     {b"c": -3.0, b"a": 1.5, b"b": 2.0, b"d": math.inf}),
]

# Redis 6's forms (RDB 9), built here: quicklist of ziplists, zset ziplist, zset text scores.
BUILT_PAYLOADS = [
    ("quicklist of ziplists",
     _payload(b"\x0e\x02" + _blob(_ziplist([b"a", b"7"])) + _blob(_ziplist([b"zz"])), 9),
     [b"a", b"7", b"zz"]),
    ("bare list ziplist", _payload(b"\x0a" + _blob(_ziplist([b"q", b"12"])), 9), [b"q", b"12"]),
    ("zset ziplist", _payload(b"\x0c" + _blob(_ziplist([b"m", b"3", b"n", b"-1.25"])), 9),
     {b"m": 3.0, b"n": -1.25}),
    ("zset text scores", _payload(b"\x03\x02\x01a\x031.5\x01b\xfe", 9), {b"a": 1.5, b"b": math.inf}),
    ("plain list", _payload(b"\x01\x02\x01a\xc0\x05"), [b"a", b"5"]),
    ("quicklist 2 plain node", _payload(b"\x12\x01\x01\x03big"), [b"big"]),
]


@pytest.mark.parametrize("name, payload, expected", [
    (n, bytes.fromhex(h), e) for n, h, e in REDIS_PAYLOADS] + BUILT_PAYLOADS)
def test_payload_loads(name, payload, expected) -> None:
    assert verify_payload(payload), name
    assert _plain(load_value(payload)) == expected


@pytest.mark.parametrize("value", [
    listcore.new_list([b"a", b"1", b"", b"x" * 20000]),
    [[b"b", b"a"], [b"c"]],  # a list with a head part: a b c
    ({b"m": None, b"12": None, b"-7": None},),
    z_from_scores({b"a": 1.5, b"b": -math.inf, b"c": 0.1, b"d": 1e300}),
])
def test_dump_then_load_keeps_the_value(value) -> None:
    payload = dump_value(value)
    assert verify_payload(payload)
    assert _plain(load_value(payload)) == _plain(value)


def test_written_types_are_the_simple_forms_redis_70_loads() -> None:
    assert dump_value(listcore.new_list([b"a"]))[:3] == b"\x01\x01\x01"
    assert dump_value(({b"a": None},))[:3] == b"\x02\x01\x01"
    assert dump_value(z_from_scores({b"a": 2.0}))[:12] == b"\x05\x01\x01a" + struct.pack("<d", 2.0)


BAD = [
    ("huge count, no elements", b"\x01\x81" + (1 << 62).to_bytes(8, "big")),
    ("empty list", b"\x01\x00"),
    ("empty set", b"\x02\x00"),
    ("duplicate set member", b"\x02\x02\x01a\x01a"),
    ("duplicate zset member", b"\x05\x02\x01a" + struct.pack("<d", 1) + b"\x01a" + struct.pack("<d", 2)),
    ("NaN score", b"\x05\x01\x01a" + struct.pack("<d", math.nan)),
    ("NaN text score", b"\x03\x01\x01a\xfd"),
    ("bad text score", b"\x03\x01\x01a\x02xy"),
    ("double cut short", b"\x05\x01\x01a\x00\x00"),
    ("quicklist 2 bad container", b"\x12\x01\x07\x01a"),
    ("quicklist 2 empty listpack node", b"\x12\x01\x02\x07\x07\x00\x00\x00\x00\x00\xff"),
    ("quicklist huge node count", b"\x0e\x80\xff\xff\xff\xff"),
    ("intset bad width", b"\x0b\x08\x03\x00\x00\x00\x00\x00\x00\x00"),
    ("intset count past the blob", b"\x0b\x0a\x02\x00\x00\x00\xff\xff\xff\x7f\x01\x00"),
    ("intset unsorted", b"\x0b\x0c\x02\x00\x00\x00\x02\x00\x00\x00\x02\x00\x01\x00"),
    ("zset listpack odd items", b"\x11" + _blob(bytes.fromhex("08000000010081") + b"a" + b"\x02\xff")),
    ("zset ziplist bad score", b"\x0c" + _blob(_ziplist([b"m", b"x"]))),
    ("unknown type", b"\x07\x00"),
    ("set listpack (Redis 7.2)", b"\x14" + _blob(bytes.fromhex("0700000000 00ff".replace(" ", "")))),
]


@pytest.mark.parametrize("name, body", BAD, ids=[n for n, _ in BAD])
def test_malformed_payload_is_refused(name, body) -> None:
    payload = _payload(body)
    assert verify_payload(payload)
    with pytest.raises(ValueError):
        load_value(payload)


def test_truncations_of_every_redis_payload_are_refused() -> None:
    for _, h, _ in REDIS_PAYLOADS:
        body = bytes.fromhex(h)[:-10]
        for cut in range(1, len(body)):
            try:
                load_value(_payload(body[:cut]))
            except ValueError:
                continue
            pytest.fail(f"{h[:20]} cut at {cut} loaded")


def test_mutated_payloads_load_or_are_refused_never_crash() -> None:
    rng = random.Random(7)
    bodies = [bytes.fromhex(h)[:-10] for _, h, _ in REDIS_PAYLOADS]
    bodies += [p[:-10] for _, p, _ in BUILT_PAYLOADS]
    for _ in range(20000):
        body = bytearray(rng.choice(bodies))
        for _ in range(rng.randint(1, 3)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        try:
            load_value(_payload(bytes(body)))
        except ValueError:
            pass
