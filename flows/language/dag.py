"""The step graph of a playbook: dependencies, order and parallel waves.

Shared by the linter (which reports problems) and the engine (which schedules). Functions here
assume ids are unique and known; :func:`check_graph` says when they are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flows.language.spec import Step


def dependencies(steps: Sequence[Step]) -> dict[str, list[str]]:
    """Map each step id to the ids it waits for.

    A step without ``needs`` waits for the step before it in the file; ``needs: []`` waits for none.
    """
    deps: dict[str, list[str]] = {}
    previous: str | None = None
    for step in steps:
        if step.needs is None:
            deps[step.id] = [previous] if previous is not None else []
        else:
            deps[step.id] = list(step.needs)
        previous = step.id
    return deps


@dataclass(frozen=True)
class GraphProblem:
    kind: str  # "duplicate" | "unknown" | "cycle" | "self"
    step_index: int
    step_id: str
    detail: str
    needs_index: int | None = None


def check_graph(steps: Sequence[Step]) -> list[GraphProblem]:
    """Find duplicate ids, unknown or self dependencies, and cycles."""
    problems: list[GraphProblem] = []
    seen: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step.id in seen:
            problems.append(GraphProblem("duplicate", index, step.id, f"duplicate step id {step.id!r}"))
        else:
            seen[step.id] = index
    for index, step in enumerate(steps):
        for n_index, need in enumerate(step.needs or []):
            if need == step.id:
                problems.append(GraphProblem("self", index, step.id, "a step cannot need itself", n_index))
            elif need not in seen:
                problems.append(GraphProblem("unknown", index, step.id, f"unknown step {need!r}", n_index))
    if not any(p.kind in ("unknown", "self") for p in problems):
        cycle = find_cycle(dependencies(steps))
        if cycle:
            first = cycle[0]
            problems.append(
                GraphProblem("cycle", seen[first], first, "dependency cycle: " + " -> ".join([*cycle, first]))
            )
    return problems


def find_cycle(deps: dict[str, list[str]]) -> list[str] | None:
    """Return one cycle as a list of ids, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in deps.get(node, []):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :]
            if state.get(dep) is None and dep in deps:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in deps:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def waves(deps: dict[str, list[str]]) -> list[list[str]]:
    """Group steps into waves: every step of a wave can run in parallel once earlier waves finished."""
    level: dict[str, int] = {}

    def depth(node: str) -> int:
        if node not in level:
            level[node] = 1 + max((depth(d) for d in deps[node]), default=-1)
        return level[node]

    for node in deps:
        depth(node)
    result: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node in deps:  # file order within a wave
        result[level[node]].append(node)
    return result


def upstream(deps: dict[str, list[str]], step_id: str) -> set[str]:
    """Every step that must finish before ``step_id`` can start (transitively)."""
    seen: set[str] = set()
    todo = list(deps.get(step_id, []))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(deps.get(node, []))
    return seen
