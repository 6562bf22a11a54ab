"""Instructions (callgrind) or system calls (strace) per request in the log actor and the RESP
front, for any source tree, counts that the machine's load does not change.

Usage
-----
::

    python -m aofnode.bench.studies.actor_counts [--tree TREE] [--tool callgrind|strace]
        [--test incr] [--requests 300,1300] [--clients 1] [--pipeline 1]

Design
------
1. Lay ``TREE`` (default: this checkout) out as the ``aofnode`` package through a shim, as
   bench/oldtree.py does, so an older tree runs with this interpreter and its packages.
2. Start ``aofnode serve --resp-bind`` with the supervisor's actor command (``Supervisor``'s
   ``command``) replaced by a wrapper that runs the log and resp actors under the tool (valgrind
   has no ``pidfd_open``, so the supervisor itself runs natively; ``strace -D`` keeps the
   supervisor the actor's parent, which the run directory's peer check asks). In those two
   actors every ``tick_interval`` becomes 30 s: a run lasts minutes under callgrind, and ten
   ticks a second would otherwise count as per-request work.
3. Wait for PONG (bounded), run ``redis-benchmark -c C -P P -n N -t TEST``, stop the node
   (SIGTERM: the actors exit cleanly and the tools write their counts).
4. Do it for both request counts; print, per actor, (count at the larger N - count at the
   smaller) / (difference of N): start-up and shutdown cancel out.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aofnode.bench.servers import free_port

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 900.0  # python's start-up and imports under callgrind on a loaded machine
_SITECUSTOMIZE = """
import aofnode.runtime.actor as _rt
_init = _rt.Runtime.__init__
def _slow_ticks(self, actor, *args, **kwargs):
    if getattr(actor, "tick_interval", None) is not None:
        actor.tick_interval = 30.0
    _init(self, actor, *args, **kwargs)
_rt.Runtime.__init__ = _slow_ticks
"""
_WRAPPER = """#!/bin/sh
case "$1" in
  log|resp) PYTHONPATH={ticks}:$PYTHONPATH exec {tool} {python} -m aofnode.roles "$@" 2>>{out}/tool.$1.err ;;
  *) exec {python} -m aofnode.roles "$@" ;;
esac
"""
_SERVE = """
import sys, aofnode.supervisor as s
init = s.Supervisor.__init__
def with_wrapper(self, *args, **kwargs):
    kwargs["command"] = [sys.argv[1]]
    init(self, *args, **kwargs)
s.Supervisor.__init__ = with_wrapper
from aofnode.tools.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _shim(tree: Path, tmp: Path) -> Path:
    """Step 1: ``tmp/shim/aofnode`` with ``__path__`` = the tree's node/ then itself."""
    pkg = tmp / "shim" / "aofnode"
    pkg.mkdir(parents=True)
    for name in ("protocol", "bench"):
        (pkg / name).symlink_to(tree / name, target_is_directory=True)
    init = (tree / "node" / "__init__.py").read_text()
    (pkg / "__init__.py").write_text(f"__path__ = [{str(tree / 'node')!r}, {str(pkg)!r}]\n" + init)
    return tmp / "shim"


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _counts(out: Path, tool: str) -> dict[str, int]:
    """Per role: callgrind's total instructions, or strace's total calls."""
    found: dict[str, int] = {}
    for path in out.iterdir():
        role = path.name.split(".")[1] if path.name.count(".") >= 1 else ""
        if tool == "callgrind" and path.name.startswith("cg."):
            text = path.read_text(errors="replace")
            m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
            if m:  # a restarted actor leaves two files: both count
                found[role] = found.get(role, 0) + int(m.group(1))
        elif tool == "strace" and path.name.startswith("st."):
            m = re.search(r"^\s*100\.00\s+[\d.]+\s+\d*\s*(\d+)\s+\d*\s*total", path.read_text(), re.M)
            if m:
                found[role] = int(m.group(1))
    return found


def _run(tree: Path, tool: str, test: str, n: int, clients: int, pipeline: int) -> dict[str, int]:
    tmp = Path(tempfile.mkdtemp(prefix="aofnode-counts-"))
    try:
        pythonpath = _shim(tree, tmp)
        ticks = tmp / "ticks"
        ticks.mkdir()
        (ticks / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        out = tmp / "out"
        out.mkdir()
        command = (f"valgrind --tool=callgrind --callgrind-out-file={out}/cg.$1.%p" if tool == "callgrind"
                   else f"strace -D -f -c -o {out}/st.$1")
        wrapper = tmp / "actor.sh"
        wrapper.write_text(_WRAPPER.format(ticks=ticks, tool=command, python=sys.executable, out=out))
        wrapper.chmod(0o700)
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(pythonpath), PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
        serve = [sys.executable, "-c", _SERVE, str(wrapper), "serve", "--dir", str(tmp / "data"),
                 "--bind", f"tcp://127.0.0.1:{free_port()}", "--resp-bind", f"127.0.0.1:{port}",
                 "--log-file", str(tmp / "node.log"), "--watchdog-timeout", "3600"]
        node = subprocess.Popen(serve, env=env, cwd=tree, stdin=subprocess.DEVNULL,  # step 2
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S  # step 3
            while not _pong(port):
                if node.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the node of {tree} did not answer PING; see {tmp}/node.log")
                time.sleep(1.0)
            subprocess.run(["redis-benchmark", "-p", str(port), "-c", str(clients), "-P", str(pipeline),
                            "-n", str(n), "-r", "100000", "-d", "100", "-t", test, "-q"],
                           check=True, stdout=subprocess.DEVNULL, timeout=READY_TIMEOUT_S * 4)
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=300)
        return _counts(out, tool)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", type=Path, default=ROOT)
    ap.add_argument("--tool", choices=("callgrind", "strace"), default="callgrind")
    ap.add_argument("--test", default="incr")
    ap.add_argument("--requests", default="300,1300", help="two request counts, smaller first")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--pipeline", type=int, default=1)
    args = ap.parse_args(argv)
    small, large = (int(x) for x in args.requests.split(","))
    tree = args.tree.resolve()
    a = _run(tree, args.tool, args.test, small, args.clients, args.pipeline)  # step 4
    b = _run(tree, args.tool, args.test, large, args.clients, args.pipeline)
    unit = "instructions" if args.tool == "callgrind" else "system calls"
    for role in sorted(set(a) & set(b)):
        print(f"{tree} {role}: {(b[role] - a[role]) / (large - small):,.1f} {unit} per {args.test.upper()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
