"""``aofnode-bench-tx``: a MULTI/EXEC of 10 SETs and an EVALSHA doing one SET, aofnode's RESP
front beside redis-server.

Design
------
* Each target is a fresh server (bench/servers.py) with the same ``appendfsync``: aofnode with
  ``--resp-bind``, redis-server with its AOF on. Both are driven over RESP by the same client.
* The client is one process: ``--clients`` connections in one selector loop, each a closed loop
  without pipelining beyond the request itself (a transaction is sent as one write, MULTI, 10
  SETs and EXEC, as redis-py's ``pipeline()`` sends it; its 12 replies end it). Random keys
  among ``--keys``.
* Reported per target and workload: requests per second (a transaction counts once) and the
  server's CPU microseconds per request, per process (bench/procstat.py), which the machine's
  other load disturbs much less than the rate; and the machine's busy share during the run.
"""
from __future__ import annotations

import argparse
import json
import random
import selectors
import socket
import time

from aofnode.bench.procstat import cpu_delta, group_cpu, machine_cpu
from aofnode.bench.resp import ReplyParser, RespClient, RespError, encode_command
from aofnode.bench.servers import free_port, start_aofnode, start_redis

__all__ = ["main"]

SCRIPT = "return redis.call('SET', KEYS[1], ARGV[1])"
STALL_S = 3.0  # no reply at all for this long: the run is reported as failed, not as 0/s


def _request(workload: str, sha: str, keys: int, rng: random.Random) -> tuple[bytes, int]:
    """The bytes of one request and how many replies end it."""
    if workload == "multi10":
        sets = b"".join(encode_command("SET", f"key:{rng.randrange(keys)}", "v" * 16)
                        for _ in range(10))
        return encode_command("MULTI") + sets + encode_command("EXEC"), 12
    return encode_command("EVALSHA", sha, 1, f"key:{rng.randrange(keys)}", "v" * 16), 1


def drive(port: int, workload: str, sha: str, clients: int, seconds: float, keys: int) -> int:
    """Run the closed loops for ``seconds``; the number of requests answered."""
    rng = random.Random(1)
    sel = selectors.DefaultSelector()
    state = {}
    for _ in range(clients):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data, want = _request(workload, sha, keys, rng)
        sock.sendall(data)
        state[sock] = [ReplyParser(), want]
        sel.register(sock, selectors.EVENT_READ)
    done, deadline = 0, time.monotonic() + seconds
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            ready = sel.select(timeout=1.0)
            if ready:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > STALL_S:
                raise RuntimeError(f"{workload}: no reply for {STALL_S} s ({done} answered)")
            for key, _ in ready:
                sock = key.fileobj
                parser, want = state[sock]
                parser.feed(sock.recv(1 << 16))
                for reply in parser.replies():
                    if isinstance(reply, RespError):
                        raise RuntimeError(f"{workload}: {reply.code} {reply.message}")
                    want -= 1
                if want > 0:
                    state[sock][1] = want
                    continue
                done += 1
                data, state[sock][1] = _request(workload, sha, keys, rng)
                sock.sendall(data)
    finally:
        for sock in state:
            sel.unregister(sock)
            sock.close()
    return done


def _wait_resp(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            if RespClient("127.0.0.1", port, timeout=1.0).execute("PING") == "PONG":
                return
        except OSError:
            pass
        if time.monotonic() > end:
            raise RuntimeError(f"no RESP answer on port {port}")
        time.sleep(0.1)


def _start(target: str, appendfsync: str):
    """(server, RESP port). A free port can be taken by someone else before aofnode binds it
    (it then exits 5, and another server answers there): checked through INFO, retried."""
    for _ in range(3):
        if target != "aofnode":
            server = start_redis(appendfsync)
            return server, server.spec.port
        port = free_port()
        server = start_aofnode(appendfsync, ("--resp-bind", f"127.0.0.1:{port}"))
        try:
            _wait_resp(port)
            info = RespClient("127.0.0.1", port).execute("INFO", "server")
            if server.proc.poll() is None and f"process_id:{_log_pid(server)}".encode() in info:
                return server, port
        except (OSError, RuntimeError):
            pass
        server.stop()
    raise RuntimeError("aofnode's RESP port was taken three times")


def _log_pid(server) -> int:
    """The log actor's pid (INFO's process_id), from the node's log."""
    for line in (server.tmp / "node.log").read_text().splitlines():
        if '"role": "log"' in line and '"actor_spawned"' in line:
            return json.loads(line)["child_pid"]
    return -1


def measure(target: str, args) -> list[dict]:
    server, port = _start(target, args.appendfsync)
    rows = []
    with server:
        _wait_resp(port)
        sha = RespClient("127.0.0.1", port).execute("SCRIPT", "LOAD", SCRIPT)
        sha = sha.decode() if isinstance(sha, bytes) else sha
        for workload in ("multi10", "evalsha"):
            drive(port, workload, sha, args.clients, min(1.0, args.seconds), args.keys)  # warm
            cpu0, busy0 = group_cpu(server.proc.pid), machine_cpu()
            started = time.monotonic()
            n = drive(port, workload, sha, args.clients, args.seconds, args.keys)
            elapsed = time.monotonic() - started
            cpu, busy1 = cpu_delta(cpu0, group_cpu(server.proc.pid)), machine_cpu()
            rows.append({
                "target": target, "workload": workload, "requests": n,
                "requests_per_s": round(n / elapsed),
                "server_us_per_request": round(sum(cpu.values()) * 1e6 / max(1, n), 1),
                "us_per_request_by_process": {k: round(v * 1e6 / max(1, n), 1)
                                              for k, v in sorted(cpu.items()) if v},
                "machine_busy": round((busy1[0] - busy0[0]) / max(1e-9, busy1[1] - busy0[1]), 2),
            })
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aofnode-bench-tx", description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--appendfsync", choices=("always", "everysec", "no"), default="everysec")
    p.add_argument("--targets", default="aofnode,redis")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args(argv)
    rows = []
    for target in args.targets.split(","):
        rows += measure(target, args)
    print(f"{'target':<9} {'workload':<9} {'req/s':>8} {'server us/req':>14}  machine busy  per process")
    for r in rows:
        print(f"{r['target']:<9} {r['workload']:<9} {r['requests_per_s']:>8} "
              f"{r['server_us_per_request']:>14}  {r['machine_busy']:>12}  "
              f"{r['us_per_request_by_process']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
