"""maxmemory in the store: used_memory accounting, OOM under noeviction, allkeys-lru eviction
(node/store/memory.py, keyspace.py, eviction.py, executor.py). In process: the log actor wires
the option, INFO's RSS and the AOF."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from tests.fakeclock import FakeClock

from aofnode.store.access import stamp_seconds
from aofnode.store.eviction import EVICTION_SAMPLES, pick_victim
from aofnode.store.executor import OOM_ERR, Executor
from aofnode.store.keyspace import NUM_DBS
from aofnode.store.memory import ACCESS_OVERHEAD, STRING_OVERHEAD
from aofnode.protocol.errors import Error
from aofnode.protocol.commands import COMMANDS


def run(ex: Executor, *commands, db: int = 0):
    replies = [ex.execute(db, name, [a if isinstance(a, bytes) else str(a).encode()
                                     for a in args]) for name, *args in commands]
    return replies[0] if len(replies) == 1 else replies


def fill(ex: Executor, n: int, prefix: bytes = b"k", size: int = 20) -> None:
    for i in range(n):
        ex.execute(0, "SET", [b"%s%d" % (prefix, i), b"v" * size])


# --- the command table -----------------------------------------------------------------------
def test_denyoom_flags_are_redis_7s() -> None:
    denyoom = {name for name, spec in COMMANDS.items() if spec.denyoom}
    collections = {  # lists, sets and sorted sets (tests/unit/test_codec.py checks them one by one)
        "LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "LSET", "LINSERT", "LMOVE", "RPOPLPUSH", "SADD",
        "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE", "ZADD", "ZINCRBY", "ZRANGESTORE",
        "ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE", "BLMOVE", "BRPOPLPUSH", "GEOADD", "SORT",
        "GEORADIUS", "GEORADIUSBYMEMBER", "GEOSEARCHSTORE"}
    assert denyoom == {"SET", "SETNX", "MSET", "APPEND", "INCR", "DECR", "INCRBY", "DECRBY",
                       "HSET", "HINCRBY", "INCRBYFLOAT", "SETEX", "PSETEX", "GETSET", "MSETNX",
                       "SETRANGE", "SETBIT", "BITOP", "BITFIELD", "COPY", "HMSET", "HSETNX",
                       "HINCRBYFLOAT", "RESTORE"} | collections
    assert all(COMMANDS[name].write for name in denyoom)


# --- used_memory -----------------------------------------------------------------------------
def random_command(rng: random.Random, clock: FakeClock):
    k, k2 = b"k%d" % rng.randrange(30), b"k%d" % rng.randrange(30)
    v = b"x" * rng.randrange(0, 50) + b"%d" % rng.randrange(100)
    f = b"f%d" % rng.randrange(5)
    return rng.choice([
        ("SET", k, v), ("SET", k, v, b"PX", b"%d" % rng.randrange(1, 50)),
        ("SET", k, v, b"KEEPTTL"),
        ("SET", k, v, b"GET"), ("SETNX", k, v), ("MSET", k, v, k2, v), ("GETDEL", k),
        ("APPEND", k, v), ("INCR", k), ("INCRBY", k, b"%d" % rng.randrange(-5, 5)), ("DEL", k, k2),
        ("RENAME", k, k2), ("PEXPIRE", k, b"%d" % rng.randrange(-5, 50)), ("PERSIST", k),
        ("HSET", k, f, v), ("HSET", k, f, v, b"f9", v), ("HDEL", k, f, b"f9"),
        ("HINCRBY", k, f, b"2"),
        ("GET", k), ("HGETALL", k), ("SCAN", b"0", b"COUNT", b"3"),
        ("FLUSHDB",) if rng.random() < 0.02 else ("EXISTS", k),
    ])


@pytest.mark.parametrize("lru", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_used_memory_is_exact_after_random_workloads(seed: int, lru: bool) -> None:
    rng, clock = random.Random(seed), FakeClock()
    ex = Executor(clock_ms=clock)
    if lru:
        ex.maxmemory, ex.maxmemory_policy = 2**40, "allkeys-lru"  # tracked, never reached
    for step in range(3000):
        clock.now += rng.choice([0, 1, 5])
        name, *args = random_command(rng, clock)
        ex.execute(rng.randrange(3), name, args)
        if rng.random() < 0.05:
            ex.active_expire_cycle(1.0)
        if step % 100 == 0:
            assert ex.keyspace.used_memory == ex.keyspace.recount_memory()
    assert ex.keyspace.used_memory == ex.keyspace.recount_memory()
    run(ex, ("FLUSHALL",))
    assert ex.keyspace.used_memory == 0


def test_used_memory_tracks_rss(tmp_path) -> None:
    """The model against the allocator: 100k small SETs in a fresh interpreter. Measured on the
    test machine: RSS grew 1.04-1.11x used_memory (values of 10-100 bytes), 1.03x for 1 KB
    (docs/commands.md has these and the figures of a running node)."""
    script = (
        "import gc, os\n"
        "from aofnode.store.executor import Executor\n"
        "def rss():\n"
        "    with open('/proc/self/statm') as f:\n"
        "        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')\n"
        "ex = Executor()\n"
        "gc.collect(); r0 = rss()\n"
        "for i in range(100_000):\n"
        "    ex.execute(0, 'SET', [b'key:%08d' % i, b'value-%010d' % i])\n"
        "    if i % 1000 == 0: ex.take_propagated()\n"
        "ex.take_propagated(); gc.collect()\n"
        "print((rss() - r0) / ex.keyspace.used_memory)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60, cwd=str(_repo_root()))
    ratio = float(out.stdout)
    assert 0.8 < ratio < 1.5, ratio


def _repo_root():
    from pathlib import Path
    return Path(__file__).resolve().parents[2]


# --- noeviction ------------------------------------------------------------------------------
def test_noeviction_refuses_writes_that_grow_memory_and_serves_the_rest() -> None:
    ex = Executor()
    fill(ex, 100)
    ex.maxmemory = ex.keyspace.used_memory - 1  # just over the limit
    run(ex, ("HSET", "h", "f", "1"))  # allowed before: memory was under... now it is over
    ex.take_propagated()
    for command in [("SET", "new", "v"), ("SET", "k1", "v"), ("SETNX", "x", "1"),
                    ("MSET", "a", "1", "b", "2"), ("APPEND", "k1", "x"), ("INCR", "n"),
                    ("DECRBY", "n", "2"), ("HSET", "h", "g", "2"), ("HINCRBY", "h", "f", "1")]:
        assert run(ex, command) == OOM_ERR, command
    assert OOM_ERR == Error("OOM", "command not allowed when used memory > 'maxmemory'")
    assert ex.take_propagated() == []  # a refused command changes and logs nothing
    assert run(ex, ("GET", "k1")) == b"v" * 20  # reads work
    assert run(ex, ("EXPIRE", "k2", "100"), ("PERSIST", "k2"), ("TTL", "k3")) == [1, 1, -1]
    assert run(ex, ("SCAN", "0", "COUNT", "1000"))[0] == b"0"
    assert run(ex, ("DEL", "k1", "k2", "k3")) == 3  # deletes work, and free memory
    assert ex.keyspace.used_memory <= ex.maxmemory
    assert run(ex, ("SET", "new", "v")) == "OK"
    assert ex.evicted_keys == 0


def test_no_oom_while_loading() -> None:
    ex = Executor()
    ex.maxmemory = 1
    ex.loading = True
    assert run(ex, ("SET", "a", "1"), ("SET", "b", "2")) == ["OK", "OK"]  # replay rebuilds all
    ex.loading = False
    assert run(ex, ("SET", "c", "3")) == OOM_ERR


def test_settings_are_checked() -> None:
    ex = Executor()
    with pytest.raises(ValueError):
        ex.maxmemory_policy = "volatile-lfx"
    with pytest.raises(ValueError):
        ex.maxmemory = -1
    assert (ex.maxmemory, ex.maxmemory_policy, ex.evicted_keys) == (0, "noeviction", 0)


# --- allkeys-lru -----------------------------------------------------------------------------
def lru_executor(seed: int = 1, clock: FakeClock | None = None) -> Executor:
    """allkeys-lru with a limit never reached: the access dicts are ordered; tests lower the
    limit."""
    ex = Executor() if clock is None else Executor(clock_ms=clock)
    ex.eviction_rng = random.Random(seed)
    ex.maxmemory, ex.maxmemory_policy = 2**40, "allkeys-lru"
    return ex


def test_allkeys_lru_keeps_used_memory_under_the_limit_and_logs_each_eviction() -> None:
    ex = lru_executor()
    fill(ex, 1000)
    limit = ex.maxmemory = ex.keyspace.used_memory
    ex.take_propagated()
    log = []
    for i in range(3000):
        key = b"new%d" % i
        assert run(ex, ("SET", key, b"v" * 20)) == "OK"
        # Checked before each command: over by at most the last command's write.
        assert ex.keyspace.used_memory <= limit + len(key) + 20 + STRING_OVERHEAD + ACCESS_OVERHEAD
        log.extend(ex.take_propagated())
    dels = [entry for entry in log if entry[1] == "DEL"]
    assert len(dels) == ex.evicted_keys >= 3000
    assert all(len(entry) == 3 for entry in dels)  # one DEL per evicted key
    # Replaying the log (SETs and the evictions' DELs) rebuilds the same keyspace.
    replayed = Executor()
    replayed.loading = True
    for db, name, *args in [[0, "SET", b"k%d" % i, b"v" * 20] for i in range(1000)] + log:
        replayed.execute(db, name, args)
    for db in range(NUM_DBS):
        assert sorted(replayed.keyspace.keys(db)) == sorted(ex.keyspace.keys(db))


def test_allkeys_lru_evicts_cold_keys() -> None:
    """Statistical, with a fixed seed: 1000 keys, 200 of them read after every write; then
    writes force ~400 evictions. Sampled LRU must take nearly all of them from the cold 800.
    Access times have seconds resolution, as Redis's LRU clock: a second passes per write."""
    clock = FakeClock(1_700_000_000_000)
    ex = lru_executor(seed=5, clock=clock)
    fill(ex, 1000)
    hot = [b"k%d" % i for i in range(0, 1000, 5)]
    clock.now += 1000
    ex.refresh_clock()
    for key in hot:
        run(ex, ("GET", key))
    ex.maxmemory = ex.keyspace.used_memory
    for i in range(400):
        clock.now += 1000
        ex.refresh_clock()
        run(ex, ("SET", b"new%d" % i, b"v" * 20))
        for key in hot[i % 10::10]:  # keep the hot keys hot: 20 reads per write
            run(ex, ("GET", key))
    evicted = {entry[2] for entry in ex.take_propagated() if entry[1] == "DEL"}
    assert len(evicted) >= 350
    assert not evicted & set(hot)
    assert len(evicted & {b"new%d" % i for i in range(400)}) < 0.05 * len(evicted)


def test_pick_victim_takes_the_least_recently_used_of_its_samples(monkeypatch) -> None:
    clock = FakeClock(1_700_000_000_000)
    ex = lru_executor(clock=clock)
    rng = random.Random(9)
    for i in range(2000):
        run(ex, ("SET", b"k%d" % i, "v"), db=rng.randrange(3))
    for _ in range(3000):
        clock.now += 1000  # a second per read: access times have seconds resolution
        ex.refresh_clock()
        run(ex, ("GET", b"k%d" % rng.randrange(2000)), db=rng.randrange(3))
    ks = ex.keyspace
    heads = []
    real = ks.lru_head
    def spy(db: int, i: int):
        heads.append((db, real(db, i)))
        return heads[-1][1]

    monkeypatch.setattr(ks, "lru_head", spy)
    for _ in range(200):
        heads.clear()
        db, key = pick_victim(ks, rng)
        assert len(heads) == EVICTION_SAMPLES
        oldest = min(heads, key=lambda h: h[1][1])
        assert stamp_seconds(ks.access_stamp(db, key)) == oldest[1][1]


def test_eviction_stops_when_the_keyspace_is_empty() -> None:
    ex = lru_executor()
    ex.maxmemory = 1
    assert run(ex, ("SET", "a", "1")) == "OK"  # under the limit before it runs
    assert run(ex, ("SET", "b", "2")) == "OK"  # "a" evicted first
    assert ex.keyspace.keys(0) == [b"b"] and ex.evicted_keys == 1
    ex.keyspace.used_memory += 10**6  # pretend something else is over: nothing left to evict
    ex.keyspace.delete(0, b"b")
    assert run(ex, ("SET", "c", "3")) == OOM_ERR and run(ex, ("GET", "c")) is None


def test_switching_policies_turns_the_access_clock_on_and_off() -> None:
    ex = Executor()
    fill(ex, 50)
    base = ex.keyspace.used_memory
    ex.maxmemory_policy = "allkeys-lru"
    assert ex.keyspace.lru_head(0, 0) is None and ex.keyspace.used_memory == base  # maxmemory 0
    ex.maxmemory = 10**9
    assert ex.keyspace.used_memory > base
    assert any(ex.keyspace.lru_head(0, i) for i in range(256))
    ex.maxmemory_policy = "noeviction"
    assert ex.keyspace.used_memory == base == ex.keyspace.recount_memory()
