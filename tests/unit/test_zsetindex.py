"""node/store/zsetindex.py: the chunked index against one flat sorted list, with chunks small
enough (8) that every split and merge path runs; then sorted set commands across chunks."""
from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from operator import itemgetter

import pytest

from tests.collection_helpers import normal, run
from tests.fakeclock import FakeClock

from aofnode.store import zsetindex
from aofnode.store.executor import Executor
from aofnode.store.zsetindex import (
    zi_build, zi_delete, zi_flat, zi_head, zi_insert, zi_len, zi_pos, zi_slice, zi_tail,
)


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(zsetindex, "CHUNK_MAX", 8)
    monkeypatch.setattr(zsetindex, "CHUNK_MIN", 1)


def _check(index, flat):
    assert zi_flat(index) == flat and zi_len(index) == len(flat)
    assert all(index) and all(len(c) <= zsetindex.CHUNK_MAX for c in index)


@pytest.mark.parametrize("chunk_min", [1, 3])
def test_random_inserts_and_deletes_match_a_flat_list(small_chunks, monkeypatch, chunk_min):
    monkeypatch.setattr(zsetindex, "CHUNK_MIN", chunk_min)
    rng = random.Random(chunk_min)
    flat: list = []
    index = zi_build([])
    for step in range(3000):
        if flat and rng.random() < 0.45:
            item = flat.pop(rng.choice((0, -1, rng.randrange(len(flat)))))
            zi_delete(index, item)
        else:
            item = (float(rng.randrange(50)), b"m%d" % rng.randrange(10**6))
            if item in flat:
                continue
            flat.insert(bisect_left(flat, item), item)
            zi_insert(index, item)
        if step % 50 == 0:
            _check(index, flat)
            for _ in range(20):
                x = float(rng.randrange(-1, 52))
                for right, bis in ((False, bisect_left), (True, bisect_right)):
                    assert zi_pos(index, x, len(flat), right, itemgetter(0)) == \
                        bis(flat, x, key=itemgetter(0))
                a, b = rng.randrange(len(flat) + 2), rng.randrange(len(flat) + 2)
                assert zi_slice(index, a, b, len(flat)) == flat[a:b]
                assert zi_head(index, a + 1) == flat[:a + 1]
                assert zi_tail(index, a + 1) == flat[::-1][:a + 1]
    _check(index, flat)


def test_built_index_matches(small_chunks):
    flat = [(float(i), b"%d" % i) for i in range(37)]
    index = zi_build(list(flat))
    _check(index, flat)
    assert [zi_pos(index, item, 37) for item in flat] == list(range(37))
    assert [zi_slice(index, i, i + 3, 37) for i in range(37)] == [flat[i:i + 3] for i in range(37)]


def test_commands_across_chunks(small_chunks):
    ex = Executor(clock_ms=FakeClock(1_700_000_000_000))
    members = [(i % 7, b"m%03d" % i) for i in range(200)]
    run(ex, ("ZADD", "z", *[x for s, m in members for x in (str(s), m)]))
    flat = sorted((float(s), m) for s, m in members)
    assert normal(ex.keyspace.lookup(0, b"z")) == ("zset", flat)
    assert run(ex, ("ZRANK", "z", "m013")) == flat.index((6.0, b"m013"))
    assert run(ex, ("ZCOUNT", "z", "(2", "4")) == sum(1 for s, _ in flat if 2 < s <= 4)
    assert run(ex, ("ZRANGE", "z", "-30", "-20")) == [m for _, m in flat[-30:-19]]
    assert run(ex, ("ZREVRANGE", "z", "5", "9")) == [m for _, m in flat[::-1][5:10]]
    assert run(ex, ("ZRANGEBYSCORE", "z", "3", "3", "LIMIT", "4", "6")) == \
        [m for s, m in flat if s == 3][4:10]
    popped = run(ex, ("ZPOPMIN", "z", "15"))
    assert popped[::2] == [m for _, m in flat[:15]]
    popped = run(ex, ("ZPOPMAX", "z", "3"))
    assert popped[::2] == [m for _, m in flat[::-1][:3]]
    flat = flat[15:-3]
    assert run(ex, ("ZREMRANGEBYRANK", "z", "10", "40")) == 31
    flat = flat[:10] + flat[41:]
    assert normal(ex.keyspace.lookup(0, b"z")) == ("zset", flat)
    run(ex, ("ZADD", "lex", *[x for i in range(60) for x in ("0", b"k%02d" % i)]))
    assert run(ex, ("ZRANGEBYLEX", "lex", "[k10", "(k25")) == [b"k%02d" % i for i in range(10, 25)]
    assert run(ex, ("ZLEXCOUNT", "lex", "(k10", "+")) == 49


def test_colops_bench_runs(capsys):
    from aofnode.bench import colops
    colops.main(["--sizes", "300", "--ops", "20", "--rounds", "1"])
    assert "| 300 |" in capsys.readouterr().out
