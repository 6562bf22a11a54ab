"""Reply batching per client, measured (issue 11's open choice): N requests pipelined as N separate
messages (N reply messages back) against the same N requests in one batch message (one reply).

Usage
-----
::

    python -m aofnode.bench.studies.replybatch --clients 50 --depth 32 --duration 8 --rounds 2

Design
------
A client of aofnode can pipeline in two ways: send N single-request messages without waiting
(the node answers each with its own reply message, in order), or send one batch message of N
requests (one reply message holding N replies). The difference is what batching the replies
(and the requests) per client would save: every message costs a ZeroMQ send and receive and an
envelope on each hop (client -> front -> log actor -> front -> client).

1. For each round, for each mode (the order flipped every other round), start a fresh node
   (bench/servers.py; ``--appendfsync everysec``) and ``--procs`` worker processes, each driving
   its share of the clients from one poll loop: closed loop, one group of ``--depth`` SETs in
   flight per client (100-byte values over 100k keys), for ``--warmup`` + ``--duration`` s.
2. Read the CPU of the node's process group (per actor) and of the machine around the load, and
   count every reply; server CPU per request is CPU / replies.
3. Print per mode the median over rounds (min-max): requests/s, server CPU per request (per
   actor) and the machine's busy cores (the generator is Python too, on the same two cores).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import time

from aofnode.bench import procstat, spread
from aofnode.bench.servers import start_aofnode

__all__ = ["main"]

MODES = ("messages", "batch")
KEYSPACE = 100_000
VALUE = b"v" * 100


def _worker(endpoint: str, clients: int, depth: int, mode: str, warmup: float, duration: float,
            seed: int, go, out) -> None:
    import zmq
    from aofnode import protocol
    rng = random.Random(seed)
    ctx = zmq.Context()
    socks = []
    for _ in range(clients):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        socks.append(s)
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    pending = {s: 0 for s in socks}

    def send(s) -> None:
        keys = [b"key:%d" % rng.randrange(KEYSPACE) for _ in range(depth)]
        if mode == "batch":
            s.send_multipart([b"", protocol.encode_batch([("SET", k, VALUE) for k in keys])])
            pending[s] = 1
        else:
            for k in keys:
                s.send_multipart([b"", protocol.encode_request("SET", k, VALUE)])
            pending[s] = depth

    out.put("ready")
    go.wait(60)
    t0 = time.monotonic()
    warm_end, end = t0 + warmup, t0 + warmup + duration
    replied = measured = errors = 0
    for s in socks:
        send(s)
    while True:
        now = time.monotonic()
        if now >= end and not any(pending.values()):
            break
        for s, _ in poller.poll(50):
            while True:
                try:
                    body = s.recv_multipart(zmq.NOBLOCK)[-1]
                except zmq.Again:
                    break
                if mode == "batch":
                    replies = protocol.decode_batch_reply(body)
                    n = depth
                    errors += type(replies) is protocol.Error or any(
                        type(r) is protocol.Error for r in replies)
                else:
                    n = 1
                    errors += type(protocol.decode_reply(body)) is protocol.Error
                pending[s] -= 1
                replied += n
                if time.monotonic() >= warm_end:
                    measured += n
                if pending[s] == 0 and time.monotonic() < end:
                    send(s)
    for s in socks:
        s.close(0)
    ctx.term()
    out.put({"replied": replied, "measured": measured, "errors": errors})


def run_mode(mode: str, args) -> dict:
    ctx = mp.get_context("spawn")
    with start_aofnode("everysec") as server:  # step 1
        go, out = ctx.Event(), ctx.Queue()
        shares = [args.clients // args.procs + (i < args.clients % args.procs)
                  for i in range(args.procs)]
        procs = [ctx.Process(target=_worker, args=(server.spec.endpoint, n, args.depth, mode,
                                                   args.warmup, args.duration, 1000 + i, go, out),
                             daemon=True) for i, n in enumerate(shares) if n]
        for p in procs:
            p.start()
        try:
            for _ in procs:
                if out.get(timeout=60) != "ready":
                    raise RuntimeError("a worker failed to start")
            cpu0, m0, t0 = procstat.group_cpu(server.proc.pid), procstat.machine_cpu(), time.monotonic()
            go.set()
            results = [out.get(timeout=args.warmup + args.duration + 60) for _ in procs]
            wall = time.monotonic() - t0
            cpu = procstat.cpu_delta(cpu0, procstat.group_cpu(server.proc.pid))  # step 2
            m1 = procstat.machine_cpu()
        finally:
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.kill()
                    p.join(5)
    replied = sum(r["replied"] for r in results)
    errors = sum(r["errors"] for r in results)
    if errors:
        raise RuntimeError(f"{errors} error replies in mode {mode}")
    n = max(1, replied)
    return {"mode": mode, "throughput": round(sum(r["measured"] for r in results) / args.duration, 1),
            "replied": replied, "server_cpu_us": round(sum(cpu.values()) * 1e6 / n, 2),
            "by_process_us": {k: round(v * 1e6 / n, 2) for k, v in sorted(cpu.items())},
            "machine_busy_cores": round((m1[0] - m0[0]) / wall, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aofnode.bench.studies.replybatch")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--depth", type=int, default=32, help="requests in flight per client")
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--duration", type=float, default=8)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    runs = []
    for rnd in range(args.rounds):
        for mode in (MODES if rnd % 2 == 0 else MODES[::-1]):
            r = run_mode(mode, args)
            runs.append(r)
            print(f"round {rnd + 1} {mode}: {r['throughput']:,.0f} SET/s, server CPU "
                  f"{r['server_cpu_us']} us/req {r['by_process_us']}, machine "
                  f"{r['machine_busy_cores']} cores", file=sys.stderr)
    cols = ["pipelining as", "SET/s", "server CPU µs/SET", "front µs/SET", "log µs/SET",
            "machine busy, cores"]
    rows = []
    for mode in MODES:
        rs = [r for r in runs if r["mode"] == mode]

        def proc(name: str, rs: list = rs) -> str:
            return spread.cell(spread.summarize(r["by_process_us"].get(name, 0) for r in rs))
        rows.append([f"{args.depth} single-request messages" if mode == "messages"
                     else f"one batch message of {args.depth}",
                     spread.cell(spread.summarize(r["throughput"] for r in rs), 0),
                     spread.cell(spread.summarize(r["server_cpu_us"] for r in rs)),
                     proc("front"), proc("log"),
                     spread.cell(spread.summarize(r["machine_busy_cores"] for r in rs))])
    print(f"{args.clients} clients x {args.depth} SETs in flight, everysec, {args.rounds} round(s)\n")
    print(spread.markdown_table(cols, rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
