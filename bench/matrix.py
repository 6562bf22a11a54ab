"""aofnode-bench-matrix: the side-by-side table of docs/benchmarks.md, aofnode beside redis-server.

Usage
-----
::

    aofnode-bench-matrix --duration 8 --json matrix.json > matrix.md

For each fsync policy x clients (1, 50) x pipeline depth (1, 32) it runs
``aofnode-bench --target both --start-node --start-redis`` (SET only, 100-byte values, 100k
keys): both servers fresh, the same load shape, one after the other in the same run. It prints a
Markdown table with throughput, p50/p99/p99.9 and the aofnode/redis throughput ratio.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["main"]

BIN = Path(sys.executable).parent


def _row(policy: str, clients: int, pipeline: int, doc: dict) -> str:
    a, r = doc["targets"]["aofnode"], doc["targets"]["redis"]

    def lat(t):
        m = t["latency_ms"]
        return f"{m['p50']:.2f} / {m['p99']:.2f} / {m['p999']:.2f}"
    ratio = a["throughput"] / r["throughput"] if r["throughput"] else float("nan")
    return (f"| {policy} | {clients} | {pipeline} | {a['throughput']:,.0f} | {lat(a)} | "
            f"{r['throughput']:,.0f} | {lat(r)} | {ratio:.2f} | {a['generator_cpu_pct']:.0f}% / {r['generator_cpu_pct']:.0f}% |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aofnode-bench-matrix")
    p.add_argument("--duration", type=int, default=8)
    p.add_argument("--policies", default="always,everysec,no")
    p.add_argument("--clients", default="1,50")
    p.add_argument("--pipelines", default="1,32")
    p.add_argument("--json", default=None, help="all runs' documents, keyed by configuration")
    args = p.parse_args(argv)
    print("| appendfsync | clients | pipeline | aofnode SET/s | aofnode p50 / p99 / p99.9 ms | "
          "redis SET/s | redis p50 / p99 / p99.9 ms | ratio | generator CPU (aofnode / redis runs) |")
    print("|---|---|---|---|---|---|---|---|---|")
    runs = {}
    for policy in args.policies.split(","):
        for clients in map(int, args.clients.split(",")):
            for pipeline in map(int, args.pipelines.split(",")):
                with tempfile.NamedTemporaryFile(suffix=".json") as out:
                    cmd = [str(BIN / "aofnode-bench"), "--target", "both", "--start-node", "--start-redis",
                           "--appendfsync", policy, "--clients", str(clients), "--pipeline", str(pipeline),
                           "--ratio", "1:0", "--duration", str(args.duration), "--warmup", "1",
                           "--json", out.name]
                    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=args.duration * 4 + 120)
                    doc = json.loads(Path(out.name).read_text())
                runs[f"{policy}/c{clients}/p{pipeline}"] = doc
                print(_row(policy, clients, pipeline, doc), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
