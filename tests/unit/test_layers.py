"""The layers of the installed ``aofnode`` package as a test: each imports only from below.

    store    (node/store: keyspace, commands)     nothing from aof, runtime, the actors or tools
    aof      (node/aof: format, writer, rewrite)  nothing from runtime, the actors or tools
    runtime  (node/runtime: actors' plumbing)      nothing from the actors or tools
    actors   (node/fronts, node/log, node/closer)  nothing from tools or from each other's folders
                                                   but the runtime (the log actor's side of the link
                                                   is its own; fronts and log share messages only)
    protocol (protocol/: sans-I/O codecs)          nothing from node/, and never zmq or socket
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ACTORS = ("aofnode.fronts", "aofnode.log", "aofnode.closer", "aofnode.supervisor", "aofnode.roles")
FORBIDDEN = {
    "node/store": ("aofnode.aof", "aofnode.runtime", "aofnode.tools", *ACTORS),
    "node/aof": ("aofnode.runtime", "aofnode.tools", *ACTORS),
    "node/runtime": ("aofnode.tools", *ACTORS),
    "node/fronts": ("aofnode.tools", "aofnode.log", "aofnode.closer", "aofnode.supervisor"),
    "node/log": ("aofnode.tools", "aofnode.fronts", "aofnode.closer", "aofnode.supervisor"),
    "node/closer": ("aofnode.tools", "aofnode.fronts", "aofnode.log", "aofnode.supervisor"),
    "protocol": ("aofnode.store", "aofnode.aof", "aofnode.runtime", "aofnode.tools", "aofnode.config",
                 "aofnode.bench", "zmq", "socket", "selectors", *ACTORS),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


CASES = [(folder, path) for folder in FORBIDDEN for path in sorted((ROOT / folder).rglob("*.py"))]


@pytest.mark.parametrize("folder,path", CASES, ids=[str(p.relative_to(ROOT)) for _, p in CASES])
def test_layer_imports_only_downwards(folder, path):
    bad = sorted(name for name in _imports(path)
                 if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[folder]))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}, above its layer"


def test_every_layer_has_modules():
    # An empty parametrization would pass vacuously: make sure the globs found the files.
    for folder in FORBIDDEN:
        assert list((ROOT / folder).rglob("*.py")), folder


def test_no_module_uses_the_old_top_level_names():
    # Installed, only ``aofnode`` exists: an import of ``node``, ``protocol`` or ``bench`` would
    # work in the checkout and fail for every user.
    for path in sorted([*ROOT.glob("node/**/*.py"), *ROOT.glob("protocol/**/*.py"),
                        *ROOT.glob("bench/**/*.py"), *ROOT.glob("tests/**/*.py")]):
        bad = sorted(name for name in _imports(path) if name.split(".")[0] in ("node", "protocol", "bench"))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
