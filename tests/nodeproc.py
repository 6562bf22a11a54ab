"""Start a real ``aofnode serve`` in a temporary directory on a free port, for integration tests."""
from __future__ import annotations

import json
import shutil
import socket
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from aofnode.client import Client, CommandError, NodeTimeout

AOFNODE = str(Path(sys.executable).parent / "aofnode")


# Ports for the servers tests start. Not the kernel's pick (bind to port 0): that comes from the
# ephemeral range, where it can go, between our bind test and the server's own bind, to another
# pytest-xdist worker's server (the kernel hands each worker the same free ports) or to any
# outgoing connection's source port. Instead each worker (tests run in parallel, README) takes
# ports from its own block below the ephemeral range, so two workers of one run never pick the
# same port and no connection borrows one. A port is handed out only if a bind to it succeeds
# now (another program, or another run's worker, may hold it), and the cursor starts at a random
# place in the block so two runs at once (two checkouts) rarely walk the same ports together.
PORTS_LOW = 10000


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _worker_block() -> range:
    """This process's ports: one equal share of [PORTS_LOW, ephemeral low) per xdist worker."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw3", or unset when not under xdist
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), index + 1)
    high = max(_ephemeral_low(), PORTS_LOW + count * 64)
    size = (high - PORTS_LOW) // count
    return range(PORTS_LOW + index * size, PORTS_LOW + (index + 1) * size)


_block: range | None = None
_cursor = 0


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and that no other test worker will pick (see
    the comment above). Consecutive calls return different ports, until the block wraps."""
    global _block, _cursor
    if _block is None:
        _block = _worker_block()
        _cursor = random.SystemRandom().randrange(len(_block))  # not the seeded global generator
    for _ in range(len(_block)):
        port = _block[_cursor]
        _cursor = (_cursor + 1) % len(_block)
        if _bindable(port):
            return port
    raise RuntimeError(f"no free port in {_block}")


class RedisServer:
    """A reference redis-server on a free loopback port in ``root``, AOF on, for differential tests."""

    def __init__(self, root: Path, appendfsync: str = "everysec") -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not on PATH")
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--appendonly", "yes",
             "--appendfsync", appendfsync, "--save", "", "--dir", str(root), "--daemonize", "no",
             "--logfile", str(root / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, timeout=15, what="redis-server to answer PING")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _password_of(extra: tuple) -> bytes | None:
    args = [str(a) for a in extra]
    for i, arg in enumerate(args[:-1]):
        if arg == "--requirepass":
            return os.fsencode(args[i + 1])
        if arg == "--requirepass-file":
            try:
                return Path(args[i + 1]).read_bytes().split(b"\n", 1)[0]
            except OSError:
                return None
    return None


class Node:
    def __init__(self, root: Path, appendfsync: str = "always", extra: tuple = (), env: dict | None = None,
                 log_via_pipe: bool = False):
        self.root = Path(root)
        self.dir = self.root / "data"
        self.log_file = self.root / "node.log"
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.appendfsync = appendfsync
        self.extra = tuple(extra)
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        # With log_via_pipe the node logs to stderr, a pipe that a thread copies to log_file:
        # for tests that put a file-size limit on an actor, which would also stop a log file.
        self.log_via_pipe = log_via_pipe
        self.stderr_path = self.root / "stderr.txt"
        self.password = _password_of(self.extra)  # a node with a password serves no one else


    @property
    def aof_path(self) -> Path:
        return self.dir / "appendonly.aof"

    def start(self, wait: bool = True) -> "Node":
        cmd = [AOFNODE, "serve", "--dir", str(self.dir), "--bind", self.endpoint,
               "--appendfsync", self.appendfsync, *self.extra]
        if self.log_via_pipe:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         env={**os.environ, **self.env})
            threading.Thread(target=self._copy_stderr, args=(self.proc.stderr,), daemon=True).start()
        else:
            cmd += ["--log-file", str(self.log_file)]
            self._stderr = open(self.stderr_path, "ab")
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                         env={**os.environ, **self.env})
        if wait:
            self.wait_ready()
        return self

    def _copy_stderr(self, pipe) -> None:
        with open(self.log_file, "ab", buffering=0) as out:
            for line in pipe:
                out.write(line)

    def client(self, timeout: float = 5.0, retries: int = 3) -> Client:
        return Client(self.endpoint, timeout=timeout, retries=retries, password=self.password)

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"aofnode exited with {self.proc.returncode}: {self.stderr_path.read_text()}")
            try:
                with Client(self.endpoint, timeout=0.5, retries=1, password=self.password) as c:
                    return c.execute("PING") == "PONG"
            except (CommandError, NodeTimeout):
                return False
        wait_for(ready, timeout, what="node ready")

    def events(self, name: str | None = None) -> list[dict]:
        out = []
        if not self.log_file.exists():
            return out
        for line in self.log_file.read_text().splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if name is None or ev.get("event") == name:
                out.append(ev)
        return out

    def actor_pids(self) -> dict[str, int]:
        """The current pid of each actor (from the supervisor's actor_spawned events)."""
        pids = {}
        for ev in self.events("actor_spawned"):
            if ev.get("pid") == self.proc.pid:
                pids[ev["role"]] = ev["child_pid"]
        return pids

    def all_pids(self) -> list[int]:
        pids = {ev["child_pid"] for ev in self.events("actor_spawned")}
        if self.proc is not None:
            pids.add(self.proc.pid)
        return sorted(pids)

    def info(self, section: str = "persistence") -> dict:
        with self.client() as c:
            return c.execute("INFO", section)[section]

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            self.kill_all()
        return code

    def kill_all(self) -> None:
        """Kill -9 every process this node ever started, and reap the supervisor."""
        for pid in self.all_pids():
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        wait_for(lambda: not any(pid_alive(p) for p in self.all_pids()), 10, what="node processes gone")
