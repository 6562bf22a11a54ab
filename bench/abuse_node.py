"""The servers an abuse scenario runs against, and what the scenarios read from them.

Design
------
``Target`` is one running server as the scenarios see it: its address, the pid at the top of its
process tree (for the RSS sampler and SIGSTOP), its log file, INFO as a flat dict, and the log
events since the scenario began. ``start_node`` starts ``aofnode serve`` the way
``aofnode.bench.servers.start_aofnode`` does (fresh temp dir, free port, its own session so that stop
reaches every actor), plus two things the abuse needs: extra options per scenario and an
``RLIMIT_NOFILE`` for the node (finding 9 is about the common 1024-descriptor limit).
A server given by ``--endpoint`` is a ``Target`` without a ``Server`` to stop; its pids come
from INFO (``supervisor_pid``), so they are right only when it runs on this machine.
"""
from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aofnode.bench import resp
from aofnode.bench.servers import Server, free_port, redis_command, spawn
from aofnode.bench.targets import TargetSpec
from aofnode.version import VERSION
from aofnode.client import Client, CommandError

__all__ = ["Target", "start_node", "start_redis", "node_target", "MIB"]

MIB = 1 << 20


@dataclass
class Target:
    kind: str  # "aofnode" | "redis"
    spec: TargetSpec
    root_pid: int | None
    log_path: Path | None
    server: Server | None = None
    settings: dict = field(default_factory=dict)
    _log_offset: int = 0

    @property
    def probe_spec(self) -> dict:
        s = self.spec
        return {"kind": s.kind, "endpoint": s.endpoint, "host": s.host, "port": s.port}

    def client(self, timeout: float = 10.0):
        if self.kind == "aofnode":
            return Client(self.spec.endpoint, timeout=timeout, retries=1)
        return resp.RespClient(self.spec.host, self.spec.port, timeout=timeout)

    def info(self) -> dict[str, Any]:
        """Every INFO field of every section, flat (aofnode: typed values; redis: strings)."""
        with self.client() as c:
            reply = c.execute("INFO")
        if self.kind == "aofnode":
            return {k: v for section in reply.values() for k, v in section.items()}
        return resp.parse_info(reply)

    def mark_log(self) -> None:
        """Later ``events`` calls see only the lines written after this call."""
        if self.log_path is not None and self.log_path.exists():
            self._log_offset = self.log_path.stat().st_size

    def events(self, name: str) -> list[dict]:
        if self.kind != "aofnode" or self.log_path is None or not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            lines = f.read().splitlines()
        out = []
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == name:
                out.append(ev)
        return out

    def redis_log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def _limit_nofile(n: int | None):
    if n is None:
        return None

    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


def start_node(extra: tuple[str, ...] = (), nofile: int | None = None,
               appendfsync: str = "everysec") -> Target:
    """``aofnode serve`` in a fresh temp dir; ``nofile`` sets its soft and hard descriptor limit."""
    tmp = Path(tempfile.mkdtemp(prefix="aofnode-abuse-"))
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    exe = str(Path(sys.executable).parent / "aofnode")
    log = tmp / "node.log"
    cmd = [exe, "serve", "--dir", str(tmp / "data"), "--bind", endpoint, "--appendfsync", appendfsync,
           "--log-file", str(log), *extra]
    settings = {"command": cmd, "version": VERSION, "nofile": nofile}
    server = spawn("aofnode", cmd, TargetSpec("aofnode", endpoint=endpoint), tmp, settings,
                   preexec_fn=_limit_nofile(nofile))
    return Target("aofnode", server.spec, server.proc.pid, log, server, settings)


def node_target(endpoint: str, log_path: str | None) -> Target:
    """A node started by someone else; pids from INFO, so RSS is sampled only on this host."""
    with Client(endpoint, timeout=5, retries=1) as c:
        try:
            server = c.execute("INFO", "server")["server"]
        except CommandError as exc:
            raise RuntimeError(f"INFO failed on {endpoint}: {exc}") from None
    root = server.get("supervisor_pid")
    if root is not None and not Path(f"/proc/{root}").exists():
        root = None
    return Target("aofnode", TargetSpec("aofnode", endpoint=endpoint), root,
                  Path(log_path) if log_path else None, None, {"endpoint": endpoint})


# The output buffer limit of aofnode's default --client-output-limit, for a like-for-like slow
# reader (redis's default for normal clients is no limit at all).
REDIS_OUTPUT_LIMIT = ("--client-output-buffer-limit", "normal 64mb 64mb 0")


def start_redis(exe: str = "redis-server") -> Target:
    path = shutil.which(exe)
    if path is None:
        raise RuntimeError(f"{exe} not found on PATH")
    tmp = Path(tempfile.mkdtemp(prefix="redis-abuse-"))
    port = free_port()
    cmd = redis_command(path, port, tmp, "everysec", REDIS_OUTPUT_LIMIT)
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    settings = {"command": cmd, "version": version}
    spec = TargetSpec("redis", host="127.0.0.1", port=port)
    server = spawn("redis", cmd, spec, tmp, settings)
    return Target("redis", spec, server.proc.pid, tmp / "redis.log", server, settings)
