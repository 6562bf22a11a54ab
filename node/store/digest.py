"""DEBUG DIGEST and DIGEST-VALUE: a fingerprint of the keyspace, or of some values.

Design:
- Each key's digest is SHA-1 over its db, name, type, value and expire, each part
  length-prefixed so no two different keys can be written alike. The keyspace's digest is the
  XOR of its keys' digests: independent of the order the keys are stored or walked in (shards,
  insertion order, a replay's order), as Redis's is. 40 zeros for an empty keyspace, as Redis.
- A value is written in a canonical order: a hash's fields, a set's members and a sorted set's
  members sorted (their order in aofnode's dicts depends on history), a list in its order, a
  score as ``repr`` of the float (the exact double). So a keyspace rebuilt from its AOF has the
  same digest (DEBUG RELOAD checks exactly that). The bytes are not Redis's: two servers'
  digests are not comparable, only one server's over time.
- Keys whose TTL passed but are not reclaimed yet count, as in Redis (nothing is deleted).
"""

from __future__ import annotations

import hashlib

from aofnode.store import listcore
from aofnode.store.keyspace import NUM_DBS
from aofnode.store.typed import type_name

__all__ = ["keyspace_digest", "value_digest", "ZERO_DIGEST"]

ZERO_DIGEST = "0" * 40


def _put(h, part: bytes) -> None:
    h.update(len(part).to_bytes(8, "little"))
    h.update(part)


def _value_parts(value) -> list[bytes]:
    kind = type_name(value)
    if kind == "string":
        return [value]
    if kind == "list":
        return listcore.items(value)
    if kind == "hash":
        return [x for field in sorted(value) for x in (field, value[field])]
    if kind == "set":
        return sorted(value[0])
    scores = value[0]
    return [x for member in sorted(scores) for x in (member, repr(scores[member]).encode())]


def _hash_value(h, value) -> None:
    _put(h, type_name(value).encode())
    parts = _value_parts(value)
    h.update(len(parts).to_bytes(8, "little"))
    for part in parts:
        _put(h, part)


def value_digest(value) -> str:
    """DIGEST-VALUE's digest of one value (the key's name and TTL left out, as Redis)."""
    if value is None:
        return ZERO_DIGEST
    h = hashlib.sha1()
    _hash_value(h, value)
    return h.hexdigest()


def keyspace_digest(keyspace) -> str:
    acc = 0
    for db in range(NUM_DBS):
        if not keyspace.dbsize(db):
            continue
        for key, value, expire in keyspace.entries(db):
            h = hashlib.sha1()
            _put(h, str(db).encode())
            _put(h, key)
            _hash_value(h, value)
            _put(h, b"" if expire is None else str(expire).encode())
            acc ^= int.from_bytes(h.digest(), "big")
    return f"{acc:040x}" if acc else ZERO_DIGEST
