"""Eviction under maxmemory: Redis 7.0's policies, by sampling as Redis does.

Design
------
The executor calls ``evict`` before a command while ``used_memory > maxmemory`` under any
policy but ``noeviction``. One eviction draws ``samples`` candidates (maxmemory-samples,
default 5: a db by its share of the keys, or of the keys with a TTL for ``volatile-*``, then a
random non-empty shard of it) and deletes the best one:

* ``allkeys-lru``: each candidate is a shard's least recently used key (``Keyspace.lru_head``,
  O(1): under this policy each shard keeps its keys in access order). Redis samples 5 random
  keys; 5 shard heads are at least as close to true LRU (each is the oldest of ~1/256 of its
  db) and cost ~5 us per eviction, where a random key of a Python dict is O(shard).
* ``volatile-lru`` (the oldest access), ``allkeys-lfu`` / ``volatile-lfu`` (the lowest decayed
  counter), ``volatile-ttl`` (the soonest expire): random keys (``Keyspace.sample_key``), scored
  as Redis's evictionPoolPopulate scores them. A draw walks its shard in C: ~2 ns a key, so
  ~5 us per sample with 1M keys in a db, ~50 us with 12M (measured for allkeys-lru before).
* ``allkeys-random`` / ``volatile-random``: one random key.

Ties (access times in seconds, as Redis's LRU clock) go to the first candidate drawn. Redis also
keeps a pool of 16 good candidates between evictions; here each eviction samples afresh. The
caller propagates each eviction as ``DEL`` and counts it; nothing here writes to the AOF.
"""

from __future__ import annotations

from random import Random

from aofnode.store.keyspace import NUM_DBS, SHARDS, Keyspace

__all__ = [
    "ALLKEYS_LFU", "ALLKEYS_LRU", "EVICTION_SAMPLES", "LFU_POLICIES", "MAX_EVICTIONS_PER_COMMAND",
    "NOEVICTION", "POLICIES", "evict", "pick_victim",
]

NOEVICTION = "noeviction"
ALLKEYS_LRU = "allkeys-lru"
ALLKEYS_LFU = "allkeys-lfu"
VOLATILE_LRU = "volatile-lru"
VOLATILE_LFU = "volatile-lfu"
VOLATILE_TTL = "volatile-ttl"
VOLATILE_RANDOM = "volatile-random"
ALLKEYS_RANDOM = "allkeys-random"
# In Redis 7.0's order (config.c), which CONFIG SET's error text lists.
POLICIES = (VOLATILE_LRU, VOLATILE_LFU, VOLATILE_RANDOM, VOLATILE_TTL, ALLKEYS_LRU, ALLKEYS_LFU,
            ALLKEYS_RANDOM, NOEVICTION)
LFU_POLICIES = frozenset((ALLKEYS_LFU, VOLATILE_LFU))

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
                  total: int, volatile: bool = False) -> tuple[int, int]:
    """A ``(db, shard)`` with at least one key (with a TTL if ``volatile``); ``dbs`` lists the
    non-empty ``(db, size)`` (``total`` keys in all), and a db is drawn by its share."""
    size_of = keyspace.expires_shard_size if volatile else keyspace.shard_size
    db, size = _draw_db(rng, dbs, total)
    for _ in range(_SHARD_DRAWS):
        i = rng.randrange(SHARDS)
        if size_of(db, i):
            return db, i
    start = rng.randrange(SHARDS)
    for step in range(SHARDS):
        i = (start + step) % SHARDS
        if size_of(db, i):
            return db, i
    raise AssertionError(f"db {db} counts {size} keys but has none")


def _score(keyspace: Keyspace, policy: str, db: int, key: bytes) -> int:
    """Higher is a better victim, as Redis's evictionPoolPopulate's ``idle``."""
    if policy in LFU_POLICIES:
        return 255 - keyspace.lfu_freq(db, key)
    if policy == VOLATILE_TTL:
        return -(keyspace.get_expire(db, key) or 0)
    return keyspace.idle_seconds(db, key)


def pick_victim(keyspace: Keyspace, rng: Random, samples: int = EVICTION_SAMPLES,
                policy: str = ALLKEYS_LRU) -> tuple[int, bytes] | None:
    """The ``(db, key)`` to evict under ``policy`` (see the module docstring)."""
    volatile = policy.startswith("volatile-")
    count = keyspace.expires_count if volatile else keyspace.dbsize
    dbs = [(db, n) for db in range(NUM_DBS) if (n := count(db))]
    if not dbs:
        return None
    total = sum(n for _, n in dbs)
    if policy in (ALLKEYS_RANDOM, VOLATILE_RANDOM):
        samples = 1
    best = None
    for _ in range(samples):
        db, i = _random_shard(keyspace, rng, dbs, total, volatile)
        if policy == ALLKEYS_LRU:
            head = keyspace.lru_head(db, i)
            if head is not None and (best is None or -head[1] > best[2]):
                best = (db, head[0], -head[1])
            continue
        key = keyspace.sample_key(db, i, rng, volatile)
        if key is None:
            continue
        score = _score(keyspace, policy, db, key)
        if best is None or score > best[2]:
            best = (db, key, score)
    return None if best is None else (best[0], best[1])


def evict(keyspace: Keyspace, rng: Random, limit: int,
          budget: int = MAX_EVICTIONS_PER_COMMAND, policy: str = ALLKEYS_LRU,
          samples: int = EVICTION_SAMPLES) -> list[tuple[int, bytes]]:
    """Delete sampled keys under ``policy`` until ``used_memory <= limit``, nothing is left to
    evict or ``budget`` keys are gone; the ``(db, key)`` evicted, in order. allkeys-lru needs
    the access dicts ordered (``Keyspace.track_access``)."""
    evicted: list[tuple[int, bytes]] = []
    while keyspace.used_memory > limit and len(evicted) < budget:
        victim = pick_victim(keyspace, rng, samples, policy)
        if victim is None:
            break
        keyspace.delete(*victim)
        evicted.append(victim)
    return evicted
