"""What CLIENT TRACKING costs the log actor: CPU per request with nobody tracking, with one
tracking client that only listens, and with the benchmark's own client tracking its reads.

Usage
-----
::

    python -m aofnode.bench.tracking --requests 100000 --rounds 3

One node (``--resp-bind``); the three cases run in turn, round after round, on the same node,
so a loaded machine weighs on each alike. Each case sends ``--requests`` commands, half
``SET k<i> v`` and half ``GET k<i>`` over 1,000 keys, in pipelines of 16, from one RESP
connection, and reads the log actor's CPU (utime + stime from /proc) before and after. Cases:

- ``none``: nobody tracks (the wrapper is off: one test per cycle);
- ``listener``: another RESP3 connection tracks 1,000 other keys and reads nothing more (every
  request goes through the tracking wrapper, no key of the run is in the table);
- ``self``: the benchmark's connection tracks (RESP3): each GET remembers its key, each SET
  of a remembered key sends it an invalidation push.

Prints µs of log-actor CPU per request, the median of the rounds, and the median of each
round's ratio to ``none`` (measured side by side, so less noisy than the µs on a loaded machine).
"""
from __future__ import annotations

import argparse
import json
import statistics

from aofnode.bench.procstat import cpu_delta, group_cpu
from aofnode.bench.resp import RespClient, encode_command
from aofnode.bench.servers import free_port, start_aofnode

__all__ = ["main"]

PIPELINE = 16
KEYS = 1000
CASES = ("none", "listener", "self")


def _run(client: RespClient, requests: int) -> None:
    commands = []
    for i in range(requests):
        key = b"k%d" % (i // 2 % KEYS)
        commands.append((b"SET", key, b"v") if i % 2 == 0 else (b"GET", key))
        if len(commands) == PIPELINE:
            client.pipeline(commands)
            commands = []
    if commands:
        client.pipeline(commands)


def measure(requests: int, rounds: int) -> dict:
    port = free_port()
    server = start_aofnode(extra=("--resp-bind", f"127.0.0.1:{port}"))
    results: dict[str, list[float]] = {case: [] for case in CASES}
    try:
        pgid = server.proc.pid
        for _ in range(rounds):
            for case in CASES:
                client = RespClient("127.0.0.1", port, timeout=30)
                listener = None
                if case == "listener":
                    listener = RespClient("127.0.0.1", port, timeout=30)
                    listener.execute("HELLO", "3")
                    listener.execute("CLIENT", "TRACKING", "on")
                    listener.pipeline([("GET", f"other{i}") for i in range(KEYS)])
                elif case == "self":
                    client.execute("HELLO", "3")
                    client.execute("CLIENT", "TRACKING", "on")
                before = group_cpu(pgid)
                if case == "self":
                    _run_self(client, requests)
                else:
                    _run(client, requests)
                after = group_cpu(pgid)
                results[case].append(cpu_delta(before, after).get("log", 0.0) * 1e6 / requests)
                client.close()
                if listener is not None:
                    listener.close()
    finally:
        server.stop()
    return results


def _run_self(client: RespClient, requests: int) -> None:
    """As ``_run``, for a tracking client: its pushes come between replies, so each pipeline is
    read to its replies' count with the pushes skipped (a push is ``[b"invalidate", ...]``)."""
    sock, parser = client._sock, client._parser
    commands = []
    for i in range(requests):
        key = b"k%d" % (i // 2 % KEYS)
        commands.append((b"SET", key, b"v") if i % 2 == 0 else (b"GET", key))
        if len(commands) == PIPELINE or i == requests - 1:
            sock.sendall(b"".join(encode_command(*c) for c in commands))
            got = 0
            while got < len(commands):
                data = sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("closed")
                parser.feed(data)
                for reply in parser.replies():
                    if not (type(reply) is list and reply[:1] == [b"invalidate"]):
                        got += 1
            commands = []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aofnode.bench.tracking", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    results = measure(args.requests, args.rounds)
    print(f"log actor CPU per request, us ({args.requests} requests, {args.rounds} rounds, median)")
    print(f"{'case':<10} {'median':>8} {'ratio':>7}   runs (ratio: the median of each round's case/none)")
    for case in CASES:
        med = statistics.median(results[case])
        ratio = statistics.median(v / b for v, b in zip(results[case], results["none"]) if b)
        runs = " ".join(f"{v:.2f}" for v in results[case])
        print(f"{case:<10} {med:>8.2f} {ratio:>7.2f}   {runs}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
