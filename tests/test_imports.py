"""Imports say the modules' real dependencies (issue 15, point 7).

An import inside a function hides a dependency and is often a guard against
an import cycle that does not exist. Every one left in the package, the
command and the docs generator must be in ALLOWED below, with the reason it
cannot be at the top of its module (an optional dependency, a real cycle, or
a cost at import time worth avoiding). And the package's modules import each
other without a cycle (imports under ``if TYPE_CHECKING:`` are for the type
checker only and are not counted).
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

from tests.server import REPO_ROOT

PACKAGE = REPO_ROOT / "iodine_py"
SOURCES = sorted(PACKAGE.glob("*.py")) + [REPO_ROOT / "exe" / "iodine",
                                          REPO_ROOT / "docs" / "gen_config.py"]

# (file, function, imported module) -> why it is not at module level
ALLOWED: Dict[Tuple[str, str, str], str] = {
    ("iodine_py/upgrade.py", "upgrade", "django.http"):
        "optional dependency: reached only with a Django request, so Django is installed",
    ("docs/gen_config.py", "generate", "iodine_py.cli"):
        "the checkout must be first on sys.path before the package is imported",
    ("docs/gen_config.py", "generate", "iodine_py.config"):
        "the checkout must be first on sys.path before the package is imported",
}


def _rel(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def _imported(node: ast.AST) -> List[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        prefix = "." * node.level
        if node.module is None:  # from . import client: the module client
            return [prefix + a.name for a in node.names]
        return [prefix + node.module]
    return []


def function_imports(path: Path) -> Iterator[Tuple[str, str, int]]:
    """(function, module, line) for every import inside a function body."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))

    def walk(node: ast.AST, func: str) -> Iterator[Tuple[str, str, int]]:
        for child in ast.iter_child_nodes(node):
            name = func
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                name = getattr(child, "name", "<lambda>")
            elif func:
                for module in _imported(child):
                    yield func, module, child.lineno
            yield from walk(child, name)

    yield from walk(tree, "")


def test_the_scanner_finds_a_function_level_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\n\ndef f():\n    if os:\n        from . import x\n"
                     "    import json\n\nclass C:\n    def m(self):\n        import re\n")
    assert sorted(function_imports(probe)) == [("f", ".x", 5), ("f", "json", 6), ("m", "re", 10)]


def test_function_level_imports_are_all_justified():
    found = {}
    for path in SOURCES:
        for func, module, line in function_imports(path):
            found[(_rel(path), func, module)] = line
    unexplained = [f"{f}:{line} in {func}(): import {m}"
                   for (f, func, m), line in sorted(found.items()) if (f, func, m) not in ALLOWED]
    assert not unexplained, (
        "imports inside functions: move them to the top of the module, or add them to "
        "ALLOWED with the reason they must stay (optional dependency, real cycle, cost at "
        "import time):\n" + "\n".join(unexplained))
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, f"ALLOWED names imports that are gone: {stale}"


def _module_of(path: Path) -> str:
    return "iodine_py" if path.name == "__init__.py" else f"iodine_py.{path.stem}"


def _top_level_imports(tree: ast.Module) -> Iterator[ast.AST]:
    """Import statements run when the module is imported: at module level,
    in if/try blocks too, but not under ``if TYPE_CHECKING:``."""
    stack: List[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            test = node.test
            if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or \
                    isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING":
                stack.extend(node.orelse)
            else:
                stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                stack.extend(handler.body)


def import_graph() -> Dict[str, Set[str]]:
    """Package module -> the package modules it imports when imported.
    ``from . import __version__`` names the package itself, whose
    ``__init__`` is the facade importing the rest: edges to it are left out."""
    modules = {_module_of(p) for p in PACKAGE.glob("*.py")}
    graph: Dict[str, Set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        me = _module_of(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        deps: Set[str] = set()
        for node in _top_level_imports(tree):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in modules)
                continue
            assert isinstance(node, ast.ImportFrom)
            if node.level == 0:
                base = node.module or ""
            else:
                base = "iodine_py" + (f".{node.module}" if node.module else "")
            if base in modules and base != "iodine_py":
                deps.add(base)
            for alias in node.names:  # from . import client: the module client
                if f"{base}.{alias.name}" in modules:
                    deps.add(f"{base}.{alias.name}")
        deps.discard("iodine_py")
        graph[me] = deps
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    state: Dict[str, int] = {}  # 1: on the path, 2: done
    path: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_package_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    assert "iodine_py.client" in graph["iodine_py.connect"]  # the graph is read at all
    cycle = find_cycle(graph)
    assert not cycle, "import cycle: " + " -> ".join(cycle)
