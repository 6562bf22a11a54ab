"""Where one request's wake-ups and CPU go: per thread of every server process, per request.

    python -m aofnode.bench.studies.wakeups [--appendfsync P] [--clients C] [--pipeline D]
                                            [--seconds S] [--strace]

Starts a node as ``aofnode-bench --start-node`` does (bench/servers.py), drives it with
``aofnode-bench`` (SET only, closed loop) and, over a window in the middle of the load, reads
for every thread of the supervisor's process group: CPU (utime + stime, /proc/PID/task/TID/stat)
and voluntary and involuntary context switches (``/proc/.../status``). Each is divided by the
requests the log actor ran in the window (INFO ``total_commands_processed``, read before and
after). A voluntary switch is a wake-up (the thread slept: poll, a lock); an involuntary one is
a preemption, mostly by a thread it just woke. With ``--strace``, a second window counts the
system calls of the front and the log actor (``strace -f -c``; it slows them, the counts per
request stay right). docs/benchmarks.md, "Wake-ups per request", has the figures.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from aofnode.bench.procstat import _name
from aofnode.bench.servers import start_aofnode
from aofnode.client import Client

__all__ = ["main"]

_TICK = os.sysconf("SC_CLK_TCK")


def _threads(pgid: int) -> dict[tuple[str, str], tuple[float, int, int]]:
    """(process role, thread name) -> (CPU s, voluntary, involuntary switches), summed."""
    out: dict[tuple[str, str], tuple[float, int, int]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
            if int(rest.split()[2]) != pgid:
                continue
            role = _name(pid, head.split("(", 1)[1])
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    thead, trest = f.read().rsplit(")", 1)
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    status = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            fields = trest.split()
            cpu = (int(fields[11]) + int(fields[12])) / _TICK
            name = "main" if tid == pid else thead.split("(", 1)[1]
            key = (role, name)
            c, v, n = out.get(key, (0.0, 0, 0))
            out[key] = (c + cpu, v + int(status["voluntary_ctxt_switches"]),
                        n + int(status["nonvoluntary_ctxt_switches"]))
    return out


def _processed(client: Client) -> int:
    return int(client.execute("INFO", "stats")["stats"]["total_commands_processed"])


def _pids(pgid: int) -> dict[str, int]:
    out = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    head, rest = f.read().rsplit(")", 1)
            except OSError:
                continue
            if int(rest.split()[2]) == pgid:
                out[_name(pid, head.split("(", 1)[1])] = int(pid)
    return out


def _strace(pids: dict[str, int], seconds: float) -> dict[str, dict[str, int]]:
    """System calls of every thread of each process, counted together over ``seconds``:
    role -> {name: calls}."""
    paths = {role: Path(f"/tmp/aofnode-wakeups-strace-{pid}.txt") for role, pid in pids.items()}
    procs = [subprocess.Popen(["timeout", "-s", "INT", str(seconds), "strace", "-f", "-c", "-p",
                               str(pid), "-o", str(paths[role])], stderr=subprocess.DEVNULL)
             for role, pid in pids.items()]
    for proc in procs:
        proc.wait()
    out: dict[str, dict[str, int]] = {}
    for role, path in paths.items():
        calls = out[role] = {}
        for line in path.read_text().splitlines()[2:]:
            parts = line.split()
            if len(parts) >= 5 and parts[-1] != "total" and parts[3].isdigit():
                calls[parts[-1]] = int(parts[3])
        path.unlink()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aofnode.bench.studies.wakeups")
    p.add_argument("--appendfsync", default="everysec", choices=["always", "everysec", "no"])
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--pipeline", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5.0, help="the measured window")
    p.add_argument("--strace", action="store_true", help="also count system calls per request")
    args = p.parse_args(argv)
    bench = str(Path(sys.executable).parent / "aofnode-bench")
    with start_aofnode(args.appendfsync) as server:
        endpoint = server.spec.endpoint
        load_s = args.seconds * (2 if args.strace else 1) + 4
        load = subprocess.Popen([bench, "--endpoint", endpoint, "--clients", str(args.clients),
                                 "--pipeline", str(args.pipeline), "--procs", "1", "--ratio", "1:0",
                                 "--duration", str(load_s), "--warmup", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = Client(endpoint)
        try:
            time.sleep(2.5)
            n0, t0 = _processed(client), _threads(server.proc.pid)
            time.sleep(args.seconds)
            n1, t1 = _processed(client), _threads(server.proc.pid)
            requests = max(1, n1 - n0 - 2)  # the two INFOs are commands too
            print(f"{args.appendfsync}, {args.clients} x {args.pipeline}: {requests} requests in "
                  f"{args.seconds:g} s ({requests / args.seconds:,.0f}/s)")
            print("| process | thread | CPU µs/req | voluntary switches/req | involuntary/req |")
            print("|---|---|---|---|---|")
            for key in sorted(t1):
                c0, v0, i0 = t0.get(key, (0.0, 0, 0))
                c1, v1, i1 = t1[key]
                if c1 - c0 or v1 - v0:
                    print(f"| {key[0]} | {key[1]} | {(c1 - c0) * 1e6 / requests:.1f} | "
                          f"{(v1 - v0) / requests:.2f} | {(i1 - i0) / requests:.2f} |")
            if args.strace:
                if shutil.which("strace") is None:
                    print("strace not found: no system call counts")
                else:
                    pids = {role: pid for role, pid in _pids(server.proc.pid).items()
                            if role in ("front", "log")}
                    n0 = _processed(client)
                    counts = _strace(pids, args.seconds)
                    requests = max(1, _processed(client) - n0 - 1)
                    for role, calls in counts.items():
                        total = sum(calls.values()) / requests
                        top = ", ".join(f"{name} {n / requests:.2f}" for name, n in
                                        sorted(calls.items(), key=lambda kv: -kv[1]) if n / requests >= 0.05)
                        print(f"{role}: {total:.1f} system calls/req ({top})")
        finally:
            client.close()
            load.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
