"""Access stamps (node/store/access.py, keyspace.py): Redis 7.0's LRU clock and LFU counter, and
what reads them: OBJECT IDLETIME and FREQ, RESTORE's IDLETIME and FREQ, which commands touch,
and the sampled policies of eviction.py. In process, on a fake clock."""
from __future__ import annotations

import random

import pytest

from tests.fakeclock import FakeClock

from aofnode.protocol.errors import Error
from aofnode.store.access import LFU_INIT_VAL, lfu_counter, lfu_stamp, stamp_seconds
from aofnode.store.eviction import POLICIES, pick_victim
from aofnode.store.executor import Executor
from aofnode.store.memory import ACCESS_OVERHEAD, STRING_OVERHEAD
from aofnode.store.rdb import dump_value

T0 = 1_700_000_000_000  # unix ms, on a minute boundary plus 20 s


def run(ex, *cmd, db=0):
    return ex.execute(db, cmd[0], [a if type(a) is bytes else str(a).encode() for a in cmd[1:]])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ex(clock: FakeClock) -> Executor:
    return Executor(clock_ms=clock)


def later(ex: Executor, clock: FakeClock, seconds: int) -> None:
    clock.now += seconds * 1000
    ex.refresh_clock()


# -- the clock and the counter, as functions ------------------------------------------------------

def test_stamps_say_which_clock_wrote_them():
    assert stamp_seconds(1_700_000_000) == 1_700_000_000
    minute = 1_700_000_000 // 60
    stamp = lfu_stamp(minute, 200)
    assert stamp < 0 and stamp_seconds(stamp) == minute * 60
    assert lfu_counter(stamp, minute, 1) == 200
    assert lfu_counter(lfu_stamp(minute, 0), minute, 1) == 0
    assert lfu_counter(lfu_stamp(minute, 255), minute, 1) == 255


@pytest.mark.parametrize("counter,elapsed,decay,expected", [
    (200, 0, 1, 200), (200, 1, 1, 199), (200, 59, 1, 141), (200, 10, 5, 198),
    (3, 10, 1, 0), (200, 10_000, 1, 0), (200, 10_000, 0, 200),  # 0: never decays
    (200, -5, 1, 200),  # a clock set back decays nothing
])
def test_the_counter_decays_one_per_decay_time_minutes(counter, elapsed, decay, expected):
    minute = 28_333_333
    assert lfu_counter(lfu_stamp(minute, counter), minute + elapsed, decay) == expected


def test_an_lru_stamp_reads_as_a_new_keys_counter():
    """After a switch to an LFU policy: as Redis's createObject would have set it then."""
    second = 1_700_000_000
    assert lfu_counter(second, second // 60, 1) == LFU_INIT_VAL
    assert lfu_counter(second, second // 60 + 2, 1) == LFU_INIT_VAL - 2


# -- which commands touch (Redis's LOOKUP_NOTOUCH) --------------------------------------------------

NOTOUCH = [("TTL", "k"), ("PTTL", "k"), ("EXPIRETIME", "k"), ("PEXPIRETIME", "k"), ("TYPE", "k"),
           ("EXISTS", "k"), ("OBJECT", "ENCODING", "k"), ("OBJECT", "REFCOUNT", "k"),
           ("OBJECT", "IDLETIME", "k"), ("MEMORY", "USAGE", "k"), ("SCAN", "0"),
           ("SCAN", "0", "TYPE", "string"), ("KEYS", "*"), ("DBSIZE",), ("RANDOMKEY",)]
TOUCH = [("GET", "k"), ("TOUCH", "k"), ("APPEND", "k", "x"), ("STRLEN", "k"), ("SET", "k", "w"),
         ("EXPIRE", "k", "100"), ("PERSIST", "k"), ("DUMP", "k"), ("GETRANGE", "k", "0", "1")]


@pytest.mark.parametrize("cmd", NOTOUCH, ids=" ".join)
def test_these_commands_do_not_touch(ex, clock, cmd):
    run(ex, "SET", "k", "v")
    later(ex, clock, 3)
    run(ex, *cmd)
    assert run(ex, "OBJECT", "IDLETIME", "k") == 3


@pytest.mark.parametrize("cmd", TOUCH, ids=" ".join)
def test_these_commands_touch(ex, clock, cmd):
    run(ex, "SET", "k", "v")
    later(ex, clock, 3)
    run(ex, *cmd)
    assert run(ex, "OBJECT", "IDLETIME", "k") == 0


def test_idletime_counts_seconds_and_every_type_has_one(ex, clock):
    run(ex, "SET", "s", "v")
    run(ex, "HSET", "h", "f", "v")
    run(ex, "RPUSH", "l", "a")
    run(ex, "SADD", "st", "a")
    run(ex, "ZADD", "z", "1", "a")
    later(ex, clock, 7)
    run(ex, "LPUSH", "l", "b")
    assert [run(ex, "OBJECT", "IDLETIME", k) for k in ("s", "h", "l", "st", "z")] == [7, 7, 0, 7, 7]
    assert run(ex, "OBJECT", "IDLETIME", "nope") is None


def test_rename_and_move_keep_the_access_stamp_as_redis_keeps_the_object(ex, clock):
    ex.maxmemory_policy = "allkeys-lfu"
    run(ex, "SET", "a", "v")
    run(ex, "RESTORE", "b", "0", dump_value(b"v"), "FREQ", "77")
    run(ex, "RENAME", "b", "c")
    assert run(ex, "OBJECT", "FREQ", "c") in (77, 78)  # RENAME's own lookup counts, maybe
    run(ex, "MOVE", "c", "3")
    assert run(ex, "OBJECT", "FREQ", "c", db=3) in (77, 78, 79)
    assert run(ex, "OBJECT", "FREQ", "a") == LFU_INIT_VAL


# -- OBJECT FREQ and the LFU policies -------------------------------------------------------------

def test_freq_and_idletime_answer_by_policy_with_redis_errors(ex):
    run(ex, "SET", "k", "v")
    freq = run(ex, "OBJECT", "FREQ", "k")
    assert type(freq) is Error and freq.message == (
        "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that "
        "when switching between policies at runtime LRU and LFU data will take some time to adjust.")
    for policy in ("allkeys-lfu", "volatile-lfu"):
        ex.maxmemory_policy = policy
        idle = run(ex, "OBJECT", "IDLETIME", "k")
        assert type(idle) is Error and idle.message == (
            "An LFU maxmemory policy is selected, idle time not tracked. Please note that when "
            "switching between policies at runtime LRU and LFU data will take some time to adjust.")
        assert run(ex, "OBJECT", "FREQ", "k") == LFU_INIT_VAL  # its LRU stamp, read as LFU
        assert run(ex, "OBJECT", "FREQ", "nope") is None
    ex.maxmemory_policy = "allkeys-lru"
    assert run(ex, "OBJECT", "IDLETIME", "k") == 0


def test_the_counter_grows_logarithmically_and_decays(ex, clock):
    ex.maxmemory_policy = "allkeys-lfu"
    ex.keyspace.lfu_random = random.Random(3).random
    run(ex, "SET", "k", "v")
    assert run(ex, "OBJECT", "FREQ", "k") == LFU_INIT_VAL
    run(ex, "GET", "k")
    assert run(ex, "OBJECT", "FREQ", "k") == LFU_INIT_VAL + 1  # always below 6
    for _ in range(1000):
        run(ex, "GET", "k")
    # Redis's table (redis.conf) for factor 10: 18 after 1k hits. Random: a band.
    assert 12 <= run(ex, "OBJECT", "FREQ", "k") <= 24
    freq = run(ex, "OBJECT", "FREQ", "k")
    later(ex, clock, 5 * 60)
    assert run(ex, "OBJECT", "FREQ", "k") == freq - 5  # one a minute (lfu-decay-time 1)
    ex.keyspace.lfu_decay_time = 0
    assert run(ex, "OBJECT", "FREQ", "k") == freq


def test_a_higher_log_factor_grows_slower(clock):
    counts = []
    for factor in (1, 10, 100):
        ex = Executor(clock_ms=clock)
        ex.maxmemory_policy = "allkeys-lfu"
        ex.keyspace.lfu_log_factor = factor
        ex.keyspace.lfu_random = random.Random(5).random
        run(ex, "SET", "k", "v")
        for _ in range(2000):
            run(ex, "GET", "k")
        counts.append(run(ex, "OBJECT", "FREQ", "k"))
    assert counts[0] > counts[1] > counts[2] > LFU_INIT_VAL


def test_an_overwrite_keeps_the_counter_under_lfu(ex):
    ex.maxmemory_policy = "allkeys-lfu"
    run(ex, "RESTORE", "k", "0", dump_value(b"v"), "FREQ", "100")
    run(ex, "SET", "k", "w")
    assert run(ex, "OBJECT", "FREQ", "k") in (100, 101)  # Redis's dbOverwrite keeps the field
    run(ex, "DEL", "k")
    run(ex, "SET", "k", "w")
    assert run(ex, "OBJECT", "FREQ", "k") == LFU_INIT_VAL


# -- RESTORE IDLETIME / FREQ ------------------------------------------------------------------------

def test_restore_sets_idletime_or_freq_by_policy(ex):
    payload = dump_value(b"bar")
    assert run(ex, "RESTORE", "a", "0", payload, "IDLETIME", "1000") == "OK"
    assert run(ex, "OBJECT", "IDLETIME", "a") == 1000
    assert run(ex, "RESTORE", "b", "0", payload, "FREQ", "100") == "OK"  # checked, not used
    assert run(ex, "OBJECT", "IDLETIME", "b") == 0
    assert run(ex, "RESTORE", "c", "0", payload, "IDLETIME", str(1 << 40)) == "OK"
    assert run(ex, "OBJECT", "IDLETIME", "c") == (1 << 24) - 1  # Redis's clock: 24 bits
    ex.maxmemory_policy = "allkeys-lfu"
    assert run(ex, "RESTORE", "d", "0", payload, "FREQ", "100") == "OK"
    assert run(ex, "OBJECT", "FREQ", "d") == 100
    assert run(ex, "RESTORE", "e", "0", payload, "IDLETIME", "1000") == "OK"  # ignored
    assert run(ex, "OBJECT", "FREQ", "e") == LFU_INIT_VAL
    assert run(ex, "GET", "d") == b"bar"


@pytest.mark.parametrize("options,message", [
    (("IDLETIME", "-1"), "Invalid IDLETIME value, must be >= 0"),
    (("FREQ", "256"), "Invalid FREQ value, must be >= 0 and <= 255"),
    (("FREQ", "-1"), "Invalid FREQ value, must be >= 0 and <= 255"),
    (("IDLETIME", "x"), "value is not an integer or out of range"),
    (("IDLETIME", "1", "FREQ", "1"), "syntax error"),
    (("FREQ", "1", "IDLETIME", "1"), "syntax error"),
    (("IDLETIME",), "syntax error"),
])
def test_restore_refuses_bad_idletime_and_freq(ex, options, message):
    reply = run(ex, "RESTORE", "k", "0", dump_value(b"v"), *options)
    assert type(reply) is Error and reply.message == message
    assert run(ex, "EXISTS", "k") == 0


def test_access_stamps_are_never_propagated(ex, clock):
    ex.maxmemory_policy = "allkeys-lfu"
    run(ex, "RESTORE", "k", "0", dump_value(b"v"), "FREQ", "9")
    run(ex, "GET", "k")
    run(ex, "OBJECT", "FREQ", "k")
    assert ex.take_propagated() == [[0, "SET", b"k", b"v"]]


# -- eviction's sampled policies --------------------------------------------------------------------

def _fill(ex, n, ttl_every=0):
    for i in range(n):
        ex.execute(0, "SET", [b"k%d" % i, b"v" * 20])
        if ttl_every and i % ttl_every == 0:
            ex.execute(0, "PEXPIRE", [b"k%d" % i, b"%d" % (10_000_000 + i)])


def test_every_redis_policy_is_accepted_and_evicts_what_it_may(clock):
    for policy in POLICIES:
        ex = Executor(clock_ms=clock)
        ex.eviction_rng = random.Random(1)
        ex.maxmemory_policy = policy
        _fill(ex, 400, ttl_every=4)
        limit = ex.maxmemory = ex.keyspace.used_memory
        ex.take_propagated()
        replies = [run(ex, "SET", b"new%d" % i, b"v" * 20) for i in range(50)]
        evicted = [e[2] for e in ex.take_propagated() if e[1] == "DEL"]
        if policy == "noeviction":
            assert evicted == [] and all(type(r) is Error for r in replies[1:])
            continue
        assert all(r == "OK" for r in replies) and len(evicted) >= 25, policy
        # Over by one write at most: a key, its value and its overheads.
        assert ex.keyspace.used_memory <= limit + 5 + 20 + STRING_OVERHEAD + ACCESS_OVERHEAD, policy
        if policy.startswith("volatile-"):
            # Only keys with a TTL: k0, k4, k8, ... (none of the new ones has one).
            assert all(k.startswith(b"k") and int(k[1:]) % 4 == 0 for k in evicted), policy


def test_volatile_ttl_evicts_the_soonest_expire_of_its_samples(ex):
    ex.eviction_rng = random.Random(4)
    ex.maxmemory_policy = "volatile-ttl"
    _fill(ex, 400, ttl_every=1)
    ks = ex.keyspace
    for _ in range(100):
        db, key = pick_victim(ks, ex.eviction_rng, samples=400, policy="volatile-ttl")
        # 400 samples of 400 keys: nearly all are seen, so the victim is among the soonest.
        assert int(key[1:]) < 10
        ks.delete(db, key)
        break


def test_allkeys_lfu_keeps_the_hot_keys(clock):
    """Statistical, with fixed seeds: 1000 keys, 100 of them read 50 times each; then writes force
    ~300 evictions. LFU must take none of the hot keys. 10 samples: with 5, all five drawn
    among the hot tenth happens once in ~10^5 evictions (the shards follow the hash seed)."""
    ex = Executor(clock_ms=clock)
    ex.maxmemory_samples = 10
    ex.eviction_rng = random.Random(7)
    ex.keyspace.lfu_random = random.Random(8).random
    ex.maxmemory_policy = "allkeys-lfu"
    _fill(ex, 1000)
    hot = [b"k%d" % i for i in range(0, 1000, 10)]
    for _ in range(50):
        for key in hot:
            run(ex, "GET", key)
    ex.maxmemory = ex.keyspace.used_memory
    for i in range(300):
        run(ex, "SET", b"new%d" % i, b"v" * 20)
    evicted = {e[2] for e in ex.take_propagated() if e[1] == "DEL"}
    assert len(evicted) >= 300
    assert not evicted & set(hot)


def test_maxmemory_samples_is_the_number_of_candidates(clock, monkeypatch):
    ex = Executor(clock_ms=clock)
    ex.maxmemory_policy = "allkeys-lfu"
    ex.maxmemory_samples = 12
    _fill(ex, 200)
    drawn = []
    real = ex.keyspace.sample_key

    def spy(*args, **kw):
        drawn.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(ex.keyspace, "sample_key", spy)
    ex.maxmemory = ex.keyspace.used_memory
    run(ex, "SET", "one", "more")  # the limit is checked before a command: this one goes over
    run(ex, "SET", "two", "more")
    assert ex.evicted_keys >= 1 and len(drawn) == 12 * ex.evicted_keys


def test_nothing_is_touched_while_a_rewrite_child_runs(ex, clock):
    """Redis touches nothing while it has a child: a touch writes to pages the child shares."""
    run(ex, "SET", "k", "v")
    later(ex, clock, 5)
    ex.keyspace.freeze_access(True)
    assert run(ex, "GET", "k") == b"v"
    run(ex, "SET", "k", "w")
    run(ex, "SET", "new", "v")  # a new key still gets its stamp
    assert run(ex, "OBJECT", "IDLETIME", "k") == 5
    assert run(ex, "OBJECT", "IDLETIME", "new") == 0
    ex.maxmemory_policy = "allkeys-lfu"  # the policy may change meanwhile: still frozen
    run(ex, "GET", "new")
    assert run(ex, "OBJECT", "FREQ", "new") == LFU_INIT_VAL
    ex.keyspace.freeze_access(False)
    run(ex, "GET", "new")
    assert run(ex, "OBJECT", "FREQ", "new") == LFU_INIT_VAL + 1
    ex.maxmemory_policy = "noeviction"
    run(ex, "GET", "k")
    assert run(ex, "OBJECT", "IDLETIME", "k") == 0
