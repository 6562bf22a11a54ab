"""A GET hit's cost in the executor by keyspace size: what the memory a lookup touches costs.

Usage
-----
::

    python -m aofnode.bench.studies.lookup_cost [--keys 1000,100000,1000000] [--gets 20000]

Design
------
1. An ``Executor`` alone (no log actor, no AOF), ``--keys`` SETs of 100-byte values.
2. ``--gets`` GETs of keys drawn at random (seed 1), through the GET handler as the log actor
   inlines it; the best of 7 timed repeats of 10 passes, in nanoseconds per GET.
3. Run it with two trees' interpreters to compare them: past the CPU caches (100k keys and
   more) every other table a lookup writes is a cache miss more per GET.
"""
from __future__ import annotations

import argparse
import random
import timeit

from aofnode.store.executor import Executor

__all__ = ["main"]


def _cost(keys: int, gets: int) -> float:
    executor = Executor()
    for i in range(keys):
        executor.execute(0, "SET", [b"key:%d" % i, b"v" * 100])
    rng = random.Random(1)
    names = [b"key:%d" % rng.randrange(keys) for _ in range(gets)]
    get = executor.handlers["GET"]

    def run() -> None:
        for name in names:
            get(0, [name])
    return min(timeit.repeat(run, number=10, repeat=7)) / 10 / gets * 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", default="1000,100000,1000000", help="keyspace sizes, comma-separated")
    ap.add_argument("--gets", type=int, default=20_000)
    args = ap.parse_args(argv)
    for keys in (int(k) for k in args.keys.split(",")):
        print(f"{keys} keys: GET hit {_cost(keys, args.gets):.0f} ns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
