"""What a geo search costs the log actor, beside a ZRANGEBYSCORE over as many members: the
executor alone (no network, no AOF), CPU time of this process.

Usage
-----
::

    python -m aofnode.bench.geosearch --sizes 10000,100000,1000000 --rounds 3

For each size it builds a geo index of that many random points over the whole map (fixed
seed), then for each search it runs the search and a ZRANGEBYSCORE that returns as many
members (a score range of the same length, so both touch the same number of members), with and
without WITHSCORES (which formats a double per member, as WITHDIST does), and prints the CPU
µs of each, the ratios, and the search's µs per member: the median of ``--rounds`` runs.
The searches: a radius that covers the map (every member is read and measured, the worst
case), the same with COUNT 10 (the partial sort), a box that covers the map, a 500 km box, and
a 50 km radius.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from aofnode.store.executor import Executor

__all__ = ["main", "measure"]

SEARCHES = {
    "world radius": ("GEOSEARCH", b"g", b"FROMLONLAT", b"0", b"0", b"BYRADIUS", b"21000", b"km"),
    "world COUNT 10": ("GEOSEARCH", b"g", b"FROMLONLAT", b"0", b"0", b"BYRADIUS", b"21000", b"km",
                       b"COUNT", b"10"),
    "world box": ("GEOSEARCH", b"g", b"FROMLONLAT", b"0", b"0", b"BYBOX", b"45000", b"45000", b"km"),
    "500 km box": ("GEOSEARCH", b"g", b"FROMLONLAT", b"10", b"45", b"BYBOX", b"500", b"500", b"km",
                   b"WITHDIST"),
    "50 km radius": ("GEORADIUS", b"g", b"10", b"45", b"50", b"km", b"ASC"),
}


def _build(n: int) -> Executor:
    ex = Executor()
    rng = random.Random(n)
    args: list[bytes] = []
    for i in range(n):
        args += [b"%.6f" % rng.uniform(-180, 180), b"%.6f" % rng.uniform(-85, 85), b"p%d" % i]
    for at in range(0, len(args), 30_000):
        ex.execute(0, "GEOADD", (b"g", *args[at:at + 30_000]))
    ex.take_propagated()
    return ex


def _cpu_us(ex: Executor, name: str, args: tuple) -> tuple[float, object]:
    start = time.process_time()
    reply = ex.execute(0, name, list(args))
    return (time.process_time() - start) * 1e6, reply


def _matching_range(ex: Executor, members: int) -> tuple:
    """ZRANGEBYSCORE arguments returning ``members`` members from the middle of the index."""
    flat = ex.execute(0, "ZRANGE", [b"g", b"0", b"-1", b"WITHSCORES"])
    scores = flat[1::2]
    start = max(0, len(scores) // 2 - members // 2)
    end = min(len(scores) - 1, start + max(members, 1) - 1)
    return (b"g", scores[start], scores[end])


def measure(n: int, rounds: int) -> list[dict]:
    ex = _build(n)
    out = []
    for label, (name, *args) in SEARCHES.items():
        runs = []
        for _ in range(rounds):
            search_us, reply = _cpu_us(ex, name, tuple(args))
            touched = n if label.startswith("world") else len(reply)
            same = _matching_range(ex, touched)
            range_us, _ = _cpu_us(ex, "ZRANGEBYSCORE", same)
            scores_us, _ = _cpu_us(ex, "ZRANGEBYSCORE", (*same, b"WITHSCORES"))
            runs.append((search_us, range_us, scores_us, touched))
        search_us = statistics.median(r[0] for r in runs)
        range_us = statistics.median(r[1] for r in runs)
        scores_us = statistics.median(r[2] for r in runs)
        touched = runs[0][3]
        out.append({"size": n, "search": label, "members": touched, "search_us": round(search_us),
                    "zrangebyscore_us": round(range_us), "withscores_us": round(scores_us),
                    "ratio": round(search_us / range_us, 2) if range_us else None,
                    "ratio_withscores": round(search_us / scores_us, 2) if scores_us else None,
                    "search_us_per_member": round(search_us / touched, 3) if touched else None})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the rows to this file")
    opts = parser.parse_args(argv)
    rows = []
    print(f"{'size':>9} {'search':<16} {'members':>9} {'search us':>11} {'zrangebyscore us':>17} "
          f"{'ratio':>6} {'WITHSCORES us':>14} {'ratio':>6} {'us/member':>10}")
    for n in (int(s) for s in opts.sizes.split(",")):
        for row in measure(n, opts.rounds):
            rows.append(row)
            print(f"{row['size']:>9} {row['search']:<16} {row['members']:>9} {row['search_us']:>11} "
                  f"{row['zrangebyscore_us']:>17} {row['ratio']!s:>6} {row['withscores_us']:>14} "
                  f"{row['ratio_withscores']!s:>6} {row['search_us_per_member']!s:>10}")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
