"""The memory model behind ``used_memory``: what one key, value, field, TTL costs in bytes.

Design
------
An estimate, not a measurement: the payload bytes (``len`` of keys, values, fields) plus a fixed
overhead per object, measured once with tracemalloc on CPython 3.11 / x86-64 (100k keys in
one db; the figures are the bytes Python asked the allocator for, per entry, minus the payload).
The keyspace (``keyspace.py``) adds and subtracts these sizes on every change, so
``Keyspace.used_memory`` is O(1) to read. The sizes depend only on the value, never on history,
which is what keeps the running total exact (``Keyspace.recount_memory`` checks it in tests).

Not counted: allocator rounding and fragmentation (pymalloc rounds to 16 bytes, arenas are
never returned half-used), the expiry heap's stale entries, reply and AOF buffers. Checked
against RSS: 100k SETs in a fresh process grew RSS by 1.04-1.11x the growth of ``used_memory``
for values of 10-100 bytes (16-byte values the worst), 1.03x for 1 KB values, the same with the
allkeys-lru access clock (tests/unit/test_maxmemory_store.py keeps it within 0.8-1.5x); in a running
node, buffers included, 1.10-1.19x (docs/commands.md). A rewrite child's copy-on-write comes on
top: size ``maxmemory`` with that.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ACCESS_OVERHEAD", "EMPTY_KEYSPACE_BYTES", "FIELD_OVERHEAD", "HASH_OVERHEAD", "ITEM_OVERHEAD",
    "KEY_ACCESS_OVERHEAD", "LIST_OVERHEAD",
    "MEMBER_OVERHEAD", "SET_OVERHEAD", "STRING_OVERHEAD", "TTL_OVERHEAD", "ZMEMBER_OVERHEAD",
    "ZSET_OVERHEAD", "entry_size", "field_size",
]

# Every key's access stamp (keyspace.py, "Access stamps"): an entry in its shard's access dict
# (entry, index slot, growth slack); the stamp's int is shared by the keys touched in the same
# second (LRU) or with the same minute and counter (LFU). Measured 47.2 bytes per key with
# tracemalloc, 100k keys over 256 shards. It is part of each per-key overhead below, as Redis's
# ``lru`` field is part of every object.
KEY_ACCESS_OVERHEAD = 47
# A string key: the key's and the value's bytes headers (33 bytes each) and the key's share of
# its shard dict (~47 bytes: entry, index slot, growth slack). Measured 113.1 bytes for values
# of 7 to 1006 bytes, plus the access stamp.
STRING_OVERHEAD = 113 + KEY_ACCESS_OVERHEAD
# A hash key without its fields: the key's header and shard slot (~80 bytes) and the dict
# object with its smallest table (~200 bytes). Fitted with FIELD_OVERHEAD on hashes of 1, 5,
# 20 and 100 fields (the estimate is within -9%..+22% of the measured size at each), plus the
# access stamp.
HASH_OVERHEAD = 280 + KEY_ACCESS_OVERHEAD
# One hash field: the field's and the value's bytes headers and the dict entry with slack
# (measured 87-111 bytes between 20 and 100 fields, as the dict grows in powers of two).
FIELD_OVERHEAD = 100
# A TTL: the expires dict slot, the int object and the expiry heap's (ms, key) tuple and slot.
# Measured 147 bytes per key (260.3 with a TTL - 113.1 without).
TTL_OVERHEAD = 147
# allkeys-lru's order on top of the access stamp: the shard's access dict is then an OrderedDict,
# whose list node per key makes the shard's least recently used key O(1). Measured 100.3 bytes
# per key for an OrderedDict against 47.2 for a dict (100k keys, 256 shards, shared stamps).
ACCESS_OVERHEAD = 53
# Lists, sets and sorted sets (node/store/lists.py, sets.py, zsets.py), fitted with tracemalloc
# on collections of 10, 100 and 1,000 elements of 10 bytes (the estimate is within ~-25%..+35%
# of the measured size at each: sets grow their table in powers of two).
# Each key's overhead includes its access stamp.
# A list: the key's header and shard slot, the three list objects (listcore.py). One item:
# its bytes header and the list's pointer with growth slack (measured 42-43 bytes).
LIST_OVERHEAD = 280 + KEY_ACCESS_OVERHEAD
ITEM_OVERHEAD = 42
# A set: the key, the 1-tuple and the dict with its smallest table. One member: its bytes
# header and its share of the dict (measured 70-81 bytes per member at 10 to 1,000 members; the
# estimate is within -15%..+24% of the measured size at 1, 10, 100 and 1,000 members).
SET_OVERHEAD = 240 + KEY_ACCESS_OVERHEAD
MEMBER_OVERHEAD = 75
# A sorted set: the key, the (dict, index) tuple, the dict and the index list. One member: its
# bytes header (shared by the dict and the index), the dict entry, the float, the index's
# (score, member) tuple and pointer (measured 159-179 bytes; the chunked index, zsetindex.py,
# measured within 0.3% of one flat list at 10 to 100,000 members). A set's random-pick pool
# (randpool.py, 8 bytes a member, at most 4 alive) is not counted: it is a cache beside the
# keyspace.
ZSET_OVERHEAD = 300 + KEY_ACCESS_OVERHEAD
ZMEMBER_OVERHEAD = 165


def field_size(field: bytes, value: bytes) -> int:
    """The estimated size of one hash field."""
    return len(field) + len(value) + FIELD_OVERHEAD


def entry_size(key: bytes, value: Any) -> int:
    """The estimated size of ``key`` holding ``value`` (without its TTL or access clock). ``value``
    is any stored form (bytes, dict, list or tuple: see the branches); it is ``Any`` because the
    branches test the exact class, which mypy does not narrow; ``isinstance`` costs 7-18 ns more a
    call here.

    O(1) for a string; O(elements) for a hash, list, set or sorted set, as cheap as the C loops of ``map``: only called
    when the whole hash is stored or dropped, which costs O(fields) anyway (freeing it).
    """
    cls = value.__class__
    if cls is bytes:
        return len(key) + len(value) + STRING_OVERHEAD
    if cls is list:  # a list: [head reversed, tail] (listcore.py)
        head, tail = value
        return (len(key) + LIST_OVERHEAD + sum(map(len, head)) + sum(map(len, tail))
                + ITEM_OVERHEAD * (len(head) + len(tail)))
    if cls is tuple:
        members = value[0]
        if len(value) == 1:  # a set: (member -> None dict,)
            return len(key) + SET_OVERHEAD + sum(map(len, members)) + MEMBER_OVERHEAD * len(members)
        # a sorted set: (member -> score dict, sorted index)
        return len(key) + ZSET_OVERHEAD + sum(map(len, members)) + ZMEMBER_OVERHEAD * len(members)
    return (len(key) + HASH_OVERHEAD + sum(map(len, value)) + sum(map(len, value.values()))
            + FIELD_OVERHEAD * len(value))


# The empty keyspace: 16 databases of SHARDS data dicts and SHARDS access dicts of 64 bytes
# each (sys.getsizeof({}) on CPython 3.11), counted against maxmemory as Redis counts its
# startup memory.
EMPTY_KEYSPACE_BYTES = 16 * 256 * 64 * 2
