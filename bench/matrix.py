"""aofnode-bench-matrix: aofnode beside redis-server, with server CPU per request, repeated.

Usage
-----
::

    aofnode-bench-matrix                                  # shapes a, b, c; 8 s; 2 repeats (~3 min)
    aofnode-bench-matrix --duration 8 --repeats 3 --json matrix.json > matrix.md
    aofnode-bench-matrix --shapes always:1x32,no:50x1     # any appendfsync:CLIENTSxPIPELINE
    aofnode-bench-matrix --with-redis-benchmark           # + the C generator over RESP (issue 12)
    aofnode-bench-matrix --shapes "" --with-redis-benchmark   # the C generator's table only
    aofnode-bench-matrix --before /tmp/before             # + an older tree (git worktree add ...)

Design
------
The shapes of issue 11 are (a) ``always``, 50 clients x 1 in flight; (b) ``everysec``, 50
clients x pipelines of 32; (c) ``everysec``, 1 client x 1. On two cores the load generator
takes about half the machine, so throughput follows the **server's CPU per request**, which is
printed beside throughput, p50/p99/p99.9 and the aofnode/redis throughput ratio.

1. For each repeat, for each shape, it runs ``aofnode-bench --target T --start-node|
   --start-redis`` (SET only, 100-byte values, 100k keys, ``--warmup``, a fresh server each
   run) for aofnode and for redis-server back to back, the order flipped on every other repeat,
   so both see the same machine state (with ``--before TREE``, an older tree's node runs
   between them, driven by its own generator: bench/oldtree.py). aofnode-bench reads the CPU (utime + stime, from /proc)
   of every process of the server it started (per actor for aofnode) and of its own workers,
   and divides both by every reply of the run.
2. Per shape and server, each figure is the median over the repeats with its spread (min-max);
   the ratio is taken per repeat (aofnode / redis of the same repeat), then summarized. "Other
   load" is the machine's busy cores (/proc/stat) during the measurement minus the server's
   and the generator's own CPU: other work sharing the two cores, which no ratio corrects for.
   "CPU-implied ratio" is (redis server + generator CPU per request) / (aofnode's), per repeat:
   what the throughput ratio would be if both saturated the same cores, a steadier figure than
   the measured ratio when the other load varies (it ignores fsync waits).
3. ``--with-redis-benchmark`` then runs bench/matrix_resp.py: redis-benchmark against
   redis-server and against aofnode's RESP front (``--resp-bind``), same shape, same repeats,
   or prints why it was skipped.

The tables go to stdout; ``--json`` keeps every run's document and the summaries.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from aofnode.bench import spread

__all__ = ["main", "Shape", "parse_shapes", "COLUMNS", "summarize_runs", "table_rows"]

BIN = Path(sys.executable).parent
TARGETS = ("aofnode", "redis")
BEFORE = "before"  # --before TREE: that tree's node and generator (bench/oldtree.py)
COLUMNS = ["shape", "server", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "server CPU µs/req",
           "CPU by process µs/req", "generator CPU µs/req", "aofnode/redis req/s",
           "CPU-implied ratio", "other load, cores"]


@dataclass(frozen=True, slots=True)
class Shape:
    name: str
    appendfsync: str
    clients: int
    pipeline: int

    @property
    def label(self) -> str:
        tag = f"({self.name}) " if len(self.name) == 1 else ""
        return f"{tag}{self.appendfsync}, {self.clients} x {self.pipeline}"


NAMED = {"a": Shape("a", "always", 50, 1), "b": Shape("b", "everysec", 50, 32),
         "c": Shape("c", "everysec", 1, 1)}
_CUSTOM = re.compile(r"^(always|everysec|no):(\d+)x(\d+)$")


def parse_shapes(text: str) -> list[Shape]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if part in NAMED:
            out.append(NAMED[part])
        elif (m := _CUSTOM.match(part)) and int(m.group(2)) > 0 and int(m.group(3)) > 0:
            out.append(Shape(part, m.group(1), int(m.group(2)), int(m.group(3))))
        else:
            raise ValueError(f"unknown shape {part!r}: a, b, c or appendfsync:CLIENTSxPIPELINE")
    return out


def _run_one(shape: Shape, target: str, args) -> dict:
    """One aofnode-bench run against a fresh server of ``target``: its JSON document."""
    if target == BEFORE:
        from aofnode.bench import oldtree
        result = oldtree.run_shape(args.before, shape.appendfsync, shape.clients, shape.pipeline,
                                   args.duration, args.warmup)
        return {"targets": {BEFORE: result}, "servers": {BEFORE: {"tree": result["tree"]}}}
    start = "--start-node" if target == "aofnode" else "--start-redis"
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [str(BIN / "aofnode-bench"), "--target", target, start,
               "--appendfsync", shape.appendfsync, "--clients", str(shape.clients),
               "--pipeline", str(shape.pipeline), "--ratio", "1:0",
               "--duration", str(args.duration), "--warmup", str(args.warmup),
               "--json", out.name]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=(args.duration + args.warmup) * 4 + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
        return json.loads(Path(out.name).read_text())


def summarize_runs(runs: list[dict]) -> dict:
    """Step 2: {shape name: {target: {figure: summary}, "ratio": summary}} from the runs
    ``{"shape", "target", "repeat", "result"}``."""
    out: dict[str, dict] = {}
    by: dict[tuple, list[dict]] = {}
    for r in runs:
        by.setdefault((r["shape"], r["target"]), []).append(r)
    for (shape, target), rs in by.items():
        res = [r["result"] for r in rs]
        procs = sorted({p for x in res for p in x.get("server_cpu_us_per_request_by_process", {})})
        out.setdefault(shape, {})[target] = {
            "throughput": spread.summarize(x["throughput"] for x in res),
            "p50": spread.summarize(x["latency_ms"]["p50"] for x in res),
            "p99": spread.summarize(x["latency_ms"]["p99"] for x in res),
            "p999": spread.summarize(x["latency_ms"]["p999"] for x in res),
            "server_cpu_us": spread.summarize(x.get("server_cpu_us_per_request") for x in res),
            "by_process_us": {p: spread.summarize(
                x.get("server_cpu_us_per_request_by_process", {}).get(p, 0.0) for x in res)
                for p in procs},
            "generator_cpu_us": spread.summarize(x.get("generator_cpu_us_per_request") for x in res),
            "other_cpu_cores": spread.summarize(x.get("other_cpu_cores") for x in res),
        }
    for shape, targets in out.items():
        thr = {(r["target"], r["repeat"]): r["result"]["throughput"] for r in runs if r["shape"] == shape}
        reps = sorted({rep for (_, rep) in thr})
        cpu = {(r["target"], r["repeat"]): _cpu_per_request(r["result"])
               for r in runs if r["shape"] == shape}
        for target in [t for t in targets if t != "redis"]:
            targets[target]["ratio"] = spread.summarize(
                thr[(target, rep)] / thr[("redis", rep)] for rep in reps
                if thr.get((target, rep)) and thr.get(("redis", rep)))
            targets[target]["cpu_ratio"] = spread.summarize(
                cpu[("redis", rep)] / cpu[(target, rep)] for rep in reps
                if cpu.get((target, rep)) and cpu.get(("redis", rep)))
        targets["ratio"] = targets.get("aofnode", {}).get("ratio")
    return out


def _cpu_per_request(result: dict) -> float | None:
    """Server + generator CPU µs per request: when the two share the machine's cores and the
    load saturates them, throughput goes as its inverse. The ratio of two targets' figures is a
    steadier estimate of their throughput ratio than the measured one when other work takes a
    varying share of the cores (it ignores waits, e.g. fsync under ``always``)."""
    server, gen = result.get("server_cpu_us_per_request"), result.get("generator_cpu_us_per_request")
    return None if server is None or gen is None else server + gen


def _by_process(d: dict) -> str:
    # Processes that cost nothing measurable (e.g. no rewrite child ran; the closer under
    # everysec, ~0.01 µs/request) are left out: under 0.05 µs/request in the median.
    parts = [f"{name} {spread.cell(s)}" for name, s in d.items()
             if s is not None and s["median"] >= 0.05]
    return ", ".join(parts) if parts else "-"


def table_rows(shapes: list[Shape], summary: dict) -> list[list[str]]:
    rows = []
    for shape in shapes:
        for target in ("aofnode", BEFORE, "redis"):
            s = summary.get(shape.name, {}).get(target)
            if s is None:
                continue
            rows.append([
                shape.label, target, spread.cell(s["throughput"], 0), spread.cell(s["p50"]),
                spread.cell(s["p99"]), spread.cell(s["p999"]), spread.cell(s["server_cpu_us"]),
                _by_process(s["by_process_us"]), spread.cell(s["generator_cpu_us"]),
                spread.cell(s.get("ratio"), 2) if target != "redis" else "",
                spread.cell(s.get("cpu_ratio"), 2) if target != "redis" else "",
                spread.cell(s["other_cpu_cores"], 2)])
    return rows


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aofnode-bench-matrix")
    p.add_argument("--shapes", default="a,b,c",
                   help="a, b, c (issue 11) or appendfsync:CLIENTSxPIPELINE, comma-separated")
    p.add_argument("--duration", type=float, default=8, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1, help="seconds of load before each run")
    p.add_argument("--repeats", type=int, default=2,
                   help="rounds; aofnode and redis alternate within each (default 2)")
    p.add_argument("--json", default=None, help="every run's document and the summaries")
    p.add_argument("--before", default=None, metavar="TREE",
                   help="also an older source tree (e.g. a git worktree): its node driven by its "
                        "own generator, in the same rounds (bench/oldtree.py); with "
                        "--with-redis-benchmark its RESP front too (before-resp)")
    p.add_argument("--with-redis-benchmark", action="store_true",
                   help="also redis-benchmark against redis-server and aofnode's RESP front")
    p.add_argument("--cb-pipelines", default="16,1", help="redis-benchmark -P values")
    p.add_argument("--cb-clients", type=int, default=50, help="redis-benchmark -c")
    p.add_argument("--cb-tests", default="set,get,incr,mset", help="redis-benchmark -t")
    p.add_argument("--cb-requests", type=int, default=None, metavar="N",
                   help="redis-benchmark -n per test (default: 100k at -P 1, 500k above; "
                        "a fifth of it for mset)")
    p.add_argument("--cb-appendfsync", default="everysec", choices=("always", "everysec", "no"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        shapes = parse_shapes(args.shapes) if args.shapes else []
    except ValueError as exc:
        print(f"aofnode-bench-matrix: {exc}", file=sys.stderr)
        return 2
    if args.repeats < 1 or args.duration <= 0 or args.warmup < 0:
        print("aofnode-bench-matrix: --repeats >= 1, --duration > 0, --warmup >= 0", file=sys.stderr)
        return 2
    runs: list[dict] = []
    doc: dict = {"config": {"command": sys.argv, "shapes": [asdict(s) for s in shapes],
                            "duration_s": args.duration, "warmup_s": args.warmup,
                            "repeats": args.repeats, "before": args.before}}
    try:
        for rep in range(args.repeats):  # step 1
            targets = ("aofnode", BEFORE, "redis") if args.before else TARGETS
            order = targets if rep % 2 == 0 else targets[::-1]
            for shape in shapes:
                for target in order:
                    run = _run_one(shape, target, args)
                    runs.append({"shape": shape.name, "target": target, "repeat": rep,
                                 "result": run["targets"][target], "servers": run["servers"]})
                    r = run["targets"][target]
                    print(f"repeat {rep + 1}/{args.repeats} {shape.label} {target}: "
                          f"{r['throughput']:,.0f} req/s, server CPU "
                          f"{r.get('server_cpu_us_per_request')} us/req, other load "
                          f"{r.get('other_cpu_cores')} cores", file=sys.stderr)
        if shapes:
            summary = summarize_runs(runs)  # step 2
            doc["summary"] = summary
            print(spread.markdown_table(COLUMNS, table_rows(shapes, summary)), flush=True)
        if args.with_redis_benchmark:  # step 3
            from aofnode.bench import matrix_resp
            doc["redis_benchmark"] = matrix_resp.run(args, sys.stdout)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"aofnode-bench-matrix: {exc}", file=sys.stderr)
        return 1
    finally:
        doc["runs"] = runs
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
