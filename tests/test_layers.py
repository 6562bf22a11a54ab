"""The layers of node/ as a test: each layer imports only from the layers below it.

    store   (keyspace, commands)          imports nothing from aof, actors or tools
    aof     (file format, writer, rewrite) imports nothing from actors or tools
    actors  (processes and messages)       imports nothing from tools
    protocol (codec, client)               imports nothing from node, and never zmq in the codec
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "node/store": ("node.aof", "node.actors", "node.tools"),
    "node/aof": ("node.actors", "node.tools"),
    "node/actors": ("node.tools",),
    "protocol": ("node",),
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
