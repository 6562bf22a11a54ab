"""aofnode-bench-abuse: every finding of issue 9 at full scale against a live node, beside redis.

Design
------
For each scenario (bench/abuse_scenarios.py) and each server it applies to:

1. start a fresh server (``aofnode serve`` with the scenario's options, or redis-server with
   ``client-output-buffer-limit normal 64mb 64mb 0``, the same limit as aofnode's default
   ``--client-output-limit``), unless ``--endpoint`` names a running node;
2. the scenario prepares the keyspace, outside the measurement;
3. the victim (a client PINGing every 2 ms) and the RSS sampler start (bench/abuse_probe.py);
   the abuse runs; both stop one second after it ends;
4. the server is stopped, and the row is: the victim's p50/p99/max, its timeouts and longest
   stall, each process's peak RSS, and the abuse's own outcome.

A scenario that fails is a row with its error; the run goes on. Every wait is bounded, so a
run of everything takes a few minutes. The table is printed as Markdown (ready for
docs/benchmarks.md) and ``--json`` writes every figure.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from aofnode.bench.abuse_node import MIB, Target, node_target, start_node, start_redis
from aofnode.bench.abuse_probe import Probes
from aofnode.bench.abuse_scenarios import SCENARIOS, Scenario

__all__ = ["main", "run_scenario", "format_table"]

# After the abuse ends the victim goes on for this long: the table then shows whether the
# server recovered, and a stall that ends with the abuse is measured to its end.
TAIL_S = 1.0
AOFNODE_ROLES = ("front", "log", "closer", "supervisor")


def _node_has_option(option: str) -> bool:
    exe = str(Path(sys.executable).parent / "aofnode")
    try:
        out = subprocess.run([exe, "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in out


def _loadavg() -> str:
    """The 1/5/15-minute load averages: a busy machine is noise in every figure."""
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return ""


def _source_version() -> str:
    """The commit the program runs from (``-dirty``: with uncommitted edits)."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              timeout=10, cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _mib(rss: dict[str, int]) -> dict[str, float]:
    return {role: round(v / MIB, 1) for role, v in sorted(rss.items())}


def run_scenario(sc: Scenario, server: str, args) -> dict:
    """One row: start the server, run ``sc`` against it with the probes, stop the server."""
    row = {"scenario": sc.name, "finding": sc.finding, "title": sc.title, "server": server}
    started = time.monotonic()
    target: Target | None = None
    own = args.endpoint is None or server == "redis"
    probes: dict = {}
    try:
        if server == "redis":
            target = start_redis(args.redis_server)
        elif args.endpoint is not None:
            if sc.node_nofile is not None or sc.name == "maxmemory" and not _small_maxmemory(args):
                row["skipped"] = "needs a node started with its own limits (run without --endpoint)"
                return row
            target = node_target(args.endpoint, args.node_log)
        else:
            target = start_node(sc.node_options(args.scale), nofile=sc.node_nofile)
        row["server_command"] = target.settings.get("command")
        row["server_version"] = target.settings.get("version")

        @contextmanager
        def measure():
            with Probes(target.probe_spec, target.root_pid, args.victim_timeout) as p:
                try:
                    yield p
                finally:
                    time.sleep(TAIL_S)
            probes.update(p.results)

        row["outcome"] = sc.run(target, args.scale, measure)
    except Exception as exc:  # a failed scenario is a row, not the end of the run
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc()
    finally:
        if target is not None and own:
            target.stop()
    if probes:
        row["victim"] = {k: v for k, v in probes["victim"].items() if k != "histogram"}
        row["victim_histogram"] = probes["victim"].get("histogram", "")
        row["peak_rss_mib"] = _mib(probes.get("peak_rss", {}))
        row["start_rss_mib"] = _mib(probes.get("start_rss", {}))
        row["cpu_s"] = probes.get("cpu_s", {})
    row["elapsed_s"] = round(time.monotonic() - started, 1)
    return row


def _small_maxmemory(args) -> bool:
    """A running node's maxmemory is worth filling only if it is small (≤ 1 GiB)."""
    try:
        limit = node_target(args.endpoint, None).info().get("maxmemory", 0)
    except Exception:
        return False
    return 0 < limit <= 1 << 30


def _ms(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 10 else f"{v:.0f}"


def _rss_cell(row: dict) -> str:
    rss = row.get("peak_rss_mib") or {}
    if not rss:
        return "-"
    if row["server"] == "redis":
        return " / ".join(f"{rss[r]:.0f}" for r in rss)
    cells = [f"{rss[r]:.0f}" if r in rss else "-" for r in AOFNODE_ROLES]
    extra = [f"{r} {v:.0f}" for r, v in rss.items() if r not in AOFNODE_ROLES]
    return " / ".join(cells) + (f" ({', '.join(extra)})" if extra else "")


def format_table(rows: list[dict]) -> str:
    head = ("| # | scenario | server | victim PING p50 / p99 / max ms | victim timeouts | longest stall s "
            "| peak RSS MiB (aofnode: front / log / closer / supervisor) | outcome |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        v = row.get("victim")
        if "skipped" in row:
            outcome = f"skipped: {row['skipped']}"
        elif "error" in row:
            outcome = f"FAILED: {row['error']}"
        else:
            outcome = row["outcome"]["summary"]
        if v and "error" in v:
            victim, timeouts, stall = f"victim failed: {v['error']}", "-", "-"
        elif v:
            lat = v["latency_ms"]
            victim = f"{_ms(lat['p50'])} / {_ms(lat['p99'])} / {_ms(lat['max'])}"
            timeouts = f"{v['timeouts']} of {v['pings']}" + (f" (+{v['errors']} errors)" if v["errors"] else "")
            stall = f"{v['stall_max_s']:.2f}"
        else:
            victim = timeouts = stall = "-"
        lines.append(f"| {row['finding']} | {row['title']} | {row['server']} | {victim} | {timeouts} | {stall} "
                     f"| {_rss_cell(row)} | {outcome} |")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="aofnode-bench-abuse", description=__doc__.split("\n")[0])
    p.add_argument("--only", default="", help="comma-separated scenario names (default: all): "
                   + ", ".join(s.name for s in SCENARIOS))
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every count and size of abuse (1: the issue's figures)")
    p.add_argument("--endpoint", help="abuse this running node instead of starting one per scenario")
    p.add_argument("--node-log", help="with --endpoint: the node's --log-file, to read its events")
    p.add_argument("--no-redis", action="store_true", help="do not run the redis-server rows")
    p.add_argument("--redis-server", default="redis-server", help="redis-server executable")
    p.add_argument("--victim-timeout", type=float, default=1.0,
                   help="seconds a victim PING waits before it counts as a timeout (default 1)")
    p.add_argument("--json", help="write every figure here")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - {s.name for s in SCENARIOS}
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    args.names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # SIGTERM as Ctrl-C: every server started so far is stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    redis = not args.no_redis and shutil.which(args.redis_server) is not None
    if not args.no_redis and not redis:
        print(f"aofnode-bench-abuse: {args.redis_server} not found: the redis rows are skipped", file=sys.stderr)
    has_maxmemory = _node_has_option("--maxmemory")
    load_before = _loadavg()
    rows = []
    for sc in SCENARIOS:
        if args.names and sc.name not in args.names:
            continue
        for server in sc.servers:
            if server == "redis" and not redis:
                continue
            if sc.name == "maxmemory" and not has_maxmemory:
                row = {"scenario": sc.name, "finding": sc.finding, "title": sc.title, "server": server,
                       "skipped": "`aofnode serve --help` lists no --maxmemory"}
            else:
                print(f"-- {sc.name} on {server} ...", file=sys.stderr, flush=True)
                row = run_scenario(sc, server, args)
                if "error" in row:
                    print(row["traceback"], file=sys.stderr)
            rows.append(row)
    table = format_table(rows)
    print(table)
    if args.json:
        doc = {"config": {"scale": args.scale, "endpoint": args.endpoint, "victim_timeout_s": args.victim_timeout,
                          "victim_interval_ms": 2, "argv": sys.argv, "source": _source_version(),
                          "loadavg_before": load_before, "loadavg_after": _loadavg()},
               "rows": rows, "table": table}
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
