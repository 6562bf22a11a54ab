"""Per-command cost of big collections in the executor alone (no network, no AOF): the
"before/after" of docs/benchmarks.md's collection section.

Usage
-----
::

    python -m aofnode.bench.colops --sizes 1000,100000,1000000 --ops 2000

For each size it builds a sorted set and a set of that many members, then times ``--ops``
calls of each command (ZADD of a new member, ZREM, ZPOPMIN, ZRANK, ZRANGE of 10 by rank at the
middle, SPOP, SRANDMEMBER) and prints µs per call (the median of ``--rounds`` rounds). The
keyspace is rebuilt for each command, so one command's changes never feed the next.
"""
from __future__ import annotations

import argparse
import gc
import random
import statistics
import time

from aofnode.store.executor import Executor

__all__ = ["main", "measure"]


def _fresh(n: int) -> Executor:
    ex = Executor()
    ex.random = random.Random(1)
    zargs = []
    for i in range(n):
        zargs += [b"%d" % (i * 2), b"member:%d" % i]
    for at in range(0, len(zargs), 20_000):
        ex.execute(0, "ZADD", (b"z", *zargs[at:at + 20_000]))
    members = [b"member:%d" % i for i in range(n)]
    for at in range(0, n, 10_000):
        ex.execute(0, "SADD", (b"s", *members[at:at + 10_000]))
    return ex


def _calls(name: str, n: int, ops: int, rng: random.Random) -> list:
    """The ``ops`` argument tuples of one command."""
    if name == "ZADD":
        return [(b"z", b"%d" % (rng.randrange(n) * 2 + 1), b"new:%d" % i) for i in range(ops)]
    if name == "ZREM":
        return [(b"z", b"member:%d" % i) for i in rng.sample(range(n), ops)]
    if name in ("ZPOPMIN", "SPOP"):
        return [(b"z" if name == "ZPOPMIN" else b"s",)] * ops
    if name == "ZRANK":
        return [(b"z", b"member:%d" % rng.randrange(n)) for _ in range(ops)]
    if name == "ZRANGE":
        return [(b"z", b"%d" % (n // 2), b"%d" % (n // 2 + 9))] * ops
    return [(b"s",)] * ops  # SRANDMEMBER


def measure(n: int, ops: int, name: str) -> float:
    """µs per call of ``name`` on collections of ``n`` members."""
    ex = _fresh(n)
    calls = _calls(name, n, min(ops, n - 1), random.Random(n))
    run = ex.execute
    gc.disable()
    try:
        started = time.perf_counter()
        for args in calls:
            run(0, name, args)
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    return elapsed / len(calls) * 1e6


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000,100000,1000000")
    p.add_argument("--ops", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--commands", default="ZADD,ZREM,ZPOPMIN,ZRANK,ZRANGE,SPOP,SRANDMEMBER")
    args = p.parse_args(argv)
    names = args.commands.split(",")
    print("| members | " + " | ".join(f"{c} µs" for c in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for n in map(int, args.sizes.split(",")):
        cells = [statistics.median(measure(n, args.ops, c) for _ in range(args.rounds))
                 for c in names]
        print(f"| {n:,} | " + " | ".join(f"{v:.2f}" for v in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
