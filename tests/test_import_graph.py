"""The modules of evolm import each other without circles.

The graph holds the imports a module runs when it is imported: those at module level, including
inside ``try``/``if`` blocks, but not those inside functions or under ``if TYPE_CHECKING:``.
``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``. The sandbox
package is held to more: no circle even through imports inside functions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import evolm

SRC = Path(evolm.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements run on import: not in functions or classes' methods, nor under
    ``if TYPE_CHECKING:`` (its ``else`` branch does run)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _type_checking(node.test):
                yield from module_level_imports(node.body)
            yield from module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from module_level_imports(block)
            for handler in node.handlers:
                yield from module_level_imports(handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from module_level_imports(node.body)


def all_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, functions included, except under a top-level
    ``if TYPE_CHECKING:``."""
    for node in body:
        if isinstance(node, ast.If) and _type_checking(node.test):
            yield from all_imports(node.orelse)
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import | ast.ImportFrom):
                yield sub


def import_graph(*, inside_functions: bool = False) -> dict[str, set[str]]:
    """evolm module -> the evolm modules it imports at module level (or anywhere)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    walk = all_imports if inside_functions else module_level_imports
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in walk(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            graph[name] |= {t for t in targets if t in known and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest circle through each strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_shortest_circle(graph, group) for group in groups]


def _shortest_circle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{sorted(group)} is not strongly connected")


def test_the_cycle_finder_finds_a_planted_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_relative_and_conditional_imports_but_not_type_checking() -> None:
    graph = import_graph()
    assert "evolm.sandbox.tiers" in graph["evolm.sandbox.pool"]
    assert "evolm.sandbox.pool" in graph["evolm.sandbox"]
    # evolm/__init__.py imports RunConfig only under TYPE_CHECKING
    assert "evolm.config" not in graph["evolm"]


def test_evolm_modules_import_each_other_without_circles() -> None:
    found = cycles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_sandbox_has_no_circle_even_through_imports_inside_functions() -> None:
    graph = import_graph(inside_functions=True)
    assert "evolm.sandbox.probe" in graph["evolm.sandbox.pool"]
    sandbox = {
        name: {t for t in targets if t.startswith("evolm.sandbox.")}
        for name, targets in graph.items()
        if name.startswith("evolm.sandbox.")
    }
    found = cycles(sandbox)
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)
