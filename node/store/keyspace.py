"""The in-memory keyspace: 16 databases of strings and hashes, TTLs and the expiry heap.

Design
------
Owns the data and nothing else: no I/O, no command semantics, no propagation format. The
executor (``node/store/executor.py``) binds two hooks: ``clock_ms`` (unix ms, injectable for
tests) and ``on_expire(db, key)``, called after a key was deleted because its TTL passed, so that
the executor can log a ``DEL`` and count ``expired_keys``.

* A value is ``bytes`` (a string), ``dict[bytes, bytes]`` (a hash), ``[head, tail]`` (a list,
  see listcore.py), ``(dict[bytes, None],)`` (a set) or ``(dict[bytes, float],
  list[list[tuple[float, bytes]]])`` (a sorted set: scores and the sorted index in chunks, see
  zsetcore.py and zsetindex.py):
  built-in containers only, which marshal copies without writing to them (typed.py says why a
  set is not a Python set). An expire is an absolute
  unix time in ms. Invariant: every key of ``expires`` is a key of ``data``.
* Expiry is lazy (``lookup`` deletes a key whose expire is <= now) plus an active cycle driven by
  a per-db min-heap of ``(expire_ms, key)``. Heap entries are never removed when a TTL changes;
  an entry is valid only while ``expires[key] == expire_ms``, so stale ones are skipped when
  popped. The heap is rebuilt from ``expires`` when it holds more than 2x live entries + 1024,
  which bounds its memory at ~3x the TTL count and keeps every operation O(log n) amortised.
  No random sampling: the cycle always deletes the soonest-expired keys first, deterministically.
* While ``loading`` is True (AOF replay) nothing expires: a replayed command must see the state
  the original saw, and the original's expiries are in the AOF as ``DEL`` entries.
* Callers go through the methods, never through ``Db`` fields: the methods keep the shard
  choice, ``nkeys``, ``nexpires``, ``expire_sum``, the heap and ``used_memory`` in step, which a
  direct write to a shard would break. Collections are mutated in place: the caller fetches one
  with ``lookup_write`` (the same function as ``lookup``, a name that marks the call site) and
  changes a hash with ``hash_set_pairs`` / ``hash_delete``, a list, set or sorted set directly,
  reporting the size change with ``account``. The
  keyspace is never copy-on-write: the rewrite works on a forked child's view of memory.

* Shards (for the AOF rewrite's copy-on-write cost): each db's ``data`` and ``expires`` are
  split into ``SHARDS`` dicts by ``hash(key) & SHARD_MASK``. The forked rewrite child copies one
  shard at a time with ``marshal`` (``snapshot_shard``): marshal's C writer walks a dict with
  borrowed references and writes nothing into the objects it reads, so the parent's pages stay
  shared. A Python-level walk (``for k, v in d.items()``) writes every key's and value's
  refcount and dirtied ~80% of the heap here. The child's own copy is one shard at a time
  (~1/256 of a db), reused from the same few pools.

* ``used_memory`` is the estimated size of everything stored (the model is ``memory.py``),
  kept in step on every change: O(1) for a string or a TTL, O(fields) when a whole hash is
  stored or dropped (as freeing it is).
* Access stamps (Redis's per-object ``lru`` field, evict.c): every key has one, in its shard's
  ``access`` dict, whatever the policy; ``set`` and every ``lookup`` that finds a key write it
  (``lookup_notouch``, for TTL, TYPE, EXISTS, OBJECT, SCAN, does not). A stamp is an int:
  - ``>= 0``: LRU, the unix second of the last access (Redis's LRU clock, seconds resolution,
    without its 24-bit wrap). ``lru_clock`` is that clock, read once per log cycle and cron
    tick (``refresh_clock``), not per command: one clock read less on every command.
  - ``< 0`` under an LFU policy: ``-1 - (minute << 8 | counter)``, Redis's LFU field (the unix
    minute the counter was last decremented, and the logarithmic counter: ``lfu_log_factor``,
    ``lfu_decay_time``) with a full minute instead of 16 wrapping bits. The sign says which
    clock wrote a stamp, so a policy switch walks no key: an LRU stamp read as LFU is a new
    key's counter (LFU_INIT_VAL) from its minute, an LFU stamp read as LRU is its minute.
    Stamps are shared ints (``_lfu_stamps``: 256 per minute), so a key costs one dict entry.
  Under allkeys-lru with a maxmemory (``track_access(True)``) the access dicts are
  OrderedDicts, least recently used first, and a touch also moves the key to the end (~40 ns
  more), so the least recently used key of a shard is ``lru_head`` in O(1), which eviction
  (``eviction.py``) samples. While a rewrite child runs (``freeze_access``) nothing is touched,
  as Redis touches nothing while it has a child: a touch writes to pages the child shares.
* SCAN (``scan.py``) reads one shard, or one *slice* of it (keys with given hash bits above the
  shard bits), with ``shard_slices``.

Not promised: ``dbsize`` counts keys whose TTL passed but that were not reclaimed yet (as Redis).
"""

from __future__ import annotations

import heapq
import itertools
import marshal
import random
import time
from collections import OrderedDict
from typing import Callable, Iterator

from aofnode.store.memory import (
    ACCESS_OVERHEAD, FIELD_OVERHEAD, STRING_OVERHEAD, TTL_OVERHEAD, entry_size, field_size,
)
from aofnode.store.access import LFU_INIT_VAL, lfu_counter, lfu_stamp, stamp_seconds
from aofnode.protocol.commands import NUM_DBS  # one definition: the protocol names the dbs

__all__ = ["NUM_DBS", "SHARDS", "SHARD_BITS", "Db", "Keyspace", "Value", "wall_clock_ms"]

# Access modes (see the module docstring): how ``lookup`` and ``set`` touch a key.
_PLAIN, _ORDERED, _LFU = 0, 1, 2
_FROZEN = 3  # added to a mode while a rewrite child runs: nothing is touched

# 256 shards: a shard of a 2M-key db holds ~8k keys (~1.5 MB copied at a time in the rewrite
# child); the cost on the hot path is one hash() (cached in the bytes object) and a list index.
SHARD_BITS = 8
SHARDS = 1 << SHARD_BITS
SHARD_MASK = SHARDS - 1

Value = bytes | dict | list | set | tuple  # see the module docstring

# Rebuild the heap when it holds more than 2x the live TTLs + this slack: the slack keeps small
# dbs from rebuilding on every few EXPIREs, the factor bounds the memory of stale entries.
_HEAP_SLACK = 1024
# The active cycle reads the (monotonic) time once per this many popped entries: a pop plus a
# delete costs ~1 us, so the budget is overrun by at most ~30 us.
_BUDGET_CHECK_EVERY = 32


def wall_clock_ms() -> int:
    """Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


def _ignore_expire(db: int, key: bytes) -> None:
    return None


class Db:
    """One database. Fields are private to this module (see the module docstring)."""

    __slots__ = ("data", "expires", "access", "heap", "expire_sum", "nkeys", "nexpires", "mem")

    def __init__(self, ordered: bool = False) -> None:
        self.data: list[dict[bytes, Value]] = [{} for _ in range(SHARDS)]
        self.expires: list[dict[bytes, int]] = [{} for _ in range(SHARDS)]
        # key -> access stamp, per shard; least recently used first when ``ordered``.
        self.access: list[dict[bytes, int]] = (
            [OrderedDict() for _ in range(SHARDS)] if ordered else [{} for _ in range(SHARDS)])
        self.heap: list[tuple[int, bytes]] = []
        self.expire_sum = 0  # sum of every expire: INFO avg_ttl in O(1)
        self.nkeys = 0
        self.nexpires = 0
        self.mem = 0  # this db's share of Keyspace.used_memory

    def iter_expires(self) -> Iterator[tuple[bytes, int]]:
        for shard in self.expires:
            yield from shard.items()


class Keyspace:
    """16 databases; see the module docstring for the expiry rules."""

    def __init__(self, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.dbs: list[Db] = [Db() for _ in range(NUM_DBS)]
        self.clock_ms = clock_ms
        self.on_expire: Callable[[int, bytes], None] = _ignore_expire
        self.loading = False
        self._next_cycle_db = 0  # the active cycle resumes here: no db starves another
        self.used_memory = 0  # estimated bytes of every key, value, TTL (see memory.py)
        # Function libraries (name -> body), part of the dataset as in Redis 7: here so that
        # the rewrite child writes them (node/store/functions.py); FLUSHALL keeps them.
        self.functions: dict[str, bytes] = {}
        self._tracking = False  # the access dicts are ordered (allkeys-lru)
        self._mode = _PLAIN
        self._lfu_on = False
        self._frozen = False
        self.lfu_log_factor = 10  # Redis's defaults (CONFIG SET lfu-log-factor, lfu-decay-time)
        self.lfu_decay_time = 1
        self.lfu_random: Callable[[], float] = random.random  # tests inject a seeded one
        self.lru_clock = -1
        self._lfu_minute = -1
        self._lfu_stamps: list[int] = []
        self.refresh_clock()

    # --- reads -------------------------------------------------------------------------------
    def lookup(self, db: int, key: bytes) -> Value | None:
        """The value of ``key``, or None; deletes it first if its TTL passed (lazy expiry)."""
        d = self.dbs[db]
        i = hash(key) & SHARD_MASK
        value = d.data[i].get(key)
        if value is None:
            return None
        if d.nexpires:
            when = d.expires[i].get(key)
            if when is not None and when <= self.clock_ms() and not self.loading:
                self._expire(db, d, key)
                return None
        if not self._mode:  # the plain LRU stamp: the common case first, one attribute read
            d.access[i][key] = self.lru_clock
        elif self._mode == _ORDERED:
            access = d.access[i]
            access.move_to_end(key)
            access[key] = self.lru_clock
        elif self._mode == _LFU:
            self._touch_lfu(d.access[i], key)
        return value

    def lookup_notouch(self, db: int, key: bytes) -> Value | None:
        """``lookup`` without touching the key's access stamp (Redis's LOOKUP_NOTOUCH): for
        TTL, TYPE, EXISTS, OBJECT, SCAN. Lazy expiry as ``lookup``, written out in both rather
        than shared: ``lookup`` is on every read's path, where a call more costs ~5%."""
        d = self.dbs[db]
        i = hash(key) & SHARD_MASK
        value = d.data[i].get(key)
        if value is None:
            return None
        if d.nexpires:
            when = d.expires[i].get(key)
            if when is not None and when <= self.clock_ms() and not self.loading:
                self._expire(db, d, key)
                return None
        return value

    # The caller of lookup_write mutates the value in place (hash fields): the same object as
    # lookup returns, under a name that marks every call site that mutates.
    lookup_write = lookup

    def get_expire(self, db: int, key: bytes) -> int | None:
        """The absolute expire time (unix ms) of ``key``, or None. No expiry check."""
        d = self.dbs[db]
        return d.expires[hash(key) & SHARD_MASK].get(key) if d.nexpires else None

    def dbsize(self, db: int) -> int:
        return self.dbs[db].nkeys

    def expires_count(self, db: int) -> int:
        return self.dbs[db].nexpires

    def avg_ttl(self, db: int) -> int:
        """Mean remaining TTL in ms over the keys with a TTL (0 if none), as INFO reports it."""
        d = self.dbs[db]
        if not d.nexpires:
            return 0
        return max(0, d.expire_sum // d.nexpires - self.clock_ms())

    def keys(self, db: int, match: Callable[[bytes], bool] | None = None) -> list[bytes]:
        """A snapshot list of the keys of ``db`` accepted by ``match`` (default: all) whose TTL
        has not passed. Nothing is deleted. ~10 ms per million keys plus ~20 ms per million TTLs.
        """
        d = self.dbs[db]
        found = []
        for shard in d.data:
            if shard:
                found.extend(shard if match is None else [k for k in shard if match(k)])
        if d.nexpires and not self.loading:
            now = self.clock_ms()
            dead = {k for k, when in d.iter_expires() if when <= now}
            if dead:
                found = [k for k in found if k not in dead]
        return found

    def entries(self, db: int) -> Iterator[tuple[bytes, Value, int | None]]:
        """Every (key, value, expire) of ``db``, expired ones included and nothing deleted: for
        whole-keyspace reads that must not change it (DEBUG DIGEST). The caller must not change
        the keyspace while it iterates."""
        d = self.dbs[db]
        for data, expires in zip(d.data, d.expires):
            for key, value in data.items():
                yield key, value, expires.get(key)

    def peek(self, db: int, key: bytes) -> Value | None:
        """The value of ``key`` or None, its TTL not checked and its access clock not moved:
        for reads that must not change the keyspace (DEBUG)."""
        return self.dbs[db].data[hash(key) & SHARD_MASK].get(key)

    @property
    def tracking_access(self) -> bool:
        """The access dicts are ordered for allkeys-lru (see ``track_access``)."""
        return self._tracking

    @property
    def lfu(self) -> bool:
        """Touches count as LFU (see ``set_lfu``)."""
        return self._lfu_on

    def shard_size(self, db: int, i: int) -> int:
        """The number of keys in shard ``i`` of ``db``, expired ones included."""
        return len(self.dbs[db].data[i])

    def shard_slices(self, db: int, i: int, bits: int) -> list[list[bytes]]:
        """The keys of shard ``i`` (expired ones included) in ``2**bits`` slices: slice ``j``
        holds the keys whose hash has the value ``j`` in its ``bits`` bits above the shard
        bits. One O(shard) pass; fresh lists, so the caller may delete keys while it walks."""
        shard = self.dbs[db].data[i]
        if not bits:
            return [list(shard)]
        slices: list[list[bytes]] = [[] for _ in range(1 << bits)]
        mask = (1 << bits) - 1
        for key in shard:
            slices[(hash(key) >> SHARD_BITS) & mask].append(key)
        return slices

    def lru_head(self, db: int, i: int) -> tuple[bytes, int] | None:
        """The least recently used key of shard ``i`` and the second of its last access; None
        if the shard is empty or the access dicts are not ordered. O(1)."""
        if not self._tracking:
            return None
        access = self.dbs[db].access[i]
        if not access:
            return None
        key, stamp = next(iter(access.items()))
        return key, stamp_seconds(stamp)

    def access_stamp(self, db: int, key: bytes) -> int | None:
        """The access stamp of ``key`` (see the module docstring), or None if it has none."""
        return self.dbs[db].access[hash(key) & SHARD_MASK].get(key)

    def idle_seconds(self, db: int, key: bytes) -> int:
        """Seconds since the last access to ``key`` (OBJECT IDLETIME), by ``lru_clock``."""
        stamp = self.dbs[db].access[hash(key) & SHARD_MASK][key]
        return max(0, self.lru_clock - stamp_seconds(stamp))

    def lfu_freq(self, db: int, key: bytes) -> int:
        """The decayed LFU counter of ``key`` (OBJECT FREQ: Redis's LFUDecrAndReturn)."""
        stamp = self.dbs[db].access[hash(key) & SHARD_MASK][key]
        return lfu_counter(stamp, self._lfu_minute, self.lfu_decay_time)

    def set_access_stamp(self, db: int, key: bytes, stamp: int) -> None:
        """Give the existing ``key`` the stamp ``stamp`` (RESTORE's IDLETIME and FREQ, RENAME
        and MOVE keeping it). The key keeps its place in an ordered access dict."""
        access = self.dbs[db].access[hash(key) & SHARD_MASK]
        old = access[key]
        access[key] = stamp
        if self._tracking and stamp_seconds(stamp) < stamp_seconds(old):
            access.move_to_end(key, last=False)  # type: ignore[attr-defined]  # older: first

    def stamp_for_idle(self, idle: int) -> int:
        """The LRU stamp of a key last accessed ``idle`` seconds ago (never before 1970)."""
        return max(0, self.lru_clock - idle)

    def stamp_for_freq(self, counter: int) -> int:
        """The LFU stamp of a key whose counter is ``counter`` (0-255) now."""
        return self._lfu_stamps[counter]

    def sample_key(self, db: int, i: int, rng, volatile: bool = False) -> bytes | None:
        """A key of shard ``i`` of ``db`` drawn uniformly with ``rng`` (among the keys with a
        TTL if ``volatile``), or None if there is none. O(shard): a dict has no index, so the
        draw walks to it in C (~2 ns a key). No expiry check."""
        d = self.dbs[db]
        shard = d.expires[i] if volatile else d.data[i]
        if not shard:
            return None
        return next(itertools.islice(shard, rng.randrange(len(shard)), None))

    def expires_shard_size(self, db: int, i: int) -> int:
        """The number of keys with a TTL in shard ``i`` of ``db``."""
        return len(self.dbs[db].expires[i])

    def snapshot_shard(self, db: int, i: int) -> tuple[dict, dict]:
        """A private copy of shard ``i`` of ``db``: ``(data, expires)``.

        For the forked rewrite child: marshal reads the shard without writing to any object it
        visits (see the module docstring), and the copy is made of the child's own objects.
        """
        d = self.dbs[db]
        data = d.data[i]
        if not data:
            return {}, {}
        expires = d.expires[i]
        return (marshal.loads(marshal.dumps(data, 2)),
                marshal.loads(marshal.dumps(expires, 2)) if expires else {})

    # --- writes ------------------------------------------------------------------------------
    def set(self, db: int, key: bytes, value: Value, expire_ms: int | None = None,
            keep_ttl: bool = False) -> None:
        """Store ``value``; its TTL becomes ``expire_ms``, or is kept if ``keep_ttl``, else none."""
        d = self.dbs[db]
        i = hash(key) & SHARD_MASK
        shard = d.data[i]
        previous = shard.get(key)
        shard[key] = value
        # Strings inline (the hot path: ~60 ns instead of ~150 through entry_size).
        if previous is None:
            d.nkeys += 1
            if value.__class__ is bytes:
                delta = len(key) + len(value) + STRING_OVERHEAD
            else:
                delta = entry_size(key, value)
            if self._tracking:
                delta += ACCESS_OVERHEAD
            # A new key's stamp, as Redis's createObject: now, or LFU_INIT_VAL under LFU.
            d.access[i][key] = self._lfu_stamps[LFU_INIT_VAL] if self._lfu_on else self.lru_clock
        else:
            if value.__class__ is bytes and previous.__class__ is bytes:
                delta = len(value) - len(previous)
            else:
                delta = entry_size(key, value) - entry_size(key, previous)
            mode = self._mode
            if not mode:
                d.access[i][key] = self.lru_clock
            elif mode == _ORDERED:
                access = d.access[i]
                access.move_to_end(key)
                access[key] = self.lru_clock
            elif mode == _LFU:
                # An overwrite keeps the counter and counts as an access (Redis's dbOverwrite
                # keeps the old object's field after lookupKeyWrite touched it).
                self._touch_lfu(d.access[i], key)
        if expire_ms is not None:
            self._set_expire(d, i, key, expire_ms)
        elif not keep_ttl and d.nexpires:
            old = d.expires[i].pop(key, None)
            if old is not None:
                d.expire_sum -= old
                d.nexpires -= 1
                delta -= TTL_OVERHEAD
        d.mem += delta
        self.used_memory += delta

    def delete(self, db: int, key: bytes) -> bool:
        """Remove ``key`` and its TTL; True if it was there (no expiry check)."""
        d = self.dbs[db]
        i = hash(key) & SHARD_MASK
        value = d.data[i].pop(key, None)
        if value is None:
            return False
        d.nkeys -= 1
        if value.__class__ is bytes:
            freed = len(key) + len(value) + STRING_OVERHEAD
        else:
            freed = entry_size(key, value)
        if d.nexpires:
            old = d.expires[i].pop(key, None)
            if old is not None:
                d.expire_sum -= old
                d.nexpires -= 1
                freed += TTL_OVERHEAD
        del d.access[i][key]
        if self._tracking:
            freed += ACCESS_OVERHEAD
        d.mem -= freed
        self.used_memory -= freed
        return True

    def set_expire(self, db: int, key: bytes, expire_ms: int) -> None:
        """Give the existing ``key`` the absolute expire time ``expire_ms`` (unix ms)."""
        d = self.dbs[db]
        i = hash(key) & SHARD_MASK
        if key not in d.data[i]:
            raise KeyError(key)
        self._set_expire(d, i, key, expire_ms)

    def persist(self, db: int, key: bytes) -> bool:
        """Remove the TTL of ``key``; True if it had one."""
        d = self.dbs[db]
        if not d.nexpires:
            return False
        old = d.expires[hash(key) & SHARD_MASK].pop(key, None)
        if old is None:
            return False
        d.expire_sum -= old
        d.nexpires -= 1
        d.mem -= TTL_OVERHEAD
        self.used_memory -= TTL_OVERHEAD
        return True

    def hash_set_pairs(self, db: int, h: dict, args) -> int:
        """``h[args[i]] = args[i + 1]`` for i = 1, 3, ... (HSET's arguments) on a hash of ``db``
        got with ``lookup_write``; the number of new fields. Accounts each field."""
        created = delta = 0
        get = h.get
        for i in range(1, len(args), 2):
            field, value = args[i], args[i + 1]
            old = get(field)
            h[field] = value
            if old is None:
                created += 1
                delta += len(field) + len(value) + FIELD_OVERHEAD
            else:
                delta += len(value) - len(old)
        self.dbs[db].mem += delta
        self.used_memory += delta
        return created

    def hash_delete(self, db: int, h: dict, field: bytes) -> bool:
        """Remove ``field`` from a hash of ``db`` got with ``lookup_write``; True if it was there.
        The caller deletes the key if the hash is now empty."""
        old = h.pop(field, None)
        if old is None:
            return False
        freed = field_size(field, old)
        self.dbs[db].mem -= freed
        self.used_memory -= freed
        return True

    def account(self, db: int, delta: int) -> None:
        """Add ``delta`` bytes to ``used_memory`` for an in-place change of a list, set or sorted
        set of ``db`` got with ``lookup_write`` (the caller computes it with memory.py's sizes)."""
        self.dbs[db].mem += delta
        self.used_memory += delta

    def flush(self, db: int | None = None) -> None:
        """Empty one database, or all of them when ``db`` is None."""
        for i in range(NUM_DBS) if db is None else (db,):
            self.used_memory -= self.dbs[i].mem
            self.dbs[i] = Db(self._tracking)

    def swap(self, a: int, b: int) -> None:
        """Exchange databases ``a`` and ``b`` whole (SWAPDB): O(1), memory unchanged."""
        self.dbs[a], self.dbs[b] = self.dbs[b], self.dbs[a]

    def random_key(self, db: int, rng) -> bytes | None:
        """A key of ``db`` chosen uniformly with ``rng`` (a ``random.Random``), or None if the
        db is empty. No expiry check: the caller looks it up. O(SHARDS)."""
        d = self.dbs[db]
        if not d.nkeys:
            return None
        n = rng.randrange(d.nkeys)
        for shard in d.data:
            if n < len(shard):
                return next(itertools.islice(shard, n, None))
            n -= len(shard)
        return None

    def track_access(self, on: bool) -> None:
        """Order the access dicts for allkeys-lru, or stop (see the module docstring). O(keys
        log keys) once: each shard's keys are sorted by their stamps' seconds."""
        if on == self._tracking:
            return
        self._tracking = on
        for d in self.dbs:
            if on:
                d.access = [OrderedDict(sorted(a.items(), key=_by_seconds)) for a in d.access]
            else:
                d.access = [dict(a) for a in d.access]
            delta = d.nkeys * ACCESS_OVERHEAD * (1 if on else -1)
            d.mem += delta
            self.used_memory += delta
        self._set_mode()

    def set_lfu(self, on: bool) -> None:
        """Touch keys as LFU counters (an LFU policy) or as LRU times. O(1): stamps say which
        clock wrote them (see the module docstring), as Redis reinterprets its field."""
        self._lfu_on = on
        self._set_mode()

    def freeze_access(self, frozen: bool) -> None:
        """Touch no key while a rewrite child runs (see the module docstring); new keys still
        get their stamp."""
        if frozen != self._frozen:
            self._frozen = frozen
            self._set_mode()

    def _set_mode(self) -> None:
        mode = _LFU if self._lfu_on else _ORDERED if self._tracking else _PLAIN
        self._mode = mode + (_FROZEN if self._frozen else 0)

    def refresh_clock(self) -> None:
        """Read the clock for the stamps (the log actor: once per cycle and tick). O(1); the
        LFU stamps of a new minute are made once, when it starts."""
        now = self.clock_ms() // 1000
        if now == self.lru_clock:
            return
        self.lru_clock = now
        minute = now // 60
        if minute != self._lfu_minute:
            self._lfu_minute = minute
            self._lfu_stamps = [lfu_stamp(minute, c) for c in range(256)]

    def _touch_lfu(self, access: dict, key: bytes) -> None:
        """Redis's updateLFU: decay the counter, then a logarithmic increment."""
        counter = lfu_counter(access[key], self._lfu_minute, self.lfu_decay_time)
        if counter < 255:
            base = counter - LFU_INIT_VAL
            if base <= 0 or self.lfu_random() < 1.0 / (base * self.lfu_log_factor + 1):
                counter += 1
        access[key] = self._lfu_stamps[counter]

    def recount_memory(self) -> int:
        """``used_memory`` computed from scratch, O(keys): for tests and checks only."""
        total = 0
        for d in self.dbs:
            for shard in d.data:
                total += sum(entry_size(k, v) for k, v in shard.items())
            total += d.nexpires * TTL_OVERHEAD
            total += d.nkeys * ACCESS_OVERHEAD if self._tracking else 0
            assert sum(map(len, d.access)) == d.nkeys, "a key without its access stamp"
        return total

    # --- expiry ------------------------------------------------------------------------------
    def active_expire(self, budget_ms: float = 1.0) -> int:
        """Delete keys whose TTL passed, soonest first, for about ``budget_ms`` of real time.

        Calls ``on_expire`` for each; returns how many were deleted. Does nothing while loading.
        """
        if self.loading:
            return 0
        deadline = time.monotonic() + budget_ms / 1000.0
        now = self.clock_ms()
        deleted = popped = 0
        first = self._next_cycle_db
        for step in range(NUM_DBS):
            db = (first + step) % NUM_DBS
            d = self.dbs[db]
            heap, expires = d.heap, d.expires
            while heap and heap[0][0] <= now:
                when, key = heapq.heappop(heap)
                if expires[hash(key) & SHARD_MASK].get(key) == when:
                    self._expire(db, d, key)
                    deleted += 1
                popped += 1
                if popped % _BUDGET_CHECK_EVERY == 0 and time.monotonic() >= deadline:
                    self._next_cycle_db = db  # this db may have more: start here next time
                    return deleted
        self._next_cycle_db = (first + 1) % NUM_DBS
        return deleted

    def _expire(self, db: int, d: Db, key: bytes) -> None:
        i = hash(key) & SHARD_MASK
        freed = entry_size(key, d.data[i].pop(key)) + TTL_OVERHEAD
        d.nkeys -= 1
        d.expire_sum -= d.expires[i].pop(key)
        d.nexpires -= 1
        del d.access[i][key]
        if self._tracking:
            freed += ACCESS_OVERHEAD
        d.mem -= freed
        self.used_memory -= freed
        self.on_expire(db, key)

    def _set_expire(self, d: Db, i: int, key: bytes, expire_ms: int) -> None:
        expires = d.expires[i]
        old = expires.get(key)
        if old == expire_ms:
            return  # the heap already holds a valid entry for it
        if old is not None:
            d.expire_sum -= old
        else:
            d.nexpires += 1
            d.mem += TTL_OVERHEAD
            self.used_memory += TTL_OVERHEAD
        expires[key] = expire_ms
        d.expire_sum += expire_ms
        heap = d.heap
        heapq.heappush(heap, (expire_ms, key))
        if len(heap) > 2 * d.nexpires + _HEAP_SLACK:
            d.heap = [(when, k) for k, when in d.iter_expires()]
            heapq.heapify(d.heap)


def _by_seconds(item: tuple[bytes, int]) -> int:
    return stamp_seconds(item[1])
