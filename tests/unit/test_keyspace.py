"""node/store/keyspace.py: storage, TTL bookkeeping, lazy and active expiry, the expiry heap,
SCAN's slices, used_memory, the access clock."""

from __future__ import annotations

import random

import pytest

from tests.fakeclock import FakeClock

from aofnode.store.keyspace import NUM_DBS, SHARDS, Keyspace
from aofnode.store.memory import (
    ACCESS_OVERHEAD, FIELD_OVERHEAD, HASH_OVERHEAD, STRING_OVERHEAD, TTL_OVERHEAD,
)


@pytest.fixture
def ks(clock: FakeClock) -> Keyspace:
    space = Keyspace(clock)
    space.expired: list[tuple[int, bytes]] = []
    space.on_expire = lambda db, key: space.expired.append((db, key))
    return space


def test_sixteen_databases_are_independent(ks: Keyspace) -> None:
    assert NUM_DBS == 16
    for db in range(NUM_DBS):
        ks.set(db, b"k", b"%d" % db)
    assert [ks.lookup(db, b"k") for db in range(NUM_DBS)] == [b"%d" % d for d in range(16)]
    ks.flush(3)
    assert ks.lookup(3, b"k") is None and ks.lookup(4, b"k") == b"4"
    ks.flush()
    assert sum(ks.dbsize(db) for db in range(NUM_DBS)) == 0


def test_set_replaces_ttl_unless_kept(ks: Keyspace, clock: FakeClock) -> None:
    ks.set(0, b"k", b"v", expire_ms=clock.now + 100)
    assert ks.get_expire(0, b"k") == clock.now + 100
    ks.set(0, b"k", b"w", keep_ttl=True)
    assert ks.get_expire(0, b"k") == clock.now + 100
    ks.set(0, b"k", b"x")
    assert ks.get_expire(0, b"k") is None
    assert ks.expires_count(0) == 0


def test_delete_removes_ttl_and_reports_presence(ks: Keyspace, clock: FakeClock) -> None:
    ks.set(0, b"k", b"v", expire_ms=clock.now + 100)
    assert ks.delete(0, b"k") is True
    assert ks.delete(0, b"k") is False
    assert ks.get_expire(0, b"k") is None and ks.expires_count(0) == 0


def test_set_expire_on_missing_key_raises(ks: Keyspace) -> None:
    with pytest.raises(KeyError):
        ks.set_expire(0, b"nope", 5)


def test_persist(ks: Keyspace, clock: FakeClock) -> None:
    ks.set(0, b"k", b"v", expire_ms=clock.now + 100)
    assert ks.persist(0, b"k") is True
    assert ks.persist(0, b"k") is False
    assert ks.lookup(0, b"k") == b"v"


def test_lazy_expiry_deletes_and_reports(ks: Keyspace, clock: FakeClock) -> None:
    ks.set(2, b"k", b"v", expire_ms=clock.now + 100)
    clock.now += 99
    assert ks.lookup(2, b"k") == b"v"
    clock.now += 1  # expire <= now: gone
    assert ks.lookup(2, b"k") is None
    assert ks.expired == [(2, b"k")]
    assert ks.dbsize(2) == 0 and ks.expires_count(2) == 0


def test_no_expiry_while_loading(ks: Keyspace, clock: FakeClock) -> None:
    ks.set(0, b"k", b"v", expire_ms=clock.now + 1)
    ks.loading = True
    clock.now += 10_000
    assert ks.lookup(0, b"k") == b"v"
    assert ks.active_expire(10.0) == 0
    assert ks.keys(0) == [b"k"] and ks.get_expire(0, b"k") == clock.now - 10_000 + 1
    assert ks.expired == []
    ks.loading = False
    assert ks.lookup(0, b"k") is None and ks.expired == [(0, b"k")]


def test_active_expire_deletes_soonest_first_and_only_due(ks: Keyspace, clock: FakeClock) -> None:
    for i, delay in enumerate([30, 10, 20, 1000]):
        ks.set(i % 3, b"k%d" % i, b"v", expire_ms=clock.now + delay)
    ks.set(0, b"forever", b"v")
    clock.now += 30
    assert ks.active_expire(50.0) == 3
    assert sorted(ks.expired) == [(0, b"k0"), (1, b"k1"), (2, b"k2")]
    assert ks.lookup(0, b"k3") == b"v" and ks.lookup(0, b"forever") == b"v"


def test_active_expire_skips_stale_heap_entries(ks: Keyspace, clock: FakeClock) -> None:
    ks.set(0, b"a", b"v", expire_ms=clock.now + 10)
    ks.set_expire(0, b"a", clock.now + 1000)  # the +10 entry is now stale
    ks.set(0, b"b", b"v", expire_ms=clock.now + 10)
    ks.persist(0, b"b")  # stale too
    ks.set(0, b"c", b"v", expire_ms=clock.now + 10)
    ks.delete(0, b"c")
    ks.set(0, b"c", b"new")  # recreated without TTL: must survive
    clock.now += 500
    assert ks.active_expire(50.0) == 0
    assert [ks.lookup(0, k) for k in (b"a", b"b", b"c")] == [b"v", b"v", b"new"]
    clock.now += 500
    assert ks.active_expire(50.0) == 1 and ks.expired == [(0, b"a")]


def test_heap_is_rebuilt_when_mostly_stale(ks: Keyspace, clock: FakeClock) -> None:
    ks.set(0, b"k", b"v")
    for i in range(5000):
        ks.set_expire(0, b"k", clock.now + 10 + i)
    heap = ks.dbs[0].heap
    assert len(heap) <= 2 * 1 + 1024 + 1
    clock.now += 10 + 4999
    assert ks.active_expire(50.0) == 1


def test_active_expire_respects_budget(ks: Keyspace, clock: FakeClock) -> None:
    for i in range(20_000):
        ks.set(0, b"k%d" % i, b"v", expire_ms=clock.now + 1)
    clock.now += 1
    first = ks.active_expire(0.0)  # zero budget: stops at the first time check
    assert 0 < first < 20_000
    total = first
    while ks.dbsize(0):
        total += ks.active_expire(5.0)
    assert total == 20_000 == len(ks.expired)


def test_keys_skip_expired_without_deleting(ks: Keyspace, clock: FakeClock) -> None:
    ks.set(0, b"live", b"v", expire_ms=clock.now + 100)
    ks.set(0, b"dead", b"v", expire_ms=clock.now + 1)
    ks.set(0, b"h", {b"f": b"1"})
    clock.now += 1
    assert sorted(ks.keys(0)) == [b"h", b"live"]
    assert ks.keys(0, lambda k: k.startswith(b"l") or k == b"dead") == [b"live"]
    every = [k for i in range(SHARDS) for k in ks.shard_slices(0, i, 0)[0]]
    assert sorted(every) == [b"dead", b"h", b"live"]
    assert ks.dbsize(0) == 3 and ks.expired == []


def test_avg_ttl(ks: Keyspace, clock: FakeClock) -> None:
    assert ks.avg_ttl(0) == 0
    ks.set(0, b"a", b"v", expire_ms=clock.now + 1000)
    ks.set(0, b"b", b"v", expire_ms=clock.now + 3000)
    ks.set(0, b"c", b"v")
    assert ks.avg_ttl(0) == 2000
    ks.set_expire(0, b"a", clock.now + 5000)
    assert ks.avg_ttl(0) == 4000
    ks.delete(0, b"b")
    assert ks.avg_ttl(0) == 5000
    clock.now += 10_000
    assert ks.avg_ttl(0) == 0  # never negative


# --- SCAN's slices ---------------------------------------------------------------------------
def test_slices_partition_each_shard(ks: Keyspace) -> None:
    for i in range(5000):
        ks.set(0, b"k%d" % i, b"v")
    for shard in (0, 17, SHARDS - 1):
        (whole,) = ks.shard_slices(0, shard, 0)
        assert len(whole) == ks.shard_size(0, shard) > 0
        for bits in range(1, 5):
            parts = ks.shard_slices(0, shard, bits)
            assert len(parts) == 2**bits
            assert sorted(k for part in parts for k in part) == sorted(whole)  # disjoint, complete
            assert parts == ks.shard_slices(0, shard, bits)  # the same slices every time


# --- used_memory -----------------------------------------------------------------------------
def check_memory(ks: Keyspace) -> None:
    assert ks.used_memory == ks.recount_memory() == sum(d.mem for d in ks.dbs)


def test_used_memory_follows_every_change(ks: Keyspace, clock: FakeClock) -> None:
    assert ks.used_memory == 0
    ks.set(0, b"key", b"value")
    assert ks.used_memory == len(b"key") + len(b"value") + STRING_OVERHEAD
    ks.set(0, b"key", b"longer value", expire_ms=clock.now + 10)
    assert ks.used_memory == 3 + 12 + STRING_OVERHEAD + TTL_OVERHEAD
    ks.set(0, b"key", b"v", keep_ttl=True)
    ks.set(1, b"h", {b"f": b"1"})
    h = ks.lookup_write(1, b"h")
    assert ks.hash_set_pairs(1, h, (b"h", b"f2", b"22", b"f", b"333")) == 1
    assert ks.dbs[1].mem == 1 + HASH_OVERHEAD + (1 + 3 + FIELD_OVERHEAD) + (2 + 2 + FIELD_OVERHEAD)
    check_memory(ks)
    assert ks.hash_delete(1, h, b"f") is True and ks.hash_delete(1, h, b"nope") is False
    check_memory(ks)
    ks.persist(0, b"key")
    check_memory(ks)
    ks.set_expire(1, b"h", clock.now + 5)
    clock.now += 5
    assert ks.lookup(1, b"h") is None  # lazily expired: its TTL and fields go too
    check_memory(ks)
    ks.set(0, b"key", {b"a": b"b"})  # a string replaced by a hash, and back
    ks.set(0, b"key", b"s")
    check_memory(ks)
    ks.delete(0, b"key")
    assert ks.used_memory == 0


def test_used_memory_on_flush_and_active_expiry(ks: Keyspace, clock: FakeClock) -> None:
    for db in (0, 1, 2):
        for i in range(300):
            ks.set(db, b"k%d" % i, b"v" * i, expire_ms=clock.now + 1 + i % 2 if i % 3 else None)
    check_memory(ks)
    ks.flush(1)
    check_memory(ks)
    clock.now += 1
    ks.active_expire(50.0)
    check_memory(ks)
    ks.flush()
    assert ks.used_memory == 0


# --- access stamps and allkeys-lru's order ------------------------------------------------------
def test_access_clock(ks: Keyspace) -> None:
    ks.lru_clock = 3
    ks.set(0, b"old", b"v")
    ks.set(0, b"new", b"v")
    assert ks.access_stamp(0, b"old") == 3  # every key has one, whatever the policy
    before = ks.used_memory
    ks.lru_clock = 5
    ks.track_access(True)  # ordered for allkeys-lru: the order's bytes, stamps kept
    assert ks.used_memory == before + 2 * ACCESS_OVERHEAD
    check_memory(ks)
    assert ks.access_stamp(0, b"old") == ks.access_stamp(0, b"new") == 3
    ks.lru_clock = 9
    ks.lookup(0, b"new")
    ks.set(0, b"newer", b"v")
    ks.lookup(0, b"missing")
    ks.lookup_notouch(0, b"old")
    assert [ks.access_stamp(0, k) for k in (b"old", b"new", b"newer")] == [3, 9, 9]
    assert ks.idle_seconds(0, b"old") == 6 and ks.idle_seconds(0, b"new") == 0
    ks.delete(0, b"old")
    assert ks.access_stamp(0, b"old") is None
    ks.flush(3)
    check_memory(ks)
    ks.track_access(False)
    assert ks.used_memory == before - (3 + 1 + STRING_OVERHEAD) + (5 + 1 + STRING_OVERHEAD)
    check_memory(ks)


def test_lru_head_is_the_least_recently_used_key_of_its_shard(ks: Keyspace) -> None:
    assert ks.lru_head(0, 0) is None  # not tracked
    keys = [b"k%d" % i for i in range(3000)]
    for key in keys:
        ks.set(0, key, b"v")
    ks.track_access(True)
    rng = random.Random(2)
    last = {}
    for tick in range(1, 20_000):
        ks.lru_clock = tick
        key = rng.choice(keys)
        if rng.random() < 0.5:
            ks.lookup(0, key)
        else:
            ks.set(0, key, b"w")
        last[key] = tick
    for shard in range(SHARDS):
        in_shard = ks.shard_slices(0, shard, 0)[0]
        if not in_shard:
            assert ks.lru_head(0, shard) is None
            continue
        oldest = min(in_shard, key=lambda k: last.get(k, 0))
        assert ks.lru_head(0, shard) == (oldest, last.get(oldest, 0))
