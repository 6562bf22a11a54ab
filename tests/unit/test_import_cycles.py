"""No import circle among the installed package's modules (node/ and protocol/, bench/ too).

Every import counts, at module level or inside a function: a deferred import hides a circle
from Python's import machinery, not from the reader, who still has to hold both modules in mind
to change either. A package's ``__init__`` is a node of its own; importing ``a.b.c`` is an edge
to ``a.b.c`` only, since Python has already started ``a.b``'s ``__init__`` by then.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The installed layout (pyproject.toml [tool.setuptools] package-dir): folder -> package.
PACKAGES = {"node": "aofnode", "protocol": "aofnode.protocol", "bench": "aofnode.bench"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _edges(name: str, path: Path, known: set[str]) -> set[str]:
    """The known modules that ``name`` (at ``path``) imports, anywhere in its body."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(name, path).split(".")
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name``, mod.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _edges(name, path, set(modules)) for name, path in modules.items()}


def test_no_import_circles():
    circles = _circles(_graph())
    assert not circles, f"import circles: {circles}"


def test_the_graph_sees_deferred_and_relative_imports():
    # A vacuous graph would pass: check edges of each kind that the tree is known to have.
    graph = _graph()
    assert "aofnode.tools.logplot" in graph["aofnode.tools.logs"]
    assert "aofnode.aof.check" in graph["aofnode.tools.cli"]  # imported inside main()
    assert "aofnode.protocol.errors" in graph["aofnode.protocol"]  # relative, in __init__


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []
