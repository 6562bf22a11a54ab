"""A copy of this tree with its hot modules compiled by mypyc, to measure beside the pure tree.

Usage
-----
::

    python -m aofnode.bench.studies.mypyc_tree OUT [--modules default|all-tried]
    PYTHONPATH=OUT/build python -m aofnode.bench.studies.log_cycle --command SET   # compiled
    aofnode-bench-matrix --before OUT/tree ...                                      # pure vs compiled

Design
------
A study, not a build: the project does not ship compiled modules (docs/benchmarks.md,
"Compiling the hot modules", says why). It needs mypy (which carries mypyc) and a C compiler.

1. Copy node/, protocol/ and bench/ into ``OUT/build/aofnode`` (the installed layout mypyc's
   module names need: ``aofnode.protocol.server``...).
2. Restructure what mypyc cannot take, in the copy only (``MARKS``): ``Message``'s
   slot-descriptor constructor (mypyc's native ``Message`` has its own fast constructor),
   ``Keyspace.lookup_write`` as a method rather than an alias; and mark the classes mypyc
   cannot compile as native classes: ``StringCommands`` stays a plain
   Python class whose methods are compiled (``native_class=False``: it uses the executor's
   attributes, which no mixin declares, and ``Executor`` has eighteen bases); ``Actor`` and
   ``Runtime`` accept interpreted subclasses (every actor but the log actor, and the tests').
3. Run mypyc on ``MODULES`` with the project's mypy settings (errors of the fronts' modules
   ignored: their optional attributes are read as set), in ``OUT/build``.
4. Lay the result out as a source tree at ``OUT/tree`` (node/, protocol/, bench/ with the
   extension modules beside the sources) for bench/oldtree.py's ``--before``, and copy the
   shared library of the compiled group (``<hash>__mypyc``, a top-level module every compiled
   module imports) into this interpreter's site-packages, where that tree's processes find it.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
# Where the log actor's and the RESP front's CPU goes (cProfile of bench/studies/log_cycle.py
# and of the resp actor under redis-benchmark), among the modules mypyc takes once step 2's
# marks are in: the rest (store/'s other mixins, executor.py, the RESP front's
# resp_front/resp_route/core) needs restructuring first.
MODULES = [
    "protocol/server.py", "protocol/resp_reply.py", "protocol/resp_request.py",
    "log/replies.py", "log/work.py", "log/introspect.py", "log/actor.py",
    "store/keyspace.py", "store/strings.py", "runtime/actor.py", "runtime/channel.py",
    "fronts/log_link.py",
]
MYPY_INI = """[mypy]
python_version = 3.11
warn_return_any = False
ignore_missing_imports = True

[mypy-aofnode.store.executor,aofnode.store.keyspace,aofnode.fronts.*,aofnode.runtime.channel]
ignore_errors = True
"""
# Step 2: (file, text, replacement).
MARKS = [
    ("protocol/server.py", "_object_new = object.__new__\n", "_new_message = Message\n_object_new = object.__new__\n"),
    ("protocol/server.py", "def _new_message(", "def _new_message_by_slots("),
    ("protocol/server.py", "_set_is_batch = Message.is_batch.__set__  # type: ignore[attr-defined, misc]\n"
     "_set_items = Message.items.__set__  # type: ignore[attr-defined, misc]\n"
     "_set_db = Message.db.__set__  # type: ignore[attr-defined, misc]\n"
     "_set_resp = Message.resp.__set__  # type: ignore[attr-defined, misc]\n",
     "_set_is_batch: Any = None\n_set_items: Any = None\n_set_db: Any = None\n_set_resp: Any = None\n"),
    ("store/keyspace.py", "    lookup_write = lookup\n",
     "    def lookup_write(self, db: int, key: bytes) -> Value | None:\n        return self.lookup(db, key)\n"),
    ("store/strings.py", "class StringCommands", "@mypyc_attr(native_class=False)\nclass StringCommands"),
    ("runtime/actor.py", "class Actor:", "@mypyc_attr(allow_interpreted_subclasses=True)\nclass Actor:"),
    ("runtime/actor.py", "class Runtime", "@mypyc_attr(allow_interpreted_subclasses=True)\nclass Runtime"),
    ("runtime/actor.py", "self._next_tick = self.clock() + self.actor.tick_interval\n",
     "self._next_tick = self.clock() + (self.actor.tick_interval or 0.0)\n"),
    ("log/actor.py", "    tick_interval = CRON_INTERVAL_S", "    tick_interval: float | None = CRON_INTERVAL_S"),
]


def _mark(pkg: Path) -> None:
    for rel, old, new in MARKS:
        path = pkg / rel
        text = path.read_text()
        if old not in text:
            raise SystemExit(f"{rel}: {old!r} not found; update MARKS")
        text = text.replace(old, new)
        if "mypyc_attr" in new and "from mypy_extensions" not in text:
            text = text.replace("from __future__ import annotations\n",
                                "from __future__ import annotations\n\nfrom mypy_extensions import mypyc_attr\n", 1)
        path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    out = args.out.resolve()
    build, pkg, tree = out / "build", out / "build" / "aofnode", out / "tree"
    shutil.rmtree(out, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.so")
    shutil.copytree(ROOT / "node", pkg, ignore=ignore)  # step 1
    shutil.copytree(ROOT / "protocol", pkg / "protocol", ignore=ignore)
    shutil.copytree(ROOT / "bench", pkg / "bench", ignore=ignore)
    _mark(pkg)  # step 2
    (build / "mypy.ini").write_text(MYPY_INI)
    mypyc = Path(sys.executable).parent / "mypyc"
    subprocess.run([str(mypyc), "--config-file", "mypy.ini", *[f"aofnode/{m}" for m in MODULES]],
                   cwd=build, check=True)  # step 3
    shutil.copytree(pkg, tree / "node", ignore=shutil.ignore_patterns("protocol", "bench", "__pycache__"))
    shutil.copytree(pkg / "protocol", tree / "protocol", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(pkg / "bench", tree / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree)
    for lib in glob.glob(str(build / "*__mypyc*.so")):  # step 4
        # A new file renamed over the old one: a running compiled node keeps its mapping.
        target = os.path.join(site.getsitepackages()[0], os.path.basename(lib))
        shutil.copy(lib, target + ".new")
        os.replace(target + ".new", target)
        print(f"group library {os.path.basename(lib)} copied to {site.getsitepackages()[0]}")
    print(f"compiled: PYTHONPATH={build} (in process), --before {tree} (aofnode-bench-matrix)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
