"""The RESP front's CPU per command it answers itself (CLIENT ID, ...), latency-tracking off
against on: what timing those commands for INFO latencystats costs.

Usage
-----
::

    python -m aofnode.bench.studies.front_latency [--commands 20000] [--pipeline 100] [--rounds 6]

Design
------
1. Start a node with ``--resp-bind`` (bench/servers.py, its own process group).
2. Over one connection, send ``--commands`` commands answered by the front (``CLIENT ID``,
   ``CLIENT GETNAME``, ``COMMAND COUNT`` in turn) in pipelines of ``--pipeline``, and read every
   reply; the RESP front's CPU (utime + stime from /proc, bench/procstat.py) over the round,
   per command, is the figure.
3. Rounds alternate off and on (``CONFIG SET latency-tracking``), side by side in one run, so
   the machine's load falls on both alike; the minimum of each is kept (the least disturbed
   round), and the median is printed beside it. /proc counts in 10 ms ticks and a loaded
   machine swings the whole path by more than the difference, so:
4. The added work alone, in process: the front's ``count_command`` (and, on, the clock read at
   the command's take that it pairs with) timed off and on, the minimum of ``--repeat`` runs.
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
import timeit

from aofnode.bench.procstat import cpu_delta, group_cpu
from aofnode.bench.resp import ReplyParser, encode_command
from aofnode.bench.servers import free_port, start_aofnode
from aofnode.fronts.resp_route import CommandRouting

COMMANDS = [("CLIENT", "ID"), ("CLIENT", "GETNAME"), ("COMMAND", "COUNT")]


def _call(sock: socket.socket, parser: ReplyParser, *command) -> object:
    sock.sendall(encode_command(*command))
    while True:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("connection closed")
        parser.feed(data)
        got = parser.replies()
        if got:
            return got[0]


def _round(sock: socket.socket, pgid: int, commands: int, pipeline: int) -> float:
    """The RESP front's CPU microseconds per command over ``commands`` commands."""
    parser = ReplyParser()
    chunk = b"".join(encode_command(*COMMANDS[i % len(COMMANDS)]) for i in range(pipeline))
    before = group_cpu(pgid)
    sent = 0
    while sent < commands:
        sock.sendall(chunk)
        got = 0
        while got < pipeline:
            data = sock.recv(1 << 20)
            if not data:
                raise RuntimeError("connection closed")
            parser.feed(data)
            got += len(parser.replies())
        sent += pipeline
    spent = cpu_delta(before, group_cpu(pgid))
    return spent.get("resp", 0.0) * 1e6 / sent


class _Counting(CommandRouting):
    """The front's counting state, without a front."""

    def __init__(self, tracking: bool) -> None:
        self.cmdstats: dict = {}
        self.latency: dict = {}
        self.stats_due = False
        self.latency_tracking = tracking


def _in_process(number: int, repeat: int) -> dict[str, float]:
    """Microseconds per command of the counting step (with, on, the take's clock read)."""
    out = {}
    argv = [b"CLIENT", b"ID"]
    clock = time.perf_counter_ns
    for setting in ("off", "on"):
        front = _Counting(setting == "on")

        def one(front=front) -> None:
            if front.latency_tracking:
                front.local_start = clock()
            front.count_command("CLIENT", argv)
        out[setting] = min(timeit.repeat(one, number=number, repeat=repeat)) / number * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--commands", type=int, default=20_000, help="commands per round")
    p.add_argument("--pipeline", type=int, default=100)
    p.add_argument("--rounds", type=int, default=6, help="rounds of each setting, alternated")
    p.add_argument("--repeat", type=int, default=7, help="in-process timings of 100,000")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    port = free_port()
    with start_aofnode(extra=("--resp-bind", f"127.0.0.1:{port}")) as server:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            control = ReplyParser()
            _round(sock, server.proc.pid, args.commands // 4, args.pipeline)  # warm-up
            results: dict[str, list[float]] = {"off": [], "on": []}
            for _ in range(args.rounds):
                for setting in ("off", "on"):
                    _call(sock, control, "CONFIG", "SET", "latency-tracking",
                          "yes" if setting == "on" else "no")
                    results[setting].append(_round(sock, server.proc.pid, args.commands, args.pipeline))
            info = _call(sock, control, "INFO", "latencystats")
    print(f"RESP front CPU per command answered there ({'/'.join(' '.join(c) for c in COMMANDS)}), "
          f"{args.rounds} rounds of {args.commands}, pipeline {args.pipeline}")
    print(f"{'latency-tracking':<18}{'min us/cmd':>12}{'median':>10}")
    for setting, values in results.items():
        print(f"{setting:<18}{min(values):>12.3f}{statistics.median(values):>10.3f}")
    extra = min(results["on"]) - min(results["off"])
    print(f"on - off (min): {extra:+.3f} us/command ({extra / min(results['off']) * 100:+.1f}%)")
    alone = _in_process(100_000, args.repeat)
    print(f"in process, the counting step alone: off {alone['off']:.3f} us, on {alone['on']:.3f} us "
          f"({alone['on'] - alone['off']:+.3f} us/command)")
    if b"client|id" not in (info if isinstance(info, bytes) else b""):
        print("warning: INFO latencystats has no client|id", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": results, "commands": args.commands, "pipeline": args.pipeline,
                       "in_process_us": alone}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
