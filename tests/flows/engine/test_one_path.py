"""Structure: one code path applies actions, so no path (step, item, handler, or one added later) skips a rail."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
APPLYING = {"flows/engine/work.py"}
"""The only module that calls an action's ``apply()``: after plan, guards and intent; with timeout, saga, record."""


def _apply_calls(path: Path) -> list[int]:
    """Lines calling ``<x>.apply(...)`` where ``<x>`` is not ``super()`` (a wrapper delegating to its action)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "apply":
            receiver = node.func.value
            delegating = isinstance(receiver, ast.Call) and getattr(receiver.func, "id", None) == "super"
            if not delegating:
                lines.append(node.lineno)
    return lines


def test_only_the_unit_runner_calls_apply() -> None:
    found = {
        f"{path.relative_to(REPO).as_posix()}:{line}"
        for package in ("flows", "integrations")
        for path in sorted((REPO / package).rglob("*.py"))
        for line in _apply_calls(path)
    }
    assert found, "the scan must see the engine's own call"
    assert {entry.split(":")[0] for entry in found} == APPLYING, sorted(found)
