"""The matrix's redis-benchmark part (issue 12): the C generator against redis-server and against
aofnode's RESP front, same shape, same run.

Design
------
``run`` is called by bench/matrix.py with its parsed options:

1. Find ``redis-benchmark`` (skipped, with the reason printed, if it is absent) and ask
   ``aofnode serve --help`` whether this node has ``--resp-bind`` (if not, aofnode is skipped
   with the reason and redis-server is still measured).
2. For each repeat, for each pipeline depth, start a fresh server of each kind in turn (the
   order flipped on every other repeat): redis-server as every benchmark starts it
   (bench/servers.py), aofnode with ``--resp-bind 127.0.0.1:PORT`` once its RESP port answers
   PING, and with ``--before TREE`` that tree's aofnode too (its modules first on
   ``PYTHONPATH``, bench/oldtree.py; the same generator). The same ``appendfsync`` for all.
3. Run the tests with bench/cbench.py (one redis-benchmark per test, server CPU from /proc of
   the server's process group around each), stop the server.
4. Summarize per pipeline, test and server: medians with the spread over the repeats, the
   aofnode/redis ratio taken per repeat.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, TextIO

from aofnode.bench import cbench, oldtree, spread
from aofnode.bench.servers import free_port, start_aofnode, start_redis

__all__ = ["run", "COLUMNS", "resp_front_available", "requests_for"]

COLUMNS = ["pipeline", "test", "server", "req/s", "p50 ms", "p99 ms", "p99.9 ms",
           "server CPU µs/req", "CPU by process µs/req", "generator CPU µs/req",
           "aofnode/redis req/s", "other load, cores"]
AOFNODE = "aofnode-resp"
BEFORE = "before-resp"  # --before TREE: that tree's RESP front
# The RESP front starts right after the log actor (well under a second here once the ZeroMQ
# front answers PING); 10 s means it is not coming.
RESP_READY_TIMEOUT_S = 10.0
REDIS = "redis"


def resp_front_available() -> str | None:
    """None if ``aofnode serve`` takes ``--resp-bind``, else why not."""
    exe = Path(sys.executable).parent / "aofnode"
    try:
        text = subprocess.run([str(exe), "serve", "--help"], capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"aofnode serve --help failed: {exc}"
    return None if "--resp-bind" in text else "this aofnode has no --resp-bind (no RESP front yet)"


def requests_for(test: str, pipeline: int, override: int | None) -> int:
    """redis-benchmark -n: enough that the slower server runs a few seconds and the faster one
    a few hundred CPU ticks (10 ms each) — 100k at -P 1 (redis ~70-100k/s here), 500k when
    pipelined (redis ~600-900k/s); MSET of 10 keys costs ~10x a SET, so a fifth of it."""
    n = override or (100_000 if pipeline == 1 else 500_000)
    return max(1, n // 5) if test == "mset" else n


@contextlib.contextmanager
def _python_path(tree: str | None) -> Iterator[None]:
    """While a server starts: ``tree``'s modules first on PYTHONPATH (None: this tree's)."""
    if tree is None:
        yield
        return
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = oldtree._python_path(Path(tree).resolve(),
                                                    Path(tempfile.mkdtemp(prefix="aofnode-before-")))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _start(target: str, appendfsync: str, before: str | None = None):
    """Step 2: a started server and the RESP port to drive."""
    if target == REDIS:
        server = start_redis(appendfsync)
        return server, server.spec.port
    port = free_port()
    with _python_path(before if target == BEFORE else None):
        server = start_aofnode(appendfsync, extra=("--resp-bind", f"127.0.0.1:{port}"))
    try:
        cbench.wait_resp_ready(port, timeout=RESP_READY_TIMEOUT_S)
    except BaseException:
        server.stop()
        raise
    return server, port


def run(args, out: TextIO) -> dict:
    exe = cbench.redis_benchmark_path()  # step 1
    if exe is None:
        out.write("\nredis-benchmark: skipped (redis-benchmark not found on PATH)\n")
        return {"skipped": "redis-benchmark not found on PATH"}
    skipped = {}
    why = resp_front_available()
    if why:
        skipped[AOFNODE] = why
    pipelines = [int(p) for p in args.cb_pipelines.split(",")]
    tests = args.cb_tests.split(",")
    runs = []
    before = getattr(args, "before", None)
    targets = (AOFNODE, BEFORE, REDIS) if before else (AOFNODE, REDIS)
    for rep in range(args.repeats):
        order = targets if rep % 2 == 0 else targets[::-1]
        for pipeline in pipelines:
            for target in order:
                if target in skipped:
                    continue
                try:
                    server, port = _start(target, args.cb_appendfsync, before)
                except RuntimeError as exc:
                    if target == REDIS:
                        raise
                    skipped[target] = f"its RESP front did not answer: {exc}"
                    continue
                with server:  # step 3
                    for test in tests:
                        r = cbench.run_test(port, test, clients=args.cb_clients, pipeline=pipeline,
                                            requests=requests_for(test, pipeline, args.cb_requests),
                                            pgid=server.proc.pid, exe=exe)
                        runs.append({"target": target, "pipeline": pipeline, "repeat": rep,
                                     "test": r["test"], "result": r})
                        print(f"redis-benchmark repeat {rep + 1} -P {pipeline} {r['test']} "
                              f"{target}: {r['rps']:,.0f} req/s, server CPU "
                              f"{r.get('server_cpu_us_per_request')} us/req", file=sys.stderr)
    rows = _rows(runs, pipelines)  # step 4
    out.write(f"\nredis-benchmark -c {args.cb_clients} -P P -n N -r {cbench.KEYSPACE} "
              f"-d {cbench.VALUE_SIZE} -t TEST --precision 3; appendfsync {args.cb_appendfsync}; "
              f"{args.repeats} repeat(s)\n\n")
    out.write(spread.markdown_table(COLUMNS, rows) + "\n")
    for target, reason in skipped.items():
        out.write(f"\n{target}: skipped ({reason})\n")
    out.flush()
    return {"runs": runs, "skipped": skipped}


def _rows(runs: list[dict], pipelines: list[int]) -> list[list[str]]:
    rows = []
    tests = list(dict.fromkeys(r["test"] for r in runs))
    for pipeline in pipelines:
        for test in tests:
            mine = [r for r in runs if r["pipeline"] == pipeline and r["test"] == test]
            thr = {(r["target"], r["repeat"]): r["result"]["rps"] for r in mine}
            ratios = {node: spread.summarize(thr[(node, rep)] / thr[(REDIS, rep)]
                                             for (t, rep) in thr if t == node and (REDIS, rep) in thr)
                      for node in (AOFNODE, BEFORE)}
            for target in (AOFNODE, BEFORE, REDIS):
                res = [r["result"] for r in mine if r["target"] == target]
                if not res:
                    continue

                def lat(k: str, res: list = res) -> str:
                    return spread.cell(spread.summarize(x["latency_ms"][k] for x in res))
                rows.append([
                    str(pipeline), test, target,
                    spread.cell(spread.summarize(x["rps"] for x in res), 0),
                    lat("p50"), lat("p99"), lat("p999"),
                    spread.cell(spread.summarize(x.get("server_cpu_us_per_request") for x in res)),
                    _by_process(res),
                    spread.cell(spread.summarize(x["generator_cpu_us_per_request"] for x in res)),
                    spread.cell(ratios[target], 2) if target != REDIS else "",
                    spread.cell(spread.summarize(x.get("other_cpu_cores") for x in res), 2)])
    return rows


def _by_process(res: list[dict]) -> str:
    """Medians only, of the processes that cost >= 0.05 µs/request (the ZeroMQ front, idle
    here, and the closer are left out)."""
    names = sorted({n for x in res for n in x.get("server_cpu_us_per_request_by_process", {})})
    parts = []
    for name in names:
        s = spread.summarize(x.get("server_cpu_us_per_request_by_process", {}).get(name, 0.0)
                             for x in res)
        if s and s["median"] >= 0.05:
            parts.append(f"{name} {spread.cell(dict(s, n=1))}")
    return ", ".join(parts) or "-"
