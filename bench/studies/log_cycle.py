"""The log actor's cost per request, in process: decode, dispatch, keyspace, AOF encoding and
the RESP replies of pipelined SET, GET or INCR, without sockets or wake-ups.

Usage
-----
::

    python -m aofnode.bench.studies.log_cycle --command SET [--rounds 100] [--once]
        [--hits] [--maxmemory BYTES] [--policy POLICY]

Design
------
1. Build a ``LogActor`` on a temporary directory (``appendfsync everysec``: the write(2) of
   each cycle is in, the fsync is not; cycles bounded by their command count only) whose
   front link is replaced by the RESP front's reply encoder, so a cycle ends with the RESP
   bytes a front would write.
2. Each round files one ``Batch`` of ``--clients`` messages of ``--pipeline`` requests each,
   as the RESP front sends them (checked, ``"resp": 2``, 3-byte values), and runs cycles until
   the queue is empty. GET reads keys never set (misses) unless ``--hits`` sets all 100k
   first; ``--maxmemory`` (0: none, the log actor's inline dispatch; ``serve``'s default is a
   share of the machine, through the executor's own path) and ``--policy`` as ``serve``'s.
3. Print the least CPU time per request over five timings of ``--rounds`` rounds (the least
   disturbed on a loaded machine). ``--once`` runs the rounds once and prints nothing: under
   ``valgrind --tool=callgrind``, the instructions of two round counts, subtracted, give a
   per-request count that does not depend on the machine's load (the figures of
   docs/benchmarks.md's log actor table were made so, with ``PYTHONHASHSEED=0``).
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time

import msgpack
import structlog

from aofnode.config import Config
from aofnode.log.actor import LogActor
from aofnode.log.closer_client import InlineCloser
from aofnode.log.replies import RespReplies
from aofnode.log.work import CheckedPending
from aofnode.runtime import messages as m
from aofnode.runtime import private_sockets

__all__ = ["main"]


def _bodies(command: str, pipeline: int, clients: int, first: int) -> list[bytes]:
    bodies = []
    for c in range(clients):
        requests: list[list] = []
        for j in range(pipeline):
            key = b"key:%012d" % ((first + c * pipeline + j) % 100_000)
            if command == "SET":
                requests.append(["SET", key, b"xyz"])
            elif command == "GET":
                requests.append(["GET", key])
            else:
                requests.append(["INCR", b"counter:%d" % (j % 50)])
        bodies.append(msgpack.packb([{"resp": 2}, requests], use_bin_type=True))
    return bodies


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--command", choices=("SET", "GET", "INCR"), default="SET")
    ap.add_argument("--pipeline", type=int, default=16)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--once", action="store_true", help="run the rounds once, print nothing")
    ap.add_argument("--hits", action="store_true", help="set every key first: GETs find them")
    ap.add_argument("--maxmemory", type=int, default=0, help="bytes (default 0: none)")
    ap.add_argument("--policy", default="noeviction", help="maxmemory-policy (default noeviction)")
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    log = structlog.get_logger()
    with tempfile.TemporaryDirectory() as tmp:
        # No time budget per cycle (only cycle_max_commands): the cycles, and so the count of
        # instructions under callgrind, must not depend on how slowly the process runs.
        config = Config(dir=tmp, appendfsync="everysec", cycle_max_ms=60_000.0,
                        maxmemory=args.maxmemory, maxmemory_policy=args.policy)
        private_sockets.prepare_run_dir(config.dir)
        actor = LogActor(config, log, closer=InlineCloser(log))
        encoder, out = RespReplies(), []
        actor.fronts.reply = lambda finished: out.extend(encoder.encode(finished.get(0, ())))
        clients = list(range(1, args.clients + 1))
        if args.hits:
            for i in range(100_000):
                actor.executor.execute(0, "SET", [b"key:%012d" % i, b"xyz"])
            actor.executor.take_propagated()
        rounds = [_bodies(args.command, args.pipeline, args.clients, r * 800) for r in range(20)]
        seq = 1

        def one(r: int) -> None:
            nonlocal seq
            actor.work.add(m.Batch(seq, clients, rounds[r % 20]), 0, CheckedPending)
            seq += args.clients
            while actor.work:
                actor._cycle()
            out.clear()

        for r in range(20):  # warm: the keys exist, the dicts are grown
            one(r)
        if args.once:
            for r in range(args.rounds):
                one(r)
        else:
            best = float("inf")
            for _ in range(5):
                started = time.process_time()
                for r in range(args.rounds):
                    one(r)
                best = min(best, time.process_time() - started)
            per_request = best / (args.rounds * args.pipeline * args.clients) * 1e6
            print(f"{args.command} -P {args.pipeline}, {args.clients} clients: "
                  f"{per_request:.3f} us CPU per request in the log actor")
        actor.on_stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
