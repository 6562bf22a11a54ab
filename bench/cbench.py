"""Drive ``redis-benchmark`` (the C load generator) against a RESP server, with server CPU.

Usage
-----
::

    # against a redis-server (or aofnode's RESP front) already listening on PORT:
    python -m aofnode.bench.cbench --port 6379 --clients 50 --pipeline 16 --tests set,get,incr,mset

Design
------
The Python generator of ``aofnode-bench`` costs more CPU per request than redis-server itself,
and on two cores it takes the server's CPU away; ``redis-benchmark`` costs a fraction of that,
so the servers' own difference shows. One ``run_suite`` call runs redis-benchmark **once per
test** (``-t set``, then ``-t get``, ...) against one server, in order, so that:

1. before each test it reads the CPU of the server's process group (bench/procstat.py; the
   server was started in a session of its own by bench/servers.py) and the CPU of this
   process's waited-for children (``RUSAGE_CHILDREN``: redis-benchmark, once it is reaped);
2. it runs ``redis-benchmark -p PORT -c C -P P -n N -r K -d V -t TEST --precision 3`` (bounded
   in time; ``-r`` random keys over the keyspace and ``-d`` value bytes, as the Python
   generator's shape; GET then reads the keys SET wrote);
3. it reads both CPUs again and divides by the test's requests; the machine's busy cores
   (/proc/stat) minus both give the other load that shared the cores meanwhile.

redis-benchmark 7.0's ``--csv`` has p50/p95/p99 and no p99.9, so the human output is parsed
instead: its "Summary" (throughput, avg/min/p50/p95/p99/max) and its "Latency by percentile
distribution", whose first line at or past 99.9% gives p99.9 (an upper bound: the
distribution halves the remaining percent on each line, 99.902% is the line used). Latency is
per request, from the moment its pipeline was written; MSET is redis-benchmark's ``MSET (10
keys)``, one request per 10 keys.
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import socket
import subprocess
import sys
import time

from aofnode.bench import procstat

__all__ = ["run_suite", "run_test", "parse_output", "redis_benchmark_path", "wait_resp_ready",
           "DEFAULT_TESTS"]

DEFAULT_TESTS = ("set", "get", "incr", "mset")
# Keys and value size of the Python generator's default shape (bench/workload.py).
KEYSPACE = 100_000
VALUE_SIZE = 100
# redis-benchmark finishes N requests; past this it is stuck (a server that stopped answering).
RUN_TIMEOUT_S = 300.0

_SECTION = re.compile(r"^====== (.+) ======$")
_PCT = re.compile(r"^\s*([\d.]+)% <= ([\d.]+) milliseconds")
_DONE = re.compile(r"(\d+) requests completed in ([\d.]+) seconds")
_RPS = re.compile(r"throughput summary: ([\d.]+) requests per second")


def redis_benchmark_path() -> str | None:
    return shutil.which("redis-benchmark")


def parse_output(text: str) -> dict[str, dict]:
    """Per test name (as redis-benchmark prints it, e.g. ``SET``, ``MSET (10 keys)``): requests,
    seconds, rps and latency_ms {avg, min, p50, p95, p99, p999, max}. Raises ValueError when a
    section lacks its summary (redis-benchmark failed part-way)."""
    out: dict[str, dict] = {}
    cur: dict | None = None
    mode = None
    # The progress line is rewritten with \r on the same line as the next section's header.
    lines = [piece.strip() for line in text.splitlines() for piece in line.split("\r")]
    for i, line in enumerate(lines):
        m = _SECTION.search(line)
        if m:
            cur = out[m.group(1)] = {"latency_ms": {}}
            mode = None
            continue
        if cur is None:
            continue
        if line.startswith("Latency by percentile distribution"):
            mode = "pct"
            continue
        if line.startswith("Cumulative distribution") or line.startswith("Summary"):
            mode = None
        if mode == "pct":
            pm = _PCT.match(line)
            if pm and float(pm.group(1)) >= 99.9 and "p999" not in cur["latency_ms"]:
                cur["latency_ms"]["p999"] = float(pm.group(2))
            continue
        if (m := _DONE.search(line)):
            cur["requests"], cur["seconds"] = int(m.group(1)), float(m.group(2))
        elif (m := _RPS.search(line)):
            cur["rps"] = float(m.group(1))
        elif line.split() == ["avg", "min", "p50", "p95", "p99", "max"] and i + 1 < len(lines):
            values = [float(v) for v in lines[i + 1].split()]
            cur["latency_ms"].update(zip(("avg", "min", "p50", "p95", "p99", "max"), values))
    for name, r in out.items():
        if "rps" not in r or "p50" not in r["latency_ms"] or "requests" not in r:
            raise ValueError(f"redis-benchmark output for {name} has no summary")
        r["latency_ms"].setdefault("p999", r["latency_ms"]["max"])
    return out


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_test(port: int, test: str, *, clients: int, pipeline: int, requests: int,
             pgid: int | None, keyspace: int = KEYSPACE, value_size: int = VALUE_SIZE,
             host: str = "127.0.0.1", exe: str | None = None) -> dict:
    """One redis-benchmark test (steps 1-3 of the module's design) against ``host:port``;
    ``pgid`` is the server's process group (None: no server CPU)."""
    exe = exe or redis_benchmark_path()
    if exe is None:
        raise RuntimeError("redis-benchmark not found on PATH")
    cmd = [exe, "-h", host, "-p", str(port), "-c", str(clients), "-P", str(pipeline),
           "-n", str(requests), "-r", str(keyspace), "-d", str(value_size), "-t", test,
           "--precision", "3"]
    server0 = procstat.group_cpu(pgid) if pgid else None  # step 1
    gen0, machine0 = _children_cpu(), procstat.machine_cpu()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)  # step 2
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"redis-benchmark -t {test} did not finish in {RUN_TIMEOUT_S:.0f} s") from None
    wall = time.monotonic() - t0
    gen = _children_cpu() - gen0  # step 3
    server = procstat.cpu_delta(server0, procstat.group_cpu(pgid)) if pgid else None
    busy = (procstat.machine_cpu()[0] - machine0[0]) / wall
    other = max(0.0, busy - (gen + sum((server or {}).values())) / wall)
    if proc.returncode != 0:
        raise RuntimeError(f"redis-benchmark -t {test} exited {proc.returncode}: {proc.stderr.strip()}")
    try:
        parsed = parse_output(proc.stdout)
    except ValueError as exc:
        raise RuntimeError(f"{exc}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}") from None
    # Some tests fill their key first (lrange_100 runs "LPUSH (needed to benchmark LRANGE)"):
    # the test's own line is the result, and the server's CPU is divided over every request the
    # run made, fill included (``includes`` names the fill).
    mine = [k for k in parsed if k.split(" ")[0].lower() == test.lower()]
    if len(mine) != 1:
        raise RuntimeError(f"redis-benchmark -t {test}: expected one test, got {sorted(parsed)}")
    name = mine[0]
    r = parsed[name]
    n = max(1, sum(x["requests"] for x in parsed.values()))
    r.update(includes=sorted(k for k in parsed if k != name))
    r.update(test=name, command=cmd, wall_s=round(wall, 3),
             generator_cpu_s=round(gen, 3), generator_cpu_us_per_request=round(gen * 1e6 / n, 2),
             machine_busy_cores=round(busy, 2), other_cpu_cores=round(other, 2),
             warnings=[line for line in proc.stderr.splitlines() if line.strip()][:5])
    if server is not None:
        r["server_cpu_s"] = server
        r["server_cpu_us_per_request"] = round(sum(server.values()) * 1e6 / n, 2)
        r["server_cpu_us_per_request_by_process"] = {
            k: round(v * 1e6 / n, 2) for k, v in sorted(server.items())}
    return r


def run_suite(port: int, tests=DEFAULT_TESTS, **kw) -> list[dict]:
    """``run_test`` for each test in order, against the same server (GET reads SET's keys)."""
    return [run_test(port, t, **kw) for t in tests]


def wait_resp_ready(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    """Poll until ``PING`` over RESP on host:port answers ``+PONG`` (bounded)."""
    deadline = time.monotonic() + timeout
    last: Exception | str | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                reply = s.recv(64)
            if reply.startswith(b"+PONG"):
                return
            last = reply.decode("latin-1").strip()
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"no RESP PONG on {host}:{port} within {timeout}s ({last})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aofnode.bench.cbench",
                                description="redis-benchmark against a running RESP server.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--pgid", type=int, default=None,
                   help="the server's process group, for server CPU (default: none)")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--pipeline", type=int, default=16)
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--tests", default=",".join(DEFAULT_TESTS))
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    results = run_suite(args.port, args.tests.split(","), clients=args.clients,
                        pipeline=args.pipeline, requests=args.requests, pgid=args.pgid,
                        host=args.host)
    for r in results:
        lat = r["latency_ms"]
        cpu = r.get("server_cpu_us_per_request")
        print(f"{r['test']:<16} {r['rps']:>12,.0f} req/s  p50 {lat['p50']:.3f}  p99 {lat['p99']:.3f}"
              f"  p99.9 {lat['p999']:.3f} ms  server CPU {cpu if cpu is not None else '-'} us/req"
              f"  generator {r['generator_cpu_us_per_request']} us/req")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
