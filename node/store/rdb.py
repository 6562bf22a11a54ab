"""Redis's serialisation of one value (DUMP/RESTORE payloads), RDB version 10 (Redis 7.0).

A payload is ``<type byte> <value> <RDB version, 2 bytes LE> <CRC-64, 8 bytes LE>``; the CRC
(Jones polynomial, reflected, as Redis's crc64.c) covers everything before it. The building
blocks (lengths, strings, LZF, listpacks, ziplists) are in ``rdbcodec.py``.

Written: a string as type 0 (one RDB string), a hash as type 4, a list as type 1 (a length,
then its elements), a set as type 2 (the same for members), a sorted set as type 5 (member,
then its score as a little-endian binary double). Redis 7.0 loads each of these whatever the
value's size (it converts to its own encodings as it loads). Read: those, and what Redis 6 and
7.0 write: hashes as listpack (16) or ziplist (13); lists as quicklist of listpacks (18) or of
ziplists (14), or a bare ziplist (10); sets as intset (11); sorted sets as listpack (17),
ziplist (12) or text scores (3). Any other type or a malformed payload raises ``ValueError``
(RESTORE's "Bad data format"), as do an empty collection, a duplicate set member, hash field
or sorted-set member, and a NaN score: a hostile payload gets an error, never a value Redis
could not hold. Every element takes at least one byte of the payload, so decoding is bounded
by the payload's size.
"""

from __future__ import annotations

import math
import struct

from aofnode.store import listcore
from aofnode.store.rdbcodec import (
    RDB_VERSION, Reader, crc64, encode_length, encode_string, listpack_items, lzf_decompress,
    verify_payload, ziplist_items,
)
from aofnode.store.typed import SET, type_name
from aofnode.store.zsetcore import z_from_scores

__all__ = ["RDB_VERSION", "crc64", "dump_value", "load_value", "verify_payload", "lzf_decompress"]

_STRING, _LIST, _SET, _ZSET, _HASH, _ZSET_2 = 0, 1, 2, 3, 4, 5
_LIST_ZIPLIST, _SET_INTSET, _ZSET_ZIPLIST, _HASH_ZIPLIST = 10, 11, 12, 13
_LIST_QUICKLIST, _HASH_LISTPACK, _ZSET_LISTPACK, _LIST_QUICKLIST_2 = 14, 16, 17, 18
_NODE_PLAIN, _NODE_PACKED = 1, 2  # a quicklist 2 node: one big element, or a listpack
_DOUBLE = struct.Struct("<d")


def dump_value(value) -> bytes:
    """DUMP's payload for a value of any type."""
    if value.__class__ is bytes:
        parts = [bytes((_STRING,)), encode_string(value)]
    elif value.__class__ is dict:
        parts = [bytes((_HASH,)), encode_length(len(value))]
        for field, v in value.items():
            parts += (encode_string(field), encode_string(v))
    elif value.__class__ is list:
        elements = listcore.items(value)
        parts = [bytes((_LIST,)), encode_length(len(elements))]
        parts += map(encode_string, elements)
    elif type_name(value) == SET:
        parts = [bytes((_SET,)), encode_length(len(value[0]))]
        parts += map(encode_string, value[0])
    else:
        parts = [bytes((_ZSET_2,)), encode_length(len(value[0]))]
        for member, score in value[0].items():
            parts += (encode_string(member), _DOUBLE.pack(score))
    body = b"".join(parts) + RDB_VERSION.to_bytes(2, "little")
    return body + crc64(body).to_bytes(8, "little")


def load_value(payload: bytes):
    """The value of a payload whose footer ``verify_payload`` accepted; ValueError if it is
    malformed or of a type aofnode does not hold."""
    try:
        return _load(Reader(payload[:-10]))
    except (IndexError, struct.error):  # a listpack, ziplist or double cut short
        raise ValueError("truncated entry") from None


def _strings(reader: Reader, count: int) -> list[bytes]:
    # One element at a time: a forged count meets the end of the payload, not a huge list.
    out = []
    for _ in range(count):
        out.append(reader.string())
    return out


def _load(reader: Reader):
    kind = reader.byte()
    if kind == _STRING:
        return reader.string()
    if kind in (_HASH, _HASH_LISTPACK, _HASH_ZIPLIST):
        if kind == _HASH:
            items = _strings(reader, 2 * reader.plain_length())
        else:
            items = _blob_items(kind == _HASH_LISTPACK, reader.string())
        return _pairs_to_hash(items)
    if kind in (_LIST, _LIST_ZIPLIST, _LIST_QUICKLIST, _LIST_QUICKLIST_2):
        return _nonempty(listcore.new_list(_list_items(kind, reader)))
    if kind == _SET:
        return _to_set(_strings(reader, reader.plain_length()))
    if kind == _SET_INTSET:
        return _to_set(_intset_items(reader.string()))
    if kind in (_ZSET, _ZSET_2):
        return _to_zset(_zset_pairs(kind == _ZSET_2, reader))
    if kind in (_ZSET_LISTPACK, _ZSET_ZIPLIST):
        items = _blob_items(kind == _ZSET_LISTPACK, reader.string())
        if len(items) % 2:
            raise ValueError("a sorted set needs member/score pairs")
        return _to_zset([(m, _text_score(s)) for m, s in zip(items[::2], items[1::2])])
    raise ValueError(f"RDB type {kind} is not one aofnode loads")


def _blob_items(listpack: bool, blob: bytes) -> list[bytes]:
    return listpack_items(blob) if listpack else ziplist_items(blob)


def _list_items(kind: int, reader: Reader) -> list[bytes]:
    if kind == _LIST:
        return _strings(reader, reader.plain_length())
    if kind == _LIST_ZIPLIST:
        return ziplist_items(reader.string())
    out: list[bytes] = []
    for _ in range(reader.plain_length()):
        if kind == _LIST_QUICKLIST:
            node = ziplist_items(reader.string())
        else:
            container = reader.plain_length()
            if container == _NODE_PLAIN:
                node = [reader.string()]
            elif container == _NODE_PACKED:
                node = listpack_items(reader.string())
            else:
                raise ValueError("bad quicklist node container")
        if not node:
            raise ValueError("empty quicklist node")
        out += node
    return out


def _intset_items(blob: bytes) -> list[bytes]:
    if len(blob) < 8:
        raise ValueError("bad intset header")
    width, count = int.from_bytes(blob[:4], "little"), int.from_bytes(blob[4:8], "little")
    if width not in (2, 4, 8) or len(blob) != 8 + width * count:
        raise ValueError("bad intset size")
    ints = [int.from_bytes(blob[i:i + width], "little", signed=True)
            for i in range(8, len(blob), width)]
    if any(a >= b for a, b in zip(ints, ints[1:])):
        raise ValueError("intset not sorted")
    return [b"%d" % n for n in ints]


def _zset_pairs(binary: bool, reader: Reader) -> list[tuple[bytes, float]]:
    pairs = []
    for _ in range(reader.plain_length()):
        member = reader.string()
        if binary:
            score = _DOUBLE.unpack(reader.take(8))[0]
        else:  # Redis's rdbLoadDoubleValue: a length byte, or 253/254/255 for nan/+inf/-inf
            n = reader.byte()
            score = {253: math.nan, 254: math.inf, 255: -math.inf}.get(n)
            if score is None:
                score = _text_score(reader.take(n))
        pairs.append((member, score))
    return pairs


def _text_score(raw: bytes) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("bad score") from None


def _nonempty(value):
    if not value[0] and not value[1]:
        raise ValueError("empty list")
    return value


def _to_set(members: list[bytes]) -> tuple[dict]:
    value = dict.fromkeys(members)
    if not value or len(value) != len(members):
        raise ValueError("empty set or duplicate member")
    return (value,)


def _to_zset(pairs: list[tuple[bytes, float]]):
    scores = {m: s + 0.0 for m, s in pairs}  # + 0.0: a -0 score is stored as 0
    if not scores or len(scores) != len(pairs) or any(s != s for s in scores.values()):
        raise ValueError("empty sorted set, duplicate member or NaN score")
    return z_from_scores(scores)


def _pairs_to_hash(items: list[bytes]) -> dict:
    if len(items) % 2 or not items:
        raise ValueError("a hash needs field/value pairs")
    h = dict(zip(items[::2], items[1::2]))
    if len(h) != len(items) // 2:
        raise ValueError("duplicate hash field")
    return h
