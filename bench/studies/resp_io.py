"""The RESP front's I/O model, measured: CPU per request of a RESP server that answers every
command ``+OK`` itself (protocol/resp_request.py's parser, no log actor) in two I/O models, beside
redis-server, all driven by redis-benchmark.

    python -m aofnode.bench.studies.resp_io [--requests N] [--clients C]

Models: ``epoll`` (plain non-blocking sockets in one epoll set: what node/fronts/resp_front.py
does on the actor runtime) and ``uvloop`` (asyncio + uvloop, one Protocol per connection; the
row is skipped when uvloop is not installed). CPU is the server process's user+system time from
/proc/PID/stat over the run, divided by the requests. Needs redis-benchmark (and redis-server
for its row). docs/resp.md has the figures.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import select
import shutil
import socket
import subprocess
import sys
import time

from aofnode.bench.servers import free_port
from aofnode.protocol.resp_request import RequestParser

__all__ = ["main"]

_OK = b"+OK\r\n"


def _serve_epoll(port: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(511)
    listener.setblocking(False)
    ep = select.epoll()
    ep.register(listener.fileno(), select.EPOLLIN)
    conns: dict[int, tuple[socket.socket, RequestParser]] = {}
    while True:
        for fd, _ in ep.poll():
            if fd == listener.fileno():
                while True:
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        break
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conns[sock.fileno()] = (sock, RequestParser())
                    ep.register(sock.fileno(), select.EPOLLIN)
                continue
            sock, parser = conns[fd]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                ep.unregister(fd)
                sock.close()
                del conns[fd]
                continue
            commands = parser.feed(data)
            if commands:
                sock.send(_OK * len(commands))


def _serve_uvloop(port: int) -> None:
    import uvloop

    class _Conn(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport = transport
            self.parser = RequestParser()

        def data_received(self, data: bytes) -> None:
            commands = self.parser.feed(data)
            if commands:
                self.transport.write(_OK * len(commands))

    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(_Conn, "127.0.0.1", port, backlog=511)
        await server.serve_forever()
    uvloop.run(run())


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _bench(port: int, pid: int, pipeline: int, requests: int, clients: int) -> tuple[float, float]:
    before = _cpu_s(pid)
    t = time.monotonic()
    subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-c", str(clients), "-n", str(requests),
                    "-P", str(pipeline), "-q"], check=True, capture_output=True, timeout=600)
    wall = time.monotonic() - t
    return (_cpu_s(pid) - before) / requests * 1e6, requests / wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--serve", choices=["epoll", "uvloop"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:  # the child: one server until killed
        (_serve_epoll if args.serve == "epoll" else _serve_uvloop)(args.port)
        return 0
    if shutil.which("redis-benchmark") is None:
        print("redis-benchmark is not installed", file=sys.stderr)
        return 2
    servers = [("epoll", [sys.executable, "-m", "aofnode.bench.studies.resp_io", "--serve", "epoll", "--port"])]
    try:
        import uvloop  # noqa: F401
        servers.append(("uvloop", [sys.executable, "-m", "aofnode.bench.studies.resp_io",
                                   "--serve", "uvloop", "--port"]))
    except ImportError:
        print("uvloop is not installed: no uvloop row")
    if shutil.which("redis-server"):
        servers.append(("redis-server", ["redis-server", "--save", "", "--appendonly", "no", "--port"]))
    print(f"{'server':<14} {'P=1 us/req':>11} {'P=1 req/s':>11} {'P=16 us/req':>12} {'P=16 req/s':>11}")
    for name, cmd in servers:
        port = free_port()
        proc = subprocess.Popen([*cmd, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_port(port)
            one = _bench(port, proc.pid, 1, args.requests, args.clients)
            sixteen = _bench(port, proc.pid, 16, 4 * args.requests, args.clients)
        finally:
            proc.kill()
            proc.wait()
        print(f"{name:<14} {one[0]:>11.2f} {one[1]:>11,.0f} {sixteen[0]:>12.2f} {sixteen[1]:>11,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
