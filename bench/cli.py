"""aofnode-bench: a load generator for aofnode, and for redis-server beside it.

Usage
-----
::

    # 50 clients, SET only, 5 s, against a node it starts (fsync always), JSON out:
    aofnode-bench --start-node --appendfsync always --clients 50 --ratio 1:0 --duration 5 \\
        --json out.json

    # pipelines of 32, 1:9 SET:GET on 10k preloaded keys, plot the timeline:
    aofnode-bench --start-node --pipeline 32 --ratio 1:9 --keyspace 10000 --preload 10000 \\
        --plot out.png

    # open loop at 20k req/s (latency from the intended send time), rewrite at second 3:
    aofnode-bench --endpoint tcp://127.0.0.1:7700 --rate 20000 --duration 10 --bgrewrite-at 3

    # the same load against aofnode then redis-server, both started here, and the ratios:
    aofnode-bench --target both --start-node --start-redis --appendfsync everysec --duration 5

    # closed loop with HdrHistogram's coordinated-omission correction (1 ms expected interval):
    aofnode-bench --start-node --expected-interval-us 1000

Design
------
This module only parses flags and sequences the run; each step lives in its own module:
``servers`` (start/stop aofnode and redis-server), ``targets`` (connections, control),
``workload`` (the load shape), ``run`` + ``workers`` (the measurement, multi-process),
``hist`` (latency histograms), ``rewrite`` (BGREWRITEAOF during the load), ``report`` (table and
JSON) and ``plot``. Per target: 1. start the server if asked, 2. preload, 3. measure,
4. print, 5. stop the server (also on error or Ctrl-C). Then the ratio, ``--json``, ``--plot``.
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time

from aofnode.bench import report
from aofnode.bench.run import measure
from aofnode.bench import procstat
from aofnode.bench.servers import start_aofnode, start_redis
from aofnode.bench.targets import Control, TargetSpec
from aofnode.bench.workload import LoadShape, parse_ratio

__all__ = ["main"]

# Requests per preload pipeline: far below MAX_BATCH_LENGTH (10,000) and small enough (100 KB
# at 100-byte values) that one batch does not hold the log actor for long.
PRELOAD_BATCH = 1000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aofnode-bench",
                                description="Load generator for aofnode (and redis-server).")
    t = p.add_argument_group("target")
    t.add_argument("--target", choices=("aofnode", "redis", "both"), default="aofnode")
    t.add_argument("--endpoint", default="tcp://127.0.0.1:7700", help="aofnode endpoint")
    t.add_argument("--redis-host", default="127.0.0.1")
    t.add_argument("--redis-port", type=int, default=6379)
    t.add_argument("--start-node", action="store_true",
                   help="start aofnode serve in a temp dir on a free port, stop it afterwards")
    t.add_argument("--start-redis", action="store_true",
                   help="start redis-server in a temp dir on a free port, stop it afterwards")
    t.add_argument("--appendfsync", choices=("always", "everysec", "no"), default="everysec",
                   help="fsync policy of the servers started here (default everysec)")
    t.add_argument("--preload", type=int, default=0, metavar="N",
                   help="write key:0..N-1 before measuring, so GETs hit")
    t.add_argument("--bgrewrite-at", type=float, default=None, metavar="S",
                   help="send BGREWRITEAOF at second S of the run and time the rewrite")

    load = p.add_argument_group("load")
    load.add_argument("--clients", type=int, default=50)
    load.add_argument("--procs", type=int, default=2, help="worker processes (default 2)")
    load.add_argument("--pipeline", type=int, default=1, metavar="D",
                   help="requests per batch, one batch in flight per client")
    load.add_argument("--value-size", type=int, default=100)
    load.add_argument("--keyspace", type=int, default=100_000, metavar="K")
    load.add_argument("--ratio", default="1:1", metavar="W:R", help="SET:GET mix (default 1:1)")
    d = load.add_mutually_exclusive_group()
    d.add_argument("--duration", type=float, default=None, metavar="S",
                   help="measured seconds (default 10)")
    d.add_argument("--requests", type=int, default=None, metavar="N",
                   help="measured requests in total, instead of --duration")
    load.add_argument("--warmup", type=float, default=0.0, metavar="S",
                   help="seconds of load before the measured window")
    load.add_argument("--rate", type=float, default=None, metavar="R",
                   help="open loop: total requests/s; latency from the intended send time")
    load.add_argument("--expected-interval-us", type=int, default=0, metavar="US",
                   help="closed loop: HdrHistogram record_corrected_value with this interval")
    load.add_argument("--timeout", type=float, default=10.0,
                   help="seconds before a batch counts as timed out (client reconnects)")
    load.add_argument("--seed", type=int, default=1)

    o = p.add_argument_group("output")
    o.add_argument("--json", metavar="FILE")
    o.add_argument("--plot", metavar="FILE.png")
    return p


def _shape(args) -> LoadShape:
    writes, reads = parse_ratio(args.ratio)
    for name in ("clients", "procs", "pipeline", "keyspace"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1")
    if args.value_size < 0 or (args.requests is not None and args.requests < 1):
        raise ValueError("--value-size must be >= 0 and --requests >= 1")
    if args.rate is not None and args.rate <= 0:
        raise ValueError("--rate must be positive")
    duration = None if args.requests is not None else (args.duration or 10.0)
    return LoadShape(clients=args.clients, procs=args.procs, pipeline=args.pipeline,
                     value_size=args.value_size, keyspace=args.keyspace, writes=writes,
                     reads=reads, duration_s=duration, requests=args.requests,
                     warmup_s=args.warmup, rate=args.rate,
                     expected_interval_us=0 if args.rate else args.expected_interval_us,
                     timeout_s=args.timeout)


def _config(args, shape: LoadShape) -> dict:
    return {
        "target": args.target, "clients": shape.clients, "procs": shape.procs,
        "pipeline": shape.pipeline, "value_size": shape.value_size, "keyspace": shape.keyspace,
        "ratio": f"{shape.writes}:{shape.reads}", "duration_s": shape.duration_s,
        "requests": shape.requests, "warmup_s": shape.warmup_s, "rate": shape.rate,
        "expected_interval_us": shape.expected_interval_us, "timeout_s": shape.timeout_s,
        "appendfsync": args.appendfsync if (args.start_node or args.start_redis) else None,
        "preload": args.preload, "bgrewrite_at": args.bgrewrite_at, "seed": args.seed,
        "command": sys.argv,
    }


def _preload(spec: TargetSpec, n: int, value_size: int) -> None:
    value = b"v" * value_size
    started = time.monotonic()
    control = Control(spec, timeout=30)
    try:
        for lo in range(0, n, PRELOAD_BATCH):
            cmds = [("SET", b"key:%d" % i, value) for i in range(lo, min(n, lo + PRELOAD_BATCH))]
            if control.pipeline(cmds):
                raise RuntimeError(f"preload: error replies from {spec.kind}")
    finally:
        control.close()
    print(f"preloaded {n} keys into {spec.kind} in {time.monotonic() - started:.2f} s",
          file=sys.stderr)


def _run_target(name: str, args, shape: LoadShape, servers: dict) -> dict:
    with contextlib.ExitStack() as stack:
        if name == "aofnode":
            if args.start_node:  # step 1
                server = stack.enter_context(start_aofnode(args.appendfsync))
                servers[name] = server.settings
                spec = server.spec
            else:
                spec = TargetSpec("aofnode", endpoint=args.endpoint)
        else:
            if args.start_redis:
                server = stack.enter_context(start_redis(args.appendfsync))
                servers[name] = server.settings
                spec = server.spec
            else:
                spec = TargetSpec("redis", host=args.redis_host, port=args.redis_port)
        if name in servers:
            report.print_settings({name: servers[name]}, sys.stdout)
        if args.preload:
            _preload(spec, args.preload, shape.value_size)  # step 2
        pgid = server.proc.pid if name in servers else None  # a server we started: its own group
        cpu_before = procstat.group_cpu(pgid) if pgid else None
        machine_before, t0 = procstat.machine_cpu(), time.monotonic()
        result = measure(spec, shape, bgrewrite_at=args.bgrewrite_at, seed=args.seed)  # step 3
        if pgid:
            _add_server_cpu(result, procstat.cpu_delta(cpu_before, procstat.group_cpu(pgid)))
        _add_machine_cpu(result, machine_before, procstat.machine_cpu(), time.monotonic() - t0)
        result["address"] = spec.address
        report.print_target(name, result, sys.stdout)  # step 4
        sys.stdout.flush()
        return result  # step 5: ExitStack stops the server


def _add_server_cpu(result: dict, cpu: dict[str, float]) -> None:
    """Server CPU per request, the figure throughput follows on 2 cores shared with the load
    generator: in total and per process (the actors of aofnode; redis-server).

    The CPU is read just before and just after the whole measurement, so it is divided by every
    reply of it (``replied``: warmup and tail included), not by the measured window's
    ``requests``: with ``--warmup 1 --duration 8`` the latter overstated it by ~1/8."""
    requests = max(1, result["replied"])
    result["server_cpu_s"] = cpu
    result["server_cpu_us_per_request"] = round(sum(cpu.values()) * 1e6 / requests, 2)
    result["server_cpu_us_per_request_by_process"] = {
        name: round(seconds * 1e6 / requests, 2) for name, seconds in sorted(cpu.items())}


def _add_machine_cpu(result: dict, before: tuple, after: tuple, wall: float) -> None:
    """Busy cores of the whole machine over the measurement, and what of it was neither the
    server (when started here) nor the generator's workers: other load sharing the 2 cores,
    which the figures cannot correct for but should be read beside."""
    busy = (after[0] - before[0]) / wall
    ours = (sum(result.get("server_cpu_s", {}).values()) + result["generator_cpu_s"]) / wall
    result["machine_busy_cores"] = round(busy, 2)
    result["other_cpu_cores"] = round(max(0.0, busy - ours), 2)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        shape = _shape(args)
    except ValueError as exc:
        print(f"aofnode-bench: {exc}", file=sys.stderr)
        return 2
    # SIGTERM (a test's cleanup, a CI timeout) stops the run like Ctrl-C: workers drained and
    # joined, servers stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    names = ["aofnode", "redis"] if args.target == "both" else [args.target]
    servers: dict[str, dict] = {}
    targets: dict[str, dict] = {}
    try:
        for name in names:
            targets[name] = _run_target(name, args, shape, servers)
    except KeyboardInterrupt:
        print("\naofnode-bench: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, OSError) as exc:
        print(f"aofnode-bench: {exc}", file=sys.stderr)
        return 1
    doc = report.build_document(_config(args, shape), servers, targets)
    if doc["ratio"]:
        report.print_ratio(doc["ratio"], sys.stdout)
    if args.json:
        report.write_json(args.json, doc)
    if args.plot:
        from aofnode.bench.plot import plot_targets
        plot_targets(targets, args.plot, title=" ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
