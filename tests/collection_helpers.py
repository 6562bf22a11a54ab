"""Helpers for the list, set and sorted set tests: run commands, dump a keyspace of any type,
replay propagated entries into a fresh executor."""
from __future__ import annotations

import random

from tests.fakeclock import FakeClock

from aofnode.protocol.errors import Error
from aofnode.store.executor import Executor
from aofnode.store.keyspace import NUM_DBS

WRONGTYPE = Error("WRONGTYPE", "Operation against a key holding the wrong kind of value")
SYNTAX = Error("ERR", "syntax error")
NOT_INT = Error("ERR", "value is not an integer or out of range")


def _b(arg) -> bytes:
    return arg if isinstance(arg, bytes) else str(arg).encode()


def run(ex: Executor, *commands, db: int = 0):
    """Execute ``("NAME", arg, ...)`` tuples in order; the reply of the last one."""
    reply = None
    for name, *args in commands:
        reply = ex.execute(db, name, tuple(_b(a) for a in args))  # tuples, as the log actor
    return reply


def normal(value):
    """A stored value in a comparable form (sets sorted, sorted sets as their index)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):  # [head reversed, tail]
        return ("list", value[0][::-1] + value[1])
    if isinstance(value, tuple) and len(value) == 1:
        assert all(v is None for v in value[0].values())
        return ("set", sorted(value[0]))
    if isinstance(value, tuple):
        scores, chunks = value
        index = [item for chunk in chunks for item in chunk]
        assert all(chunks) and all(a[-1] < b[0] for a, b in zip(chunks, chunks[1:]))
        assert sorted((s, m) for m, s in scores.items()) == index, "index out of step"
        return ("zset", index)
    return ("hash", sorted(value.items()))


def dump(ex: Executor) -> list:
    was = ex.loading
    ex.loading = True
    ks = ex.keyspace
    try:
        return [sorted((k, normal(ks.lookup(db, k)), ks.get_expire(db, k)) for k in ks.keys(db))
                for db in range(NUM_DBS)]
    finally:
        ex.loading = was


def replay(log: list[list], clock: FakeClock) -> Executor:
    fresh = Executor(clock_ms=FakeClock(clock.now + 10**9))
    fresh.loading = True
    for entry in log:
        reply = fresh.execute(entry[0], entry[1], entry[2:])
        assert not isinstance(reply, Error), (entry, reply)
    assert fresh.take_propagated() == []
    return fresh


def check_replay(seed: int, random_command, steps: int = 1500) -> None:
    """Random commands on a live executor; replaying what it propagated rebuilds its keyspace,
    and used_memory always equals a recount."""
    rng = random.Random(seed)
    clock = FakeClock()
    live = Executor(clock_ms=clock)
    live.random = random.Random(seed)
    log: list[list] = []
    for step in range(steps):
        clock.now += rng.choice([0, 0, 1, 5, 50])
        name, *args = random_command(rng, clock)
        live.execute(rng.randrange(2), name, tuple(_b(a) for a in args))
        if rng.random() < 0.05:
            live.active_expire_cycle(1.0)
        log.extend(live.take_propagated())
        if step % 100 == 0:
            assert live.keyspace.used_memory == live.keyspace.recount_memory()
        if rng.random() < 0.02:
            assert dump(replay(log, clock)) == dump(live)
    fresh = replay(log, clock)
    assert dump(fresh) == dump(live)
    assert fresh.keyspace.used_memory == live.keyspace.used_memory
    assert all(isinstance(entry[0], int) and isinstance(entry[1], str) and
               all(isinstance(a, bytes) for a in entry[2:]) for entry in log)


def common_commands(rng: random.Random, clock: FakeClock, keys) -> tuple:
    """Key commands and other types' commands on the same keys: TTLs, renames, WRONGTYPE."""
    k, k2 = rng.choice(keys), rng.choice(keys)
    t = rng.randrange(1, 400)
    return rng.choice([
        ("DEL", k), ("RENAME", k, k2), ("PEXPIRE", k, t), ("PERSIST", k), ("SET", k, "v"),
        ("HSET", k, "f", "v"), ("EXPIRE", k, "-1"), ("TYPE", k), ("GET", k), ("EXISTS", k, k2),
        ("FLUSHDB",) if rng.random() < 0.05 else ("TTL", k),
    ])
