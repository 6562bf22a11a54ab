"""RESP request parsing cost: protocol/resp_request.py's RequestParser against hiredis's C Reader.

    python -m aofnode.bench.studies.resp_parser [--commands N] [--json PATH]

Prints microseconds per command (best of 7 runs) for three inputs: a pipeline of
``SET key:NNNNNN <32 bytes>`` fed in 16 KiB reads, the same commands one per read, and the same
pipeline as inline commands. hiredis is optional (a row
says so when it is not installed); it cannot parse inline commands, nor refuse a declared
length before buffering it, which is why the RESP front does not use it (docs/resp.md).
"""
from __future__ import annotations

import argparse
import json
import time

from aofnode.bench.resp import encode_command
from aofnode.protocol.resp_request import RequestParser

__all__ = ["main"]


def _best(fn, runs: int = 7) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(n: int) -> dict[str, dict[str, float | None]]:
    cmds = [encode_command("SET", b"key:%06d" % i, b"x" * 32) for i in range(n)]
    data = b"".join(cmds)
    reads = [data[i:i + 16384] for i in range(0, len(data), 16384)]
    inline = b"".join(b"SET key:%06d %s\r\n" % (i, b"x" * 32) for i in range(n))
    inline_reads = [inline[i:i + 16384] for i in range(0, len(inline), 16384)]

    def py(chunks):
        def run():
            p = RequestParser()
            got = sum(len(p.feed(c)) for c in chunks)
            assert got == n, got
        return run

    rows: dict[str, dict[str, float | None]] = {
        "pipeline, 16 KiB reads": {"python": _best(py(reads)) / n * 1e6},
        "one command per read": {"python": _best(py(cmds)) / n * 1e6},
        "inline, 16 KiB reads": {"python": _best(py(inline_reads)) / n * 1e6},
    }
    try:
        import hiredis
    except ImportError:
        hiredis = None
    for name, chunks in (("pipeline, 16 KiB reads", reads), ("one command per read", cmds)):
        if hiredis is None:
            rows[name]["hiredis"] = None
            continue

        def run(chunks=chunks):
            r = hiredis.Reader()
            got = 0
            for c in chunks:
                r.feed(c)
                while r.gets() is not False:
                    got += 1
            assert got == n, got
        rows[name]["hiredis"] = _best(run) / n * 1e6
    rows["inline, 16 KiB reads"]["hiredis"] = None  # hiredis has no inline form
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=10_000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = measure(args.commands)
    print(f"{'input':<26} {'RequestParser us/cmd':>21} {'hiredis us/cmd':>15}")
    for name, row in rows.items():
        h = row["hiredis"]
        print(f"{name:<26} {row['python']:>21.2f} {('%.2f' % h) if h is not None else '-':>15}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
