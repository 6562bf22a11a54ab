"""Uniform random members of a big set in O(1) each: SPOP, SRANDMEMBER (sets.py).

Design
------
A Python dict has no O(1) way to its i-th key (``islice`` walks i entries: a pick and delete
measured 68 µs at 20k members, 285 µs at 100k; SPOP cost 70 µs server CPU per request under
redis-benchmark against 20 µs for SET). A *pool*,
a plain list of the set's members, gives ``pool[randrange(n)]`` in O(1) and SPOP's removal by
swap-with-last in O(1). The pool lives here, beside the keyspace, not in the stored value:

* the value stays ``(dict,)``, so the rewrite child's marshal copy, SSCAN and the memory model
  are as before (a ``(dict member->index, list)`` value measured +69% bytes per member and
  +64-100% marshal time at 100k members; docs/benchmarks.md has the figures);
* a pool is built on the first random pick of a set of ``MIN_POOL`` members or more (O(n) once,
  as one ``list(dict)``), kept in step by SADD (append) and SPOP (swap-remove), and dropped by
  any other change to the members (SREM, SMOVE): those are O(1) to forget and the next pick
  rebuilds;
* at most ``MAX_POOLS`` pools are kept (8 bytes per member each, not in ``used_memory``); a pool
  whose set left the keyspace (DEL, overwrite) holds the last reference to its dict and is
  dropped at the next pick, so it does not keep a deleted set's members alive for long.

A pool is used only while it is the same dict and the same length (``get``): a change made
behind this module's back that keeps the length (SREM then SADD of another member) would
not be seen, so every in-place change of a set's members goes through sets.py, which tells
the pools.
"""

from __future__ import annotations

import sys
from itertools import islice

__all__ = ["RandomPools", "MIN_POOL", "MAX_POOLS"]

# Below this, ``islice`` to a random position costs < 1 µs (64 entries), less than keeping a
# pool in step.
MIN_POOL = 64
# Pools alive at once: the sets being popped in a workload are few (redis-benchmark: one).
MAX_POOLS = 4
# sys.getrefcount of a dict referenced only by its pool entry: the entry's tuple, the loop's
# name and getrefcount's argument.
_ORPHAN_REFS = 3


class RandomPools:
    def __init__(self) -> None:
        self._pools: dict[int, tuple[dict, list]] = {}

    def _get(self, s: dict) -> list:
        entry = self._pools.get(id(s))
        if entry is not None and entry[0] is s and len(entry[1]) == len(s):
            return entry[1]
        self._prune()
        pool = list(s)
        self._pools[id(s)] = (s, pool)
        return pool

    def _prune(self) -> None:
        pools = self._pools
        for key in list(pools):
            d = pools[key][0]
            if sys.getrefcount(d) <= _ORPHAN_REFS:
                del pools[key]
            del d
        while len(pools) >= MAX_POOLS:
            del pools[next(iter(pools))]

    def drop(self, s: dict) -> None:
        """``s``'s members changed in a way the pool cannot follow cheaply."""
        if self._pools:
            self._pools.pop(id(s), None)

    def added(self, s: dict, members: list) -> None:
        """``members`` (new to ``s``) were just added to it."""
        if self._pools:
            entry = self._pools.get(id(s))
            if entry is not None and entry[0] is s:
                entry[1].extend(members)

    def sample(self, rng, s: dict, k: int) -> list:
        """``k`` distinct members of ``s`` (0 < k < len(s)), uniformly; ``s`` is unchanged."""
        n = len(s)
        if n < MIN_POOL:
            if k == 1:
                return [next(islice(iter(s), rng.randrange(n), None))]
            return rng.sample(list(s), k)
        pool = self._get(s)
        return [pool[rng.randrange(n)]] if k == 1 else rng.sample(pool, k)

    def repeats(self, rng, s: dict, k: int) -> list:
        """``k`` members of ``s`` drawn uniformly with repeats (SRANDMEMBER's negative count)."""
        pool = self._get(s) if len(s) >= MIN_POOL else list(s)
        return rng.choices(pool, k=k)

    def pop(self, rng, s: dict, k: int) -> list:
        """Remove and return ``k`` distinct members of ``s`` (0 < k < len(s)), uniformly."""
        n = len(s)
        if n < MIN_POOL:
            popped = rng.sample(list(s), k) if k > 1 else \
                [next(islice(iter(s), rng.randrange(n), None))]
            for member in popped:
                del s[member]
            return popped
        pool = self._get(s)
        popped = []
        randrange = rng.randrange
        for _ in range(k):
            i = randrange(len(pool))
            member = pool[i]
            last = pool.pop()
            if i < len(pool):
                pool[i] = last
            del s[member]
            popped.append(member)
        return popped
