"""The cost of CURVE (issue 10): SET throughput and latency with and without it, in one run.

Usage::

    python -m aofnode.bench.studies.curve_bench --clients 8 --pipeline 1 --duration 5 --rounds 2 [--json out.json]

Design: per round, one node without CURVE and one with it (same settings, ``--appendfsync
everysec`` so the disk is not what is measured), started here in a temporary directory, each
loaded by ``--clients`` processes running ``aofnode.client.Client`` in a closed loop of SETs
(16-byte keys, ``--value-size`` values; ``--pipeline`` > 1 sends that many per message). The
modes alternate within each round so that drift (CPU frequency, other load) hits both. The
table gives requests/s and the p50/p99 of one message's round trip, then the ratio.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aofnode.bench.servers import free_port
from aofnode.client import Client, NodeTimeout

__all__ = ["main"]


def _start(tmp: Path, curve: bool) -> tuple[subprocess.Popen, str, tuple | None]:
    from aofnode.tools.keygen import load_client_curve, write_key_pair
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cmd = [str(Path(sys.executable).parent / "aofnode"), "serve", "--dir", str(tmp / "data"),
           "--bind", endpoint, "--appendfsync", "everysec", "--log-file", str(tmp / "node.log")]
    keys = None
    if curve:
        server_pub, server_secret = write_key_pair(str(tmp / "keys"), "server")
        client_pub, client_secret = write_key_pair(str(tmp / "keys"), "bench")
        (tmp / "allow").mkdir()
        shutil.copy(client_pub, tmp / "allow")
        cmd += ["--curve-secret-key", server_secret, "--curve-allow", str(tmp / "allow")]
        keys = load_client_curve(server_pub, client_secret)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            with Client(endpoint, timeout=0.5, retries=1, loading_timeout=0, curve=keys) as c:
                if c.execute("PING") == "PONG":
                    return proc, endpoint, keys
        except NodeTimeout:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            _stop(proc)
            raise RuntimeError("the node did not answer PING within 30 s")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _worker(endpoint, keys, worker, duration, pipeline, value_size, out) -> None:
    value = b"v" * value_size
    latencies = []
    n = 0
    with Client(endpoint, timeout=10, curve=keys) as c:
        end = time.monotonic() + duration
        while True:
            start = time.monotonic()
            if start >= end:
                break
            if pipeline == 1:
                c.execute("SET", b"key:%02d:%08d" % (worker, n % 100_000), value)
            else:
                c.execute_many([("SET", b"key:%02d:%08d" % (worker, (n + i) % 100_000), value)
                                for i in range(pipeline)])
            latencies.append(time.monotonic() - start)
            n += pipeline
    out.put((n, latencies))


def _measure(endpoint, keys, args) -> dict:
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_worker, args=(endpoint, keys, w, args.duration, args.pipeline,
                                                           args.value_size, out))
             for w in range(args.clients)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    latencies = sorted(x for _, lat in results for x in lat)
    requests = sum(n for n, _ in results)
    return {"requests_per_s": requests / args.duration,
            "p50_us": 1e6 * latencies[len(latencies) // 2],
            "p99_us": 1e6 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aofnode.bench.studies.curve_bench", description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--pipeline", type=int, default=1)
    p.add_argument("--value-size", type=int, default=16)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", default=None, help="write the runs and the summary here")
    args = p.parse_args(argv)
    runs: dict[str, list[dict]] = {"plain": [], "curve": []}
    for r in range(args.rounds):
        order = ("plain", "curve") if r % 2 == 0 else ("curve", "plain")
        for mode in order:
            tmp = Path(tempfile.mkdtemp(prefix=f"aofnode-curve-bench-{mode}-"))
            proc, endpoint, keys = _start(tmp, mode == "curve")
            try:
                runs[mode].append(_measure(endpoint, keys, args))
            finally:
                _stop(proc)
                shutil.rmtree(tmp, ignore_errors=True)
            print(f"round {r + 1} {mode:5}: " + "  ".join(f"{k}={v:,.0f}" for k, v in runs[mode][-1].items()),
                  flush=True)
    summary = {mode: {k: statistics.median(run[k] for run in rs) for k in rs[0]} for mode, rs in runs.items()}
    print(f"\nclients={args.clients} pipeline={args.pipeline} value={args.value_size} B "
          f"duration={args.duration:g} s rounds={args.rounds} (medians over rounds)")
    print(f"{'':8}{'SET/s':>12}{'p50 us':>10}{'p99 us':>10}")
    for mode, s in summary.items():
        print(f"{mode:8}{s['requests_per_s']:>12,.0f}{s['p50_us']:>10,.0f}{s['p99_us']:>10,.0f}")
    plain, curve = summary["plain"], summary["curve"]
    print(f"{'curve/plain':12}{curve['requests_per_s'] / plain['requests_per_s']:>8.3f}"
          f"{curve['p50_us'] / plain['p50_us']:>10.3f}{curve['p99_us'] / plain['p99_us']:>10.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "runs": runs, "summary": summary}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
