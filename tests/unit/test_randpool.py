"""node/store/randpool.py through SPOP / SRANDMEMBER on sets big enough to get a pool: uniform
picks, the pool kept in step with SADD, SREM, SMOVE, SPOP, and no pool outliving its set."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from tests.collection_helpers import run
from tests.fakeclock import FakeClock

from aofnode.store.executor import Executor
from aofnode.store.randpool import MAX_POOLS, MIN_POOL, RandomPools

N = MIN_POOL * 4


@pytest.fixture
def ex() -> Executor:
    ex = Executor(clock_ms=FakeClock(1_700_000_000_000))
    ex.random = random.Random(7)
    ex.pools = RandomPools()
    return ex


def _fill(ex, key="s", n=N):
    run(ex, ("SADD", key, *[str(i) for i in range(n)]))


def _members(ex, key="s"):
    return set(run(ex, ("SMEMBERS", key)))


def test_srandmember_is_uniform(ex):
    """Chi-square over N buckets, as Redis's SRANDMEMBER histogram test: 99.9% quantile of
    chi-square with 255 degrees of freedom is ~330."""
    _fill(ex)
    draws = 200 * N
    counts = Counter(run(ex, ("SRANDMEMBER", "s")) for _ in range(draws // 2))
    counts.update(run(ex, ("SRANDMEMBER", "s", -(draws // 2))))
    expected = draws / N
    chi2 = sum((counts[str(i).encode()] - expected) ** 2 / expected for i in range(N))
    assert len(counts) == N and chi2 < 330


def test_spop_returns_every_member_once_and_follows_other_writes(ex):
    _fill(ex)
    popped = [run(ex, ("SPOP", "s"))]
    run(ex, ("SADD", "s", "new1", "new2"))
    popped += run(ex, ("SPOP", "s", 10))
    run(ex, ("SREM", "s", "0", "1", "2"))  # drops the pool: it cannot follow a removal cheaply
    run(ex, ("SADD", "s", "new3"))
    run(ex, ("SMOVE", "s", "t", "3"))
    expected = ({str(i).encode() for i in range(N)} | {b"new1", b"new2", b"new3"}) \
        - {b"0", b"1", b"2", b"3"}
    popped = [m for m in popped if m not in (b"0", b"1", b"2", b"3")]
    while run(ex, ("EXISTS", "s")):
        left = _members(ex)
        assert run(ex, ("SRANDMEMBER", "s")) in left
        popped += run(ex, ("SPOP", "s", 7))
    assert len(popped) == len(set(popped)) and set(popped) == expected


def test_smove_into_a_pooled_set_is_seen_by_its_pool(ex):
    _fill(ex)
    run(ex, ("SADD", "src", "x"))
    run(ex, ("SRANDMEMBER", "s"))  # builds the pool
    run(ex, ("SMOVE", "src", "s", "x"))
    popped = run(ex, ("SPOP", "s", N))
    assert b"x" in popped and len(set(popped)) == N


def test_spop_count_is_a_uniform_subset(ex):
    _fill(ex, n=MIN_POOL)
    counts: Counter = Counter()
    for _ in range(300):
        run(ex, ("DEL", "s"))
        _fill(ex, n=MIN_POOL)
        counts.update(run(ex, ("SPOP", "s", MIN_POOL // 2)))
    expected = 300 / 2
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert len(counts) == MIN_POOL and chi2 < 120  # 63 degrees of freedom, 99.99%: ~115


def test_a_deleted_sets_pool_is_dropped_and_pools_are_bounded(ex):
    for k in range(MAX_POOLS + 3):
        _fill(ex, key=f"k{k}")
        run(ex, ("SRANDMEMBER", f"k{k}"))
    assert len(ex.pools._pools) <= MAX_POOLS
    for k in range(MAX_POOLS + 3):
        run(ex, ("DEL", f"k{k}"))
    _fill(ex, key="last")
    run(ex, ("SRANDMEMBER", "last"))
    assert len(ex.pools._pools) == 1
