"""The step graph of a playbook: dependencies, order and parallel waves.

Shared by the linter (which reports problems) and the engine (which schedules). Functions here
assume ids are unique and known; :func:`check_graph` says when they are not.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
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
    if not any(p.kind == "duplicate" for p in problems):
        # Unknown and self dependencies are reported above; a cycle among the rest is a finding too.
        known = {k: [d for d in ds if d in seen and d != k] for k, ds in dependencies(steps).items()}
        cycle = find_cycle(known)
        if cycle:
            first = cycle[0]
            problems.append(
                GraphProblem("cycle", seen[first], first, "dependency cycle: " + " -> ".join([*cycle, first]))
            )
    return problems


def find_cycle(deps: dict[str, list[str]]) -> list[str] | None:
    """Return one cycle as a list of ids, or None (iterative: a 5,000-step chain is no recursion problem)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in deps:
        if root in state:
            continue
        path: list[str] = [root]
        children = [iter(deps.get(root, []))]
        state[root] = 1
        while path:
            dep = next(children[-1], None)
            if dep is None:
                state[path.pop()] = 2
                children.pop()
            elif state.get(dep) == 1:
                return path[path.index(dep) :]
            elif dep not in state and dep in deps:
                state[dep] = 1
                path.append(dep)
                children.append(iter(deps.get(dep, [])))
    return None


def topological_order(deps: dict[str, list[str]]) -> list[str]:
    """Ids so that every step comes after the steps it waits for.

    Assumes a sound graph (see :func:`check_graph`); unknown dependencies are ignored and steps on
    a cycle are left out.
    """
    waiting = {node: sum(1 for d in ds if d in deps) for node, ds in deps.items()}
    dependents: dict[str, list[str]] = {node: [] for node in deps}
    for node, ds in deps.items():
        for d in ds:
            if d in dependents:
                dependents[d].append(node)
    ready = [node for node, count in waiting.items() if count == 0]
    order: list[str] = []
    while ready:
        node = ready.pop()
        order.append(node)
        for after in dependents[node]:
            waiting[after] -= 1
            if waiting[after] == 0:
                ready.append(after)
    return order


def waves(deps: dict[str, list[str]]) -> list[list[str]]:
    """Group steps into waves: every step of a wave can run in parallel once earlier waves finished."""
    level: dict[str, int] = {}
    for node in topological_order(deps):
        level[node] = 1 + max((level[d] for d in deps[node] if d in level), default=-1)
    result: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node in deps:  # file order within a wave
        if node in level:
            result[level[node]].append(node)
    return result


class Ancestry:
    """Which steps are upstream of which, for a whole playbook at once.

    Each step's ancestors are one integer bit set built in topological order, so building costs one
    pass over the edges (with word-sized set unions) and each question is a bit test: validation
    stays near-linear in the number of steps where a set per step would be quadratic.
    """

    def __init__(self, deps: dict[str, list[str]]) -> None:
        self.index = {node: i for i, node in enumerate(deps)}
        self.bits: dict[str, int] = {}
        for node in topological_order(deps):
            acc = 0
            for d in deps[node]:
                if d in self.bits:
                    acc |= self.bits[d] | (1 << self.index[d])
            self.bits[node] = acc

    def is_upstream(self, candidate: str, step_id: str) -> bool:
        """True when ``candidate`` must finish before ``step_id`` can start."""
        position = self.index.get(candidate)
        return position is not None and bool(self.bits.get(step_id, 0) >> position & 1)

    def of(self, step_id: str) -> UpstreamOf:
        """The steps upstream of ``step_id``, as a collection."""
        return UpstreamOf(self, step_id)


class UpstreamOf(Collection[str]):
    """The steps upstream of one step (a view on :class:`Ancestry`; membership is a bit test)."""

    def __init__(self, ancestry: Ancestry, step_id: str) -> None:
        self.ancestry = ancestry
        self.step_id = step_id

    def __contains__(self, candidate: object) -> bool:
        return isinstance(candidate, str) and self.ancestry.is_upstream(candidate, self.step_id)

    def __iter__(self) -> Iterator[str]:
        return (node for node in self.ancestry.index if self.ancestry.is_upstream(node, self.step_id))

    def __len__(self) -> int:
        return self.ancestry.bits.get(self.step_id, 0).bit_count()


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
