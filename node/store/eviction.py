"""Eviction under maxmemory: the policies, and allkeys-lru by sampling (as Redis does).

Design
------
The executor calls ``evict`` before a command while ``used_memory > maxmemory`` under
``allkeys-lru``. One eviction samples ``EVICTION_SAMPLES`` shards (a db by its share of keys,
then a random non-empty shard of it) and deletes the least recently used of their least
recently used keys (``Keyspace.lru_head``, O(1): each shard keeps its keys in access order).
Redis samples 5 random keys; sampling 5 shard heads is at least as close to true LRU (each
candidate is the oldest of ~1/256 of its db) and costs ~5 us per eviction, where skipping to a
random key of a Python dict is O(shard) (~5 us per sample at 1.2M keys, ~50 us at 12M).

Ties (keys touched by the same command share a tick) go to the first shard sampled. The caller
propagates each eviction as ``DEL`` and counts it; nothing here writes to the AOF.
"""

from __future__ import annotations

from random import Random

from aofnode.store.keyspace import NUM_DBS, SHARDS, Keyspace

__all__ = [
    "ALLKEYS_LRU", "EVICTION_SAMPLES", "MAX_EVICTIONS_PER_COMMAND", "NOEVICTION", "POLICIES",
    "evict", "pick_victim",
]

NOEVICTION = "noeviction"
ALLKEYS_LRU = "allkeys-lru"
POLICIES = (NOEVICTION, ALLKEYS_LRU)

# Redis's default maxmemory-samples: 5 gives an LRU close to exact at a low cost (Redis's docs
# compare 5 and 10); 5 shard heads here are at least as good.
EVICTION_SAMPLES = 5
# At most this many evictions before one command (~5 us each, measured at 300k keys: ~5 ms).
# One big write over a store of small keys may need more: the command then gets OOM and the
# next ones go on evicting, so the log actor never stalls for long and memory never grows past
# the limit by more than one command's write.
MAX_EVICTIONS_PER_COMMAND = 1000
# A random shard is drawn this many times before the walk to the next non-empty one: a db of n
# keys has a non-empty shard with probability ~min(1, n/256) per draw, so 64 draws fail only
# for dbs of a few keys, where the walk's bias does not matter.
_SHARD_DRAWS = 64


def _draw_db(rng: Random, dbs: list[tuple[int, int]], total: int) -> tuple[int, int]:
    """One ``(db, size)`` of ``dbs``, drawn by its share of the ``total`` keys. A lone db takes
    no number from ``rng``."""
    if len(dbs) == 1:
        return dbs[0]
    r = rng.randrange(total)
    for db, size in dbs:
        if r < size:
            return db, size
        r -= size
    return dbs[-1]


def _random_shard(keyspace: Keyspace, rng: Random, dbs: list[tuple[int, int]],
                  total: int) -> tuple[int, int]:
    """A ``(db, shard)`` with at least one key; ``dbs`` lists the non-empty ``(db, size)``
    (``total`` keys in all), and a db is drawn by its share of the keys."""
    db, size = _draw_db(rng, dbs, total)
    for _ in range(_SHARD_DRAWS):
        i = rng.randrange(SHARDS)
        if keyspace.shard_size(db, i):
            return db, i
    start = rng.randrange(SHARDS)
    for step in range(SHARDS):
        i = (start + step) % SHARDS
        if keyspace.shard_size(db, i):
            return db, i
    raise AssertionError(f"db {db} counts {size} keys but has none")


def pick_victim(keyspace: Keyspace, rng: Random,
                samples: int = EVICTION_SAMPLES) -> tuple[int, bytes] | None:
    """The ``(db, key)`` to evict: the least recently used of ``samples`` shard heads."""
    dbs = [(db, n) for db in range(NUM_DBS) if (n := keyspace.dbsize(db))]
    if not dbs:
        return None
    total = sum(n for _, n in dbs)
    best = None
    for _ in range(samples):
        db, i = _random_shard(keyspace, rng, dbs, total)
        head = keyspace.lru_head(db, i)
        if head is not None and (best is None or head[1] < best[2]):
            best = (db, head[0], head[1])
    return None if best is None else (best[0], best[1])


def evict(keyspace: Keyspace, rng: Random, limit: int,
          budget: int = MAX_EVICTIONS_PER_COMMAND) -> list[tuple[int, bytes]]:
    """Delete sampled LRU keys until ``used_memory <= limit``, the keyspace is empty or
    ``budget`` keys are gone; the ``(db, key)`` evicted, in order. Needs access tracking on."""
    evicted: list[tuple[int, bytes]] = []
    while keyspace.used_memory > limit and len(evicted) < budget:
        victim = pick_victim(keyspace, rng)
        if victim is None:
            break
        keyspace.delete(*victim)
        evicted.append(victim)
    return evicted
