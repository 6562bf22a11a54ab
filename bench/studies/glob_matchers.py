"""Two glob matchers in one process over the same keys: this tree's against an older tree's.

Usage::

    python -m aofnode.bench.studies.glob_matchers --before /tmp/before [--keys 100000]

Design: the older tree's ``node/store/pattern.py`` is loaded under another module name, so both
``compile_glob`` run in this interpreter. For each pattern, each matcher filters the keys as
KEYS does (one call per key, a list comprehension); best of ``--runs`` timings, the two
matchers alternating within each run so that drift hits both; both must find the same keys.
Keys: 40% ``user:N``, 30% ``session:<hex>:N``, 15% ``abcN``, 15% ``bxNx`` (the shapes of
docs/commands.md's table), or ``--bomb``: 20k keys of 1 KiB as bench/glob_bomb.py loads them.
"""
from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time
from pathlib import Path

from aofnode.bench.glob_bomb import PATTERNS, make_key
from aofnode.store.pattern import compile_glob

COMMON = [b"*", b"user:*", b"user:1*", b"*:42", b"a?c*", b"[a-c]*x", b"user:*:4?", b"*:4*",
          b"*a*a*a*a*b"]


def _load_before(tree: Path):
    spec = importlib.util.spec_from_file_location("before_pattern",
                                                  tree / "node" / "store" / "pattern.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compile_glob


def _common_keys(n: int) -> list[bytes]:
    rng = random.Random(1)
    keys = []
    for i in range(n):
        r = rng.random()
        if r < 0.4:
            keys.append(b"user:%d" % i)
        elif r < 0.7:
            keys.append(b"session:%x:%d" % (rng.getrandbits(32), i))
        elif r < 0.85:
            keys.append(b"abc%d" % i)
        else:
            keys.append(b"bx%dx" % i)
    return keys


def _time(match, keys: list[bytes]) -> tuple[float, int]:
    t0 = time.perf_counter()
    found = [k for k in keys if match(k)] if match is not None else list(keys)
    return time.perf_counter() - t0, len(found)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aofnode.bench.studies.glob_matchers")
    p.add_argument("--before", type=Path, required=True, metavar="TREE")
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--bomb", action="store_true", help="bench/glob_bomb.py's keys and patterns")
    args = p.parse_args(argv)
    old_compile = _load_before(args.before)
    if args.bomb:
        keys = [make_key(i, 1024) for i in range(20_000)]
        patterns = list(PATTERNS.values())
    else:
        keys, patterns = _common_keys(args.keys), COMMON
    print("| pattern | before ms | after ms | after/before |\n|---|---|---|---|")
    for pattern in patterns:
        # KEYS passes no matcher for "*" (every key), as keys.py does.
        old = None if pattern == b"*" else old_compile(pattern)
        new = None if pattern == b"*" else compile_glob(pattern)
        best = {"before": float("inf"), "after": float("inf")}
        for _ in range(args.runs):
            t_old, n_old = _time(old, keys)
            t_new, n_new = _time(new, keys)
            if n_old != n_new:
                raise SystemExit(f"{pattern!r}: before found {n_old}, after {n_new}")
            best["before"], best["after"] = min(best["before"], t_old), min(best["after"], t_new)
        shown = pattern if len(pattern) <= 24 else pattern[:20] + b"..."
        print(f"| `{shown.decode('latin-1')}` | {best['before'] * 1000:.2f} | "
              f"{best['after'] * 1000:.2f} | {best['after'] / best['before']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
