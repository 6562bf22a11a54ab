"""KEYS and SCAN MATCH with hostile glob patterns: aofnode's RESP front beside redis-server.

Usage
-----
::

    python -m aofnode.bench.glob_bomb --repeats 3 --json glob.json
    git worktree add /tmp/before <commit>      # optional third column: an older tree's node
    python -m aofnode.bench.glob_bomb --before /tmp/before

Design
------
1. Start redis-server (bench/servers.py, the command line every benchmark uses), this tree's
   node with ``--resp-bind`` and, with ``--before TREE``, that tree's node the same way, each
   on a free loopback port in a temp dir; all are stopped (process group and dir) on exit.
2. Load the same keys into each with pipelined SETs: ``--keys`` keys of ``--key-bytes`` bytes,
   ``key:NNNNNN:`` then ``a`` up to the size; one key in 50 ends in ``b`` so that the patterns
   below match a few keys and the replies can be compared (a differential check on the way).
3. For each pattern, for each repeat, servers in an order rotated every repeat: time one
   ``KEYS pattern`` and one full ``SCAN`` (from cursor 0 with ``MATCH pattern COUNT --keys``
   until cursor 0), wall time at the client and CPU of the server's process group from /proc.
   A command that exceeds ``--slow`` seconds is not repeated (the figure is clear already), so
   the slowest matcher cannot make the run last for minutes; ``--timeout`` bounds any one and
   ``--budget`` the whole measuring step (later patterns are skipped, with a note).
4. Print a table (median, and the spread with 2+ repeats) with each node's ratio to
   redis-server, per repeat then the median; ``--json`` writes every sample.

The patterns (``PATTERNS``) are the worst found: many star runs (each one a Python-level step per
key for a matcher that loops over segments), star runs over class segments, segments that start
with a class or ``?``, and a long class run that nearly matches at every place. Redis is linear
on most of them too, so they measure cost per key and per segment, not an algorithm that
redis-server lacks.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aofnode.bench import cbench, oldtree, procstat, spread
from aofnode.bench.resp import RespClient, RespError
from aofnode.bench.servers import Server, free_port, start_aofnode, start_redis
from aofnode.bench.targets import TargetSpec

__all__ = ["PATTERNS", "make_key", "main"]

# name -> pattern, against keys of 1 KiB of ``a`` (step 2). Stars before the last token stay
# <= 1000 (Redis's nesting limit, past which a pattern matches nothing and costs nothing).
# Measured on 2026-12-07 (docs/benchmarks.md): the default six are the worst against
# redis-server for a matcher that loops over segments in Python (the first three: 12-22x) or
# for the single-regex one (a segment that starts with a class or "?": 0.2-1.8x), and
# class-run-30 is the costliest for both (O(key x 30) per key: seconds for 20k keys). The
# others cost the single regex at most 0.6x redis-server's time; --patterns all runs them.
PATTERNS: dict[str, bytes] = {
    "stars-999": b"*a" * 999 + b"*b*",
    "class-stars-300": b"*a?[a-c]" * 300 + b"*b*",
    "class-first-stars-500": b"*[ab]a" * 500 + b"*c*",
    "class-pair": b"*[ab]c*",
    "qmark-pair": b"*?c*",
    "class-run-30": b"*" + b"[ab]" * 30 + b"c*",
    "one-star-class": b"key:*" + b"[ab]" * 30 + b"c",
    "literal-run-30": b"*" + b"a" * 30 + b"c*",
    "qmarks-1000": b"?" * 1000 + b"*b",
    "stars-4-tail": b"*a*a*a*a*b",
    "class-triple-tail": b"*[ab][ab]c*d",
}
DEFAULT = "stars-999,class-stars-300,class-first-stars-500,class-pair,qmark-pair,class-run-30"
LOAD_BATCH = 200  # SETs per pipeline: ~200 KiB of 1 KiB keys, well under any query buffer


def make_key(i: int, size: int) -> bytes:
    head = b"key:%06d:" % i
    return head + b"a" * (size - len(head) - 1) + (b"b" if i % 50 == 0 else b"a")


def _start_tree_node(tree: Path, port: int) -> Server:
    """Step 1 for ``--before``: TREE's node with the modules of TREE shadowing this venv's."""
    tree = tree.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="aofnode-before-"))
    env = dict(os.environ, PYTHONPATH=oldtree._python_path(tree, tmp))
    cmd = [sys.executable, "-c",
           f"import sys; from {oldtree._entry(tree)} import main; sys.exit(main())",
           "serve", "--dir", str(tmp / "data"), "--bind", f"tcp://127.0.0.1:{free_port()}",
           "--appendfsync", "everysec", "--log-file", str(tmp / "node.log"),
           "--resp-bind", f"127.0.0.1:{port}"]
    with open(tmp / "before.stderr", "wb") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server("before", proc, TargetSpec("aofnode"), tmp,
                    {"command": cmd, "tree": str(tree)})
    try:
        cbench.wait_resp_ready(port, timeout=30.0)
    except BaseException:
        server.stop()
        raise
    return server


def _start(kind: str, before: Path | None) -> tuple[Server, int]:
    if kind == "redis":
        server = start_redis("everysec")
        return server, server.spec.port
    port = free_port()
    if kind == "before":
        return _start_tree_node(before, port), port
    server = start_aofnode("everysec", extra=("--resp-bind", f"127.0.0.1:{port}"))
    try:
        cbench.wait_resp_ready(port, timeout=10.0)
    except BaseException:
        server.stop()
        raise
    return server, port


def _load(port: int, keys: int, key_bytes: int, value: bytes, timeout: float) -> None:
    with RespClient("127.0.0.1", port, timeout=timeout) as c:
        for lo in range(0, keys, LOAD_BATCH):
            cmds = [("SET", make_key(i, key_bytes), value)
                    for i in range(lo, min(keys, lo + LOAD_BATCH))]
            bad = [r for r in c.pipeline(cmds) if r != "OK"]
            if bad:
                raise RuntimeError(f"SET failed on port {port}: {bad[0]}")
        if c.execute("DBSIZE") != keys:
            raise RuntimeError(f"port {port}: DBSIZE is not {keys} after the load")


def _keys(c: RespClient, pattern: bytes, count: int) -> tuple[list, int]:
    reply = c.execute("KEYS", pattern)
    if isinstance(reply, RespError):
        raise RuntimeError(f"KEYS: {reply.message}")
    return reply, 1


def _scan(c: RespClient, pattern: bytes, count: int) -> tuple[list, int]:
    found, cursor, calls = [], b"0", 0
    while True:
        reply = c.execute("SCAN", cursor, "MATCH", pattern, "COUNT", count)
        if isinstance(reply, RespError):
            raise RuntimeError(f"SCAN: {reply.message}")
        cursor, keys = reply
        found += keys
        calls += 1
        if cursor == b"0":
            return found, calls


def _timed(server: Server, port: int, op, pattern: bytes, count: int, timeout: float) -> dict:
    """One measured command (step 3): wall seconds, server CPU seconds, keys found, calls."""
    with RespClient("127.0.0.1", port, timeout=timeout) as c:
        c.execute("PING")  # the connection is set up outside the window
        cpu0, t0 = procstat.group_cpu(server.proc.pid), time.perf_counter()
        try:
            found, calls = op(c, pattern, count)
        except (socket.timeout, TimeoutError):
            return {"timeout": True, "wall_s": timeout}
        wall = time.perf_counter() - t0
        cpu = procstat.cpu_delta(cpu0, procstat.group_cpu(server.proc.pid))
    return {"wall_s": wall, "cpu_s": sum(cpu.values()), "found": len(set(found)), "calls": calls,
            "digest": hash(frozenset(found))}


def _measure(servers: dict, names: list[str], args) -> list[dict]:
    samples = []
    kinds = list(servers)
    deadline = time.monotonic() + args.budget
    for name in names:
        if time.monotonic() > deadline:
            print(f"--budget of {args.budget:.0f} s spent: {name} and later patterns skipped",
                  file=sys.stderr)
            break
        pattern = PATTERNS[name]
        for cmd, op in (("KEYS", _keys), ("SCAN", _scan)):
            slow: set[str] = set()
            for rep in range(args.repeats):
                order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]
                for kind in order:
                    if kind in slow:
                        continue
                    server, port = servers[kind]
                    s = _timed(server, port, op, pattern, args.keys, args.timeout)
                    s.update(pattern=name, command=cmd, server=kind, repeat=rep)
                    samples.append(s)
                    if s.get("timeout") or s["wall_s"] > args.slow:
                        slow.add(kind)
                    if s.get("timeout"):
                        _wait_idle(port, args.timeout)
    return samples


def _wait_idle(port: int, timeout: float) -> None:
    """After a timeout the server may still be matching: wait (bounded) until it answers."""
    with RespClient("127.0.0.1", port, timeout=timeout) as c:
        c.execute("PING")


def _ratios(mine: list[dict], kind: str, field: str) -> dict | None:
    """``kind``/redis of ``field`` per repeat (against redis's median where one was skipped)."""
    base = {s["repeat"]: s[field] for s in mine if s["server"] == "redis" and s.get(field)}
    if not base:
        return None
    median = statistics.median(base.values())
    return spread.summarize(s[field] / base.get(s["repeat"], median)
                            for s in mine if s["server"] == kind and field in s)


def _summary(samples: list[dict], names: list[str], kinds: list[str]) -> list[dict]:
    rows = []
    for name in names:
        for cmd in ("KEYS", "SCAN"):
            mine = [s for s in samples if s["pattern"] == name and s["command"] == cmd]
            if not mine:
                continue  # skipped: --budget spent
            row = {"pattern": name, "command": cmd}
            for kind in kinds:
                ks = [s for s in mine if s["server"] == kind]
                row[kind] = spread.summarize(s["wall_s"] for s in ks)
                row[kind + "_cpu"] = spread.summarize(s.get("cpu_s") for s in ks)
                row[kind + "_found"] = sorted({s["found"] for s in ks if "found" in s})
                if kind != "redis":
                    row[kind + "/redis"] = _ratios(mine, kind, "wall_s")
                    row[kind + "/redis_cpu"] = _ratios(mine, kind, "cpu_s")
            row["same_keys"] = len({s.get("digest") for s in mine if "digest" in s}) == 1
            rows.append(row)
    return rows


def _ms(s: dict | None) -> dict | None:
    return None if s is None else {k: v if k == "n" else v * 1000 for k, v in s.items()}


def _print(rows: list[dict], kinds: list[str], out) -> None:
    nodes = [k for k in kinds if k != "redis"]
    cols = ["pattern", "command"] + [f"{k} ms" for k in kinds] + [f"{k} CPU ms" for k in kinds]
    cols += [f"{k}/redis" for k in nodes] + [f"{k}/redis CPU" for k in nodes]
    cols += ["found", "same keys"]
    table = []
    for r in rows:
        cells = [r["pattern"], r["command"]]
        cells += [spread.cell(_ms(r[k])) for k in kinds]
        cells += [spread.cell(_ms(r[k + "_cpu"])) for k in kinds]
        cells += [spread.cell(r[k + "/redis"], 2) for k in nodes]
        cells += [spread.cell(r[k + "/redis_cpu"], 2) for k in nodes]
        cells += [",".join(str(f) for f in r[kinds[0] + "_found"]),
                  "yes" if r["same_keys"] else "NO"]
        table.append(cells)
    out.write(spread.markdown_table(cols, table) + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aofnode.bench.glob_bomb",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", type=int, default=20_000)
    p.add_argument("--key-bytes", type=int, default=1024, help="length of every key")
    p.add_argument("--value-bytes", type=int, default=16)
    p.add_argument("--patterns", default=DEFAULT,
                   help=f"comma-separated, or 'all': {', '.join(PATTERNS)}")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--slow", type=float, default=10.0,
                   help="seconds past which a command is not repeated")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed to one command")
    p.add_argument("--budget", type=float, default=900.0,
                   help="seconds of measuring after which the remaining patterns are skipped")
    p.add_argument("--before", type=Path, default=None, metavar="TREE",
                   help="also the node of an older tree (its own modules, this interpreter)")
    p.add_argument("--no-redis", action="store_true")
    p.add_argument("--json", default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    names = list(PATTERNS) if args.patterns == "all" else args.patterns.split(",")
    if any(n not in PATTERNS for n in names):
        parser.error(f"--patterns: choose among {', '.join(PATTERNS)}")
    kinds = ([] if args.no_redis else ["redis"]) + (["before"] if args.before else []) + ["aofnode"]
    # SIGTERM (a test's cleanup, a CI timeout) as Ctrl-C: every server started so far is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    servers: dict[str, tuple[Server, int]] = {}
    try:
        for kind in kinds:  # step 1
            servers[kind] = _start(kind, args.before)
            _load(servers[kind][1], args.keys, args.key_bytes, b"v" * args.value_bytes,
                  args.timeout)  # step 2
        samples = _measure(servers, names, args)  # step 3
    finally:
        for server, _ in servers.values():
            server.stop()
    rows = _summary(samples, names, kinds)  # step 4
    _print(rows, kinds, sys.stdout)
    if args.json:
        doc = {"settings": {k: str(v) for k, v in vars(args).items()},
               "patterns": {n: PATTERNS[n].decode("latin-1") for n in names},
               "rows": rows, "samples": samples}
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0 if all(r["same_keys"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
