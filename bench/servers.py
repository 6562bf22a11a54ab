"""Start and stop the servers under test: ``aofnode serve`` and ``redis-server``.

Design
------
``start_aofnode`` / ``start_redis`` return a ``Server`` once it answers PING, in a fresh temp
directory on a free loopback port; ``Server.stop()`` (also on ``with`` exit, so on errors and
Ctrl-C) sends SIGTERM, waits up to ``STOP_TIMEOUT_S`` for a clean exit, then SIGKILLs the
process group the server was started in (it holds only the processes the server started: the
aofnode supervisor and its actors) and removes the temp directory.

Both run with the same durability policy (``appendfsync``) so that a comparison is fair;
``settings`` records the exact command line and version for the report.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aofnode.bench.targets import Control, TargetSpec
from aofnode.version import VERSION

__all__ = ["Server", "start_aofnode", "start_redis", "free_port", "redis_command"]

# A clean aofnode shutdown finishes the batches in flight and fsyncs: well under a second here;
# 15 s leaves room for a slow disk before we fall back to SIGKILL.
STOP_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name: str, proc: subprocess.Popen, spec: TargetSpec, tmp: Path,
                 settings: dict) -> None:
        self.name = name
        self.proc = proc
        self.spec = spec
        self.tmp = tmp
        self.settings = settings

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} while starting;"
                                   f" see {self.tmp}")
            try:
                control = Control(self.spec, timeout=0.5)
                try:
                    if control.ping():
                        return
                finally:
                    control.close()
            except (OSError, TimeoutError) as exc:  # refused while starting, or LOADING
                last = exc
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer PING within {timeout}s ({last})")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        self._kill_group()
        if code is None:
            self.proc.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return code

    def _kill_group(self) -> None:
        # start_new_session=True made the server the leader of its own group, so this reaches
        # the actors it started even if the supervisor died first, and nothing else.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def spawn(name: str, cmd: list[str], spec: TargetSpec, tmp: Path, settings: dict,
          preexec_fn=None) -> Server:
    """Start a server process in its own session and wait until it answers (stopped on failure)."""
    stderr = open(tmp / f"{name}.stderr", "wb")
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=preexec_fn)
    finally:
        stderr.close()
    server = Server(name, proc, spec, tmp, settings)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def start_aofnode(appendfsync: str = "everysec", extra: tuple[str, ...] = ()) -> Server:
    tmp = Path(tempfile.mkdtemp(prefix="aofnode-bench-"))
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    exe = str(Path(sys.executable).parent / "aofnode")
    cmd = [exe, "serve", "--dir", str(tmp / "data"), "--bind", endpoint,
           "--appendfsync", appendfsync, "--log-file", str(tmp / "node.log"), *extra]
    settings = {"command": cmd, "appendfsync": appendfsync, "version": VERSION}
    return spawn("aofnode", cmd, TargetSpec("aofnode", endpoint=endpoint), tmp, settings)


def start_redis(appendfsync: str = "everysec", exe: str = "redis-server") -> Server:
    path = shutil.which(exe)
    if path is None:
        raise RuntimeError(f"{exe} not found on PATH")
    tmp = Path(tempfile.mkdtemp(prefix="redis-bench-"))
    port = free_port()
    cmd = redis_command(path, port, tmp, appendfsync)
    version = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    settings = {"command": cmd, "appendfsync": appendfsync, "version": version}
    return spawn("redis", cmd, TargetSpec("redis", host="127.0.0.1", port=port), tmp, settings)


def redis_command(exe: str, port: int, directory: Path, appendfsync: str,
                  extra: tuple[str, ...] = ()) -> list[str]:
    """The redis-server command line every benchmark uses: AOF on with ``appendfsync``, no RDB
    snapshots, loopback only, in the foreground, logging to ``directory/redis.log``."""
    return [exe, "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes",
            "--appendonly", "yes", "--appendfsync", appendfsync, "--save", "",
            "--dir", str(directory), "--daemonize", "no",
            "--logfile", str(Path(directory) / "redis.log"), *extra]
