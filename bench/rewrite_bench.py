"""aofnode-bench-rewrite: a background rewrite of a >= 1 GiB AOF under a 50-client write load.

Usage
-----
::

    # aofnode: 2M keys overwritten until the AOF is >= 1 GiB, rewrite at second 15 of 40:
    aofnode-bench-rewrite --target aofnode --json rw-aofnode.json
    # the same, the old file closed by the log actor itself (what the closer buys):
    aofnode-bench-rewrite --target aofnode --close-inline --json rw-inline.json
    # redis-server 7 with the same data shape and load (filled with redis-benchmark):
    aofnode-bench-rewrite --target redis --json rw-redis.json

Design
------
One run, in order: 1. make the data (aofnode: the AOF is written directly with the project's own
record encoder, 2M distinct keys overwritten round after round until the file passes
``--min-aof-bytes``; redis: ``redis-benchmark -t set -r KEYS`` until its AOF passes it);
2. start the server with automatic rewrites off and wait until it has loaded; 3. run
``aofnode-bench`` with ``--bgrewrite-at`` (50 clients, SET only, closed loop); 4. read the
rewrite's own figures (aofnode: its JSON log events; redis: INFO); 5. stop the server and remove
the data; 6. (aofnode) one more rewrite with no load, for the child's own copy-on-write
(``--skip-idle-rewrite`` leaves it out). Everything binds 127.0.0.1; every process started is
stopped, also on errors.

The switch (aofnode): the log events put the switch and the closer's job on the load's clock,
anchored on ``rewrite_started`` (logged right after the fork, so BGREWRITEAOF arrived
``fork_usec`` before it; what is left is the request's one-way trip, well under 10 ms). The
load's per-second histograms are keyed by the second a reply *arrived*, so a request the switch
stalled can land in the next second: ``switch_second_max_ms`` is the worst reply in the seconds
overlapping the one second from the switch on (two at most), printed beside the worst of the
other seconds of the rewrite window and the median per-second worst before the rewrite.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from aofnode.bench import resp
from aofnode.bench.servers import free_port, redis_command

__all__ = ["main"]

BIN = Path(sys.executable).parent
GiB = 1 << 30


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's whole process group, SIGKILL after 60 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _write_aof(path: Path, keys: int, value_size: int, min_bytes: int) -> dict:
    """Step 1 (aofnode): rounds of SET key:0..key:N-1 until the file is >= min_bytes."""
    from aofnode.aof import format as aof_format
    started = time.monotonic()
    rounds = entries = 0
    with open(path, "wb") as f:
        f.write(aof_format.encode_header())
        size = aof_format.HEADER_SIZE
        while size < min_bytes:
            value = (b"r%02d-" % rounds).ljust(value_size, b"x")
            for start in range(0, keys, 1000):
                batch = [[0, "SET", b"key:%d" % i, value] for i in range(start, min(start + 1000, keys))]
                data = aof_format.encode_entries(batch)
                f.write(data)
                size += len(data)
                entries += len(batch)
            rounds += 1
        f.flush()
        os.fsync(f.fileno())
    return {"aof_bytes": size, "rounds": rounds, "entries": entries,
            "seconds": round(time.monotonic() - started, 1)}


def _make_aof(args, path: Path) -> dict:
    """Step 1, or a copy of the file an earlier run made with the same shape (``--aof-cache``):
    writing 1 GiB with the record encoder takes minutes, a copy seconds, and A/B runs want the
    very same file."""
    if not args.aof_cache:
        return _write_aof(path, args.keys, args.value_size, args.min_aof_bytes)
    cache, meta = Path(args.aof_cache), Path(args.aof_cache + ".json")
    shape = {"keys": args.keys, "value_size": args.value_size, "min_aof_bytes": args.min_aof_bytes}
    if cache.exists() and meta.exists() and json.loads(meta.read_text()).get("shape") == shape:
        started = time.monotonic()
        shutil.copyfile(cache, path)
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        made = json.loads(meta.read_text())["made"]
        return {**made, "copied_from": str(cache), "seconds": round(time.monotonic() - started, 1)}
    made = _write_aof(path, args.keys, args.value_size, args.min_aof_bytes)
    shutil.copyfile(path, cache)
    meta.write_text(json.dumps({"shape": shape, "made": made}))
    return made


def _events(log_file: Path) -> list[dict]:
    out = []
    for line in log_file.read_text(errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            out.append(ev)
    return out


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def _load(args, endpoint_args: list[str], out_json: Path) -> dict:
    cmd = [str(BIN / "aofnode-bench"), *endpoint_args, "--clients", str(args.clients), "--ratio", "1:0",
           "--keyspace", str(args.keys), "--value-size", str(args.value_size),
           "--duration", str(args.duration), "--bgrewrite-at", str(args.rewrite_at),
           "--procs", str(args.procs), "--json", str(out_json)]
    if args.plot:
        cmd += ["--plot", args.plot]
    print("load:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=args.duration + 600)
    doc = json.loads(out_json.read_text())
    return next(iter(doc["targets"].values()))


def run_aofnode(args, work: Path) -> dict:
    data = work / "data"
    data.mkdir()
    made = _make_aof(args, data / "appendonly.aof")
    print(f"wrote {made['aof_bytes'] / GiB:.2f} GiB AOF ({made['entries']} entries) in {made['seconds']} s", flush=True)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    log_file = work / "node.log"
    cmd = [str(BIN / "aofnode"), "serve", "--dir", str(data), "--bind", endpoint,
           "--appendfsync", args.appendfsync, "--log-file", str(log_file),
           "--auto-aof-rewrite-percentage", "0", "--aof-rewrite-diff-limit", "4gb"]
    if args.close_inline:
        cmd.append("--aof-close-inline")
    if args.child_nice is not None:
        cmd += ["--aof-rewrite-child-nice", str(args.child_nice)]
    if args.child_sched is not None:
        cmd += ["--aof-rewrite-child-sched", args.child_sched]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        from aofnode.client import Client, CommandError, NodeTimeout

        def ready():
            try:
                with Client(endpoint, timeout=2, retries=1) as c:
                    return c.execute("INFO", "server")["server"]["process_id"]
            except (CommandError, NodeTimeout):
                return None
        log_pid = _wait(ready, 900, "the node to load its AOF")
        loaded = next(e for e in _events(log_file) if e.get("event") == "aof_loaded")
        rss = _rss_bytes(log_pid)
        load = _load(args, ["--endpoint", endpoint], work / "load.json")
        with Client(endpoint, timeout=10) as c:
            def idle():
                return c.execute("INFO", "persistence")["persistence"]["aof_rewrite_in_progress"] == 0
            _wait(idle, 600, "the rewrite to finish")
            persistence = c.execute("INFO", "persistence")["persistence"]
            idle_cow = None
            if not args.skip_idle_rewrite:
                # 6. The same rewrite with no load: the child's own copy-on-write, without the
                # pages the parent dirties by serving writes meanwhile.
                c.execute("BGREWRITEAOF")
                time.sleep(0.5)
                _wait(idle, 600, "the idle rewrite to finish")
                idle_cow = c.execute("INFO", "persistence")["persistence"]["aof_last_cow_size"]
    finally:
        _stop(proc)
    ev = {}
    idle_child = [] if args.skip_idle_rewrite else \
        [e for e in _events(log_file) if e.get("event") == "rewrite_child_done"][-1:]
    for e in _events(log_file):  # the first rewrite's events (the loaded one), not the idle one's
        name = e.get("event", "")
        if name.startswith(("rewrite_", "closer_job_done")) and name not in ev \
                and not (name == "closer_job_done" and e.get("kind") != "close"):
            ev[name] = e
    started, child = ev.get("rewrite_started", {}), ev.get("rewrite_child_done", {})
    out = {
        "target": "aofnode", "settings": {"command": cmd, "close_inline": args.close_inline},
        "data": made, "load_seconds": loaded.get("seconds"), "rss_bytes": rss,
        "fork_usec": started.get("fork_usec"), "started_event": started or None,
        "fork_usec_per_gib_rss": round(started.get("fork_usec", 0) / (rss / GiB), 1) if rss else None,
        "child_keys": child.get("keys"), "child_seconds": child.get("seconds"),
        "child_keys_per_s": round(child["keys"] / child["seconds"]) if child.get("seconds") else None,
        "cow_bytes": child.get("cow_bytes"),
        "cow_fraction_of_rss": round(child.get("cow_bytes", 0) / rss, 4) if rss else None,
        "idle_rewrite_cow_bytes": idle_cow,
        "idle_child_keys_per_s": round(idle_child[0]["keys"] / idle_child[0]["seconds"]) if idle_child else None,
        "idle_rewrite_cow_fraction_of_rss": round(idle_cow / rss, 4) if rss and idle_cow is not None else None,
        "diff": ev.get("rewrite_diff_flushed"), "switch": ev.get("rewrite_switched"),
        "pauses": ev.get("rewrite_pause_summary"), "closer": ev.get("closer_job_done"),
        "inline_close": ev.get("rewrite_inline_close"), "failed": ev.get("rewrite_failed"),
        "persistence": {k: persistence.get(k) for k in ("aof_last_bgrewrite_status", "aof_current_size",
                                                       "aof_last_cow_size", "aof_last_rewrite_longest_pause_ms")},
        "load": load,
    }
    out["switch_window"] = _switch_window(out, load)
    return out


def _ts(event: dict | None) -> float | None:
    try:
        return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
    except (TypeError, KeyError, ValueError):
        return None


def _switch_window(r: dict, load: dict) -> dict | None:
    """The switch and the closer's job on the load's clock, and the worst replies around them
    (see the module docstring for the anchor and the window)."""
    rewrite = load.get("rewrite") or {}
    started_ts = _ts(r.get("started_event"))
    switched_ts = _ts(r.get("switch"))
    if rewrite.get("start_s") is None or started_ts is None or switched_ts is None:
        return None
    anchor = started_ts - (r.get("fork_usec") or 0) / 1e6 - rewrite["start_s"]
    switch_s = switched_ts - anchor
    out = {"switch_s": round(switch_s, 3)}
    closer = r.get("closer") or r.get("inline_close")
    if _ts(closer) is not None:
        done_s = _ts(closer) - anchor
        took = closer.get("seconds", (closer.get("ms") or 0) / 1000)
        out.update(closer_start_s=round(done_s - took, 3), closer_end_s=round(done_s, 3),
                   closer_ms=round(took * 1000, 1), closer_steps=closer.get("steps"))
    window = set(range(int(switch_s), int(math.ceil(switch_s + 1))))
    rows = [t for t in load.get("timeline", []) if not t["warmup"] and not t["tail"] and t["requests"]]
    in_window = [t["latency_ms"]["max"] for t in rows if t["second"] in window]
    end_s = rewrite.get("end_s") or switch_s
    others = [t["latency_ms"]["max"] for t in rows
              if t["second"] not in window and t["second"] + 1 > rewrite["start_s"] and t["second"] <= end_s]
    before = [t["latency_ms"]["max"] for t in rows if t["second"] + 1 <= rewrite["start_s"]]
    out.update(window_seconds=sorted(window),
               switch_second_max_ms=max(in_window) if in_window else None,
               other_rewrite_seconds_max_ms=max(others) if others else None,
               before_median_second_max_ms=round(statistics.median(before), 3) if before else None,
               per_second_max_ms={t["second"]: t["latency_ms"]["max"] for t in rows
                                  if min(window) - 2 <= t["second"] <= max(window) + 2})
    return out


def run_redis(args, work: Path) -> dict:
    port = free_port()
    exe = shutil.which("redis-server")
    if not exe:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    cmd = redis_command(exe, port, work, args.appendfsync,
                        extra=("--auto-aof-rewrite-percentage", "0"))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def info():
            try:
                with resp.RespClient("127.0.0.1", port) as c:
                    return resp.parse_info(c.execute("INFO"))
            except OSError:
                return None
        _wait(info, 30, "redis-server")
        aofdir = work / "appendonlydir"

        def aof_bytes():
            return sum(p.stat().st_size for p in aofdir.glob("*.aof")) if aofdir.exists() else 0
        started = time.monotonic()
        while aof_bytes() < args.min_aof_bytes:
            subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "set",
                            "-n", str(args.keys * 2), "-r", str(args.keys), "-d", str(args.value_size),
                            "-P", "64", "-q"], check=True, stdout=subprocess.DEVNULL, timeout=900)
        made = {"aof_bytes": aof_bytes(), "seconds": round(time.monotonic() - started, 1)}
        print(f"filled redis AOF to {made['aof_bytes'] / GiB:.2f} GiB in {made['seconds']} s", flush=True)
        before = info()
        load = _load(args, ["--target", "redis", "--redis-port", str(port)], work / "load.json")
        _wait(lambda: info().get("aof_rewrite_in_progress") == "0", 600, "the rewrite to finish")
        after = info()
    finally:
        _stop(proc)
    rss = int(before.get("used_memory_rss", 0))
    fork = int(after.get("latest_fork_usec", 0))
    return {
        "target": "redis", "settings": {"command": cmd}, "data": made, "rss_bytes": rss,
        "fork_usec": fork, "fork_usec_per_gib_rss": round(fork / (rss / GiB), 1) if rss else None,
        "cow_bytes": int(after.get("aof_last_cow_size", 0)),
        "cow_fraction_of_rss": round(int(after.get("aof_last_cow_size", 0)) / rss, 4) if rss else None,
        "aof_last_rewrite_time_sec": after.get("aof_last_rewrite_time_sec"),
        "aof_last_bgrewrite_status": after.get("aof_last_bgrewrite_status"),
        "load": load,
    }


def _print(r: dict) -> None:
    load = r["load"]
    print(f"\n== {r['target']}{' (old file closed inline)' if r.get('settings', {}).get('close_inline') else ''}")
    print(f"data           {r['data']['aof_bytes'] / GiB:.2f} GiB AOF; log actor RSS {r['rss_bytes'] / 2**20:.0f} MiB")
    print(f"fork           {r['fork_usec']} us  ({r['fork_usec_per_gib_rss']} us per GiB of RSS)")
    if r.get("child_keys_per_s"):
        print(f"child          {r['child_keys']} keys in {r['child_seconds']} s = {r['child_keys_per_s']:,} keys/s")
    if r.get("cow_bytes") is not None:
        print(f"copy-on-write  {r['cow_bytes'] / 2**20:.1f} MiB = {100 * (r['cow_fraction_of_rss'] or 0):.1f}% of RSS")
    if r.get("idle_rewrite_cow_bytes") is not None:
        print(f"  with no load {r['idle_rewrite_cow_bytes'] / 2**20:.1f} MiB = "
              f"{100 * (r['idle_rewrite_cow_fraction_of_rss'] or 0):.1f}% of RSS (the child's own share); "
              f"child {r['idle_child_keys_per_s']:,} keys/s")
    for key in ("diff", "switch", "pauses", "closer", "inline_close"):
        if r.get(key):
            fields = {k: v for k, v in r[key].items() if k not in ("actor", "pid", "level", "ts", "event")}
            print(f"{key:14} {fields}")
    for phase, p in (load.get("phases") or {}).items():
        lat = p["latency_ms"]
        print(f"latency {phase:7} p99 {lat['p99']} ms  p99.9 {lat['p999']} ms  max {lat['max']} ms  "
              f"({p['requests']} requests)")
    print(f"throughput     {load['throughput']} req/s; errors {load['errors']}, timeouts {load['timeouts']}")
    w = r.get("switch_window")
    if w:
        closer = (f"; closer job {w['closer_start_s']}-{w['closer_end_s']} s = {w['closer_ms']} ms"
                  f"{'' if w.get('closer_steps') is None else ', %s steps' % w['closer_steps']}"
                  if w.get("closer_ms") is not None else "")
        print(f"switch         at {w['switch_s']} s{closer}")
        print(f"switch second  worst reply {w['switch_second_max_ms']} ms (seconds {w['window_seconds']}); "
              f"other rewrite seconds {w['other_rewrite_seconds_max_ms']} ms; "
              f"before: median per-second worst {w['before_median_second_max_ms']} ms")
        print("per-second max " + "  ".join(f"{s}:{v}" for s, v in w["per_second_max_ms"].items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aofnode-bench-rewrite", description=__doc__.split("\n")[0])
    p.add_argument("--target", choices=("aofnode", "redis"), default="aofnode")
    p.add_argument("--keys", type=int, default=2_000_000)
    p.add_argument("--value-size", type=int, default=64)
    p.add_argument("--min-aof-bytes", type=int, default=GiB)
    p.add_argument("--appendfsync", choices=("always", "everysec", "no"), default="everysec")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--duration", type=int, default=40)
    p.add_argument("--rewrite-at", type=int, default=15)
    p.add_argument("--close-inline", action="store_true", help="aofnode: the log actor closes the old file")
    p.add_argument("--child-nice", type=int, default=None, help="aofnode: --aof-rewrite-child-nice")
    p.add_argument("--child-sched", choices=("normal", "idle"), default=None,
                   help="aofnode: --aof-rewrite-child-sched")
    p.add_argument("--skip-idle-rewrite", action="store_true",
                   help="aofnode: leave out step 6 (the rewrite with no load, for copy-on-write)")
    p.add_argument("--aof-cache", default=None,
                   help="aofnode: copy the AOF from this file if an earlier run made it with the same "
                        "--keys/--value-size/--min-aof-bytes, else make it and keep a copy there")
    p.add_argument("--workdir", default=None, help="parent of the temporary data directory")
    p.add_argument("--json", default=None)
    p.add_argument("--plot", default=None)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="aofnode-rw-", dir=args.workdir))
    try:
        result = run_aofnode(args, work) if args.target == "aofnode" else run_redis(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _print(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
