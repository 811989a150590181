"""The import structure: no cycles, ``flows`` never imports ``integrations``, ``integrations`` only the interface.

Read from the source with an AST walk (nothing is imported), so a new package or command module is
covered the day it lands. Every ``import`` statement counts, at module level or inside a function;
only those under ``if TYPE_CHECKING:`` are left out (they never run). Built-ins that live in
``integrations`` are loaded by module-name strings, which this walk rightly does not see.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("flows", "integrations")

# What integrations may use: the action interface, errors, settings, the run record, and the
# duration parser of the language (a pure helper). Everything else in flows is the compiler, the
# runtime or the command line, which integrations never import.
INTEGRATIONS_MAY_IMPORT = ("flows.actions", "flows.errors", "flows.config", "flows.record", "flows.language.durations")
INTEGRATIONS_MUST_NOT_IMPORT = ("flows.engine", "flows.cli", "flows.language", "flows.sandbox")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """Every imported module name with its line, skipping ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(child, module, is_package)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno  # a submodule, or a name in ``base``
            yield base, node.lineno
        else:
            yield from _imports(node, module, is_package)


def import_graph() -> dict[str, dict[str, int]]:
    """``{module: {imported module of ours: line}}`` for every module of flows and integrations."""
    modules = _modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges: dict[str, int] = {}
        for target, line in _imports(tree, name, path.name == "__init__.py"):
            if target in modules and target != name:
                edges.setdefault(target, line)
        # ``from pkg import name`` adds both pkg.name and pkg: keep pkg only when name is not a module
        graph[name] = {
            t: line
            for t, line in edges.items()
            if not any(o.startswith(t + ".") and o.rpartition(".")[0] == t for o in edges)
            or not _only_submodules_named(tree, t, modules)
        }
    return graph


def _only_submodules_named(tree: ast.AST, package: str, modules: dict[str, Path]) -> bool:
    """True when every ``from package import x`` names a submodule (so the package itself is not used)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == package:
            if any(f"{package}.{a.name}" not in modules for a in node.names):
                return False
    return True


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, {}))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles() -> None:
    graph = import_graph()
    described = [
        " -> ".join(f"{m} (imports {[t for t in graph[m] if t in cycle]})" for m in cycle) for cycle in _cycles(graph)
    ]
    assert described == [], "import cycles:\n" + "\n".join(described)


def test_flows_never_imports_integrations() -> None:
    graph = import_graph()
    bad = [
        f"{_modules()[m].relative_to(REPO)}:{line}: imports {t}"
        for m, edges in graph.items()
        if m.startswith("flows")
        for t, line in edges.items()
        if t.split(".")[0] == "integrations"
    ]
    assert bad == [], "\n".join(bad)


def test_integrations_use_only_the_action_interface() -> None:
    graph = import_graph()
    bad = [
        f"{_modules()[m].relative_to(REPO)}:{line}: imports {t}"
        for m, edges in graph.items()
        if m.startswith("integrations")
        for t, line in edges.items()
        if t.startswith(INTEGRATIONS_MUST_NOT_IMPORT) and not t.startswith(INTEGRATIONS_MAY_IMPORT)
    ]
    assert bad == [], "\n".join(bad)


def test_the_walk_sees_imports_inside_functions_and_skips_type_checking() -> None:
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import integrations.aws\n"
        "def f():\n    from integrations.models import seed\n"
    )
    found = [name for name, _ in _imports(ast.parse(source), "flows.x", False)]
    assert "integrations.models.seed" in found
    assert "integrations.aws" not in found
