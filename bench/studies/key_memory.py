"""Bytes per key of the keyspace, measured (tracemalloc) beside the model (``used_memory``).

Usage
-----
::

    python -m aofnode.bench.studies.key_memory [--keys 1000000] [--policy allkeys-lru]

Design
------
1. An ``Executor`` alone (no log actor, no AOF) with ``--policy`` and a maxmemory it never
   reaches (so allkeys-lru keeps its access order, as under ``serve``).
2. ``--keys`` SETs of 16-byte names (``key:%012d``) and ``--value-size`` values (each its own
   object, as values read from the wire are) through ``execute``, as the log actor runs them,
   under tracemalloc; the propagated entries are dropped as they come.
3. Print the bytes Python allocated per key and the model's ``used_memory`` per key
   (node/store/memory.py). Allocator rounding and arenas are not in either figure.
"""
from __future__ import annotations

import argparse
import tracemalloc

from aofnode.store.executor import Executor

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--value-size", type=int, default=3)
    ap.add_argument("--policy", default="noeviction")
    args = ap.parse_args(argv)
    ex = Executor()
    ex.maxmemory, ex.maxmemory_policy = 1 << 50, args.policy
    pad = b"x" * args.value_size
    execute = ex.execute
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(args.keys):
        # A value object of its own per key, as values read from the wire are.
        execute(0, "SET", [b"key:%012d" % i, (pad + b"%d" % i)[-args.value_size:]])
        if not i % 4096:
            ex.take_propagated()
    ex.take_propagated()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(f"{args.keys} keys, {args.policy}: {grown / args.keys:.1f} bytes per key allocated, "
          f"{ex.keyspace.used_memory / args.keys:.1f} in the model")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
