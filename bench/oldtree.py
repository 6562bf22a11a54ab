"""An older source tree's node, driven by that tree's own load generator: the "before" column.

Usage
-----
::

    git worktree add /tmp/before f97a387
    aofnode-bench-matrix --before /tmp/before

Design
------
The wire protocol changed since older trees (protocol 2 puts the db in every header), so the
current generator cannot talk to an old node; each tree drives its own node with its own
``aofnode-bench``, the same flags and the same interpreter and packages (this venv), with
``PYTHONPATH`` pointing at the old tree so its modules shadow the current ones in every process
it starts. Older generators do not read server CPU, so it is read here, in the same way:

1. start the old node (``python -c 'from node.cli import main' serve ...``, or
   ``node.tools.cli`` where the tree has it) in a session of its own, in a temp dir, on a free
   port, and wait until it answers PING through the old tree's own client (bounded);
2. read the CPU of its process group, of the machine and of our reaped children;
3. run the old ``aofnode-bench --target aofnode --endpoint ...`` with the shape's flags;
4. read them again; stop the node (SIGTERM, then SIGKILL of its group) and remove the temp dir;
5. return the old generator's result with the same CPU fields as bench/cli.py adds.

The window of step 2-4 also holds the old generator's start (its workers connect): the server
is idle then, and its CPU is divided by every reply, as for the current tree.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aofnode.bench import procstat
from aofnode.bench.servers import Server, free_port
from aofnode.bench.targets import TargetSpec

__all__ = ["run_shape"]

BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 30.0
# Step 1's readiness probe, run inside the old tree: its own client, so its own protocol.
_READY = """
import sys, time
from bench.targets import Control, TargetSpec
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        c = Control(TargetSpec("aofnode", endpoint=sys.argv[1]), timeout=0.5)
        try:
            if c.ping():
                sys.exit(0)
        finally:
            c.close()
    except Exception:
        pass
    time.sleep(0.05)
sys.exit(1)
"""


def _namespaced(tree: Path) -> bool:
    """A tree whose folders install as the ``aofnode`` package (node/roles.py is its marker)."""
    return (tree / "node" / "roles.py").exists()


def _entry(tree: Path) -> str:
    if _namespaced(tree):
        return "aofnode.tools.cli"
    return "node.tools.cli" if (tree / "node" / "tools" / "cli.py").exists() else "node.cli"


def _python_path(tree: Path, tmp: Path) -> str:
    """What PYTHONPATH makes the old tree's modules shadow this venv's in every process.

    An older tree's top-level ``node``/``protocol``/``bench`` shadow by name. A namespaced tree
    needs an ``aofnode`` package of its own ahead of this venv's editable finder: a shim whose
    ``__path__`` is the tree's node/ and then the shim itself, where protocol/ and bench/ are
    links to the tree's folders.
    """
    if not _namespaced(tree):
        return str(tree)
    shim = tmp / "shim" / "aofnode"
    shim.mkdir(parents=True)
    for name in ("protocol", "bench"):
        (shim / name).symlink_to(tree / name, target_is_directory=True)
    init = (tree / "node" / "__init__.py").read_text()
    (shim / "__init__.py").write_text(f"__path__ = [{str(tree / 'node')!r}, {str(shim)!r}]\n" + init)
    return str(tmp / "shim")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_shape(tree: Path, appendfsync: str, clients: int, pipeline: int, duration: float,
              warmup: float) -> dict:
    tree = Path(tree).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="aofnode-before-"))
    env = dict(os.environ, PYTHONPATH=_python_path(tree, tmp))
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-c", f"import sys; from {_entry(tree)} import main; sys.exit(main())",
           "serve", "--dir", str(tmp / "data"), "--bind", endpoint, "--appendfsync", appendfsync,
           "--log-file", str(tmp / "node.log")]
    with open(tmp / "aofnode.stderr", "wb") as err:  # step 1
        proc = subprocess.Popen(cmd, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server("before", proc, TargetSpec("aofnode", endpoint=endpoint), tmp,
                    {"command": cmd, "tree": str(tree)})
    with server:
        ready_code = _READY.replace("from bench.", "from aofnode.bench." if _namespaced(tree) else "from bench.")
        ready = subprocess.run([sys.executable, "-c", ready_code, endpoint, str(READY_TIMEOUT_S)],
                               env=env, cwd=tree, timeout=READY_TIMEOUT_S + 30)
        if ready.returncode != 0:
            raise RuntimeError(f"the node of {tree} did not answer PING; see {tmp}")
        out = tmp / "run.json"
        bench = [str(BIN / "aofnode-bench"), "--target", "aofnode", "--endpoint", endpoint,
                 "--clients", str(clients), "--pipeline", str(pipeline), "--ratio", "1:0",
                 "--duration", str(duration), "--warmup", str(warmup), "--json", str(out)]
        cpu0, machine0, kids0 = procstat.group_cpu(proc.pid), procstat.machine_cpu(), _children_cpu()
        t0 = time.monotonic()  # step 2
        run = subprocess.run(bench, env=env, cwd=tree, stdout=subprocess.DEVNULL,  # step 3
                             stderr=subprocess.PIPE, text=True,
                             timeout=(duration + warmup) * 4 + 120)
        wall = time.monotonic() - t0
        cpu = procstat.cpu_delta(cpu0, procstat.group_cpu(proc.pid))  # step 4
        machine1, kids = procstat.machine_cpu(), _children_cpu() - kids0
        if run.returncode != 0:
            raise RuntimeError(f"{' '.join(bench)} (in {tree}) exited {run.returncode}: "
                               f"{run.stderr[-2000:]}")
        doc = json.loads(out.read_text())
    result = doc["targets"]["aofnode"]  # step 5
    n = max(1, result["replied"])
    result["server_cpu_s"] = cpu
    result["server_cpu_us_per_request"] = round(sum(cpu.values()) * 1e6 / n, 2)
    result["server_cpu_us_per_request_by_process"] = {k: round(v * 1e6 / n, 2)
                                                      for k, v in sorted(cpu.items())}
    if "generator_cpu_us_per_request" not in result:  # the workers' CPU, as bench/run.py has it
        gen_s = result["generator_cpu_pct"] / 100 * result["wall_s"]
        result["generator_cpu_s"] = round(gen_s, 4)
        result["generator_cpu_us_per_request"] = round(gen_s * 1e6 / n, 2)
    busy = (machine1[0] - machine0[0]) / wall
    result["machine_busy_cores"] = round(busy, 2)
    result["other_cpu_cores"] = round(max(0.0, busy - (sum(cpu.values()) + kids) / wall), 2)
    result["tree"] = str(tree)
    return result
