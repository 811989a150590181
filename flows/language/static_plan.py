"""The static plan of a playbook: waves of steps that run in parallel, and what each waits for.

Nothing runs and nothing is rendered; this is the DAG as the engine will schedule it.
"""

from __future__ import annotations

from typing import Any

from flows.actions.registry import Registry
from flows.language.durations import format_duration
from flows.language.spec import Playbook, Step


def markers(step: Step) -> dict[str, Any]:
    """What changes how a step runs: fan-out, condition, approval, failure handling."""
    out: dict[str, Any] = {}
    if step.for_each is not None:
        out["for_each"] = step.for_each
        out["concurrency"] = step.concurrency
    if step.when is not None:
        out["when"] = step.when
    if step.action == "approval":
        out["approval"] = True
    if step.needs_outcome == "any":
        out["needs_outcome"] = "any"
    if step.continue_on_error:
        out["continue_on_error"] = True
    if step.retries is not None:
        out["retries"] = step.retries.attempts
    if step.timeout is not None:
        out["timeout"] = format_duration(step.timeout)
    if step.on_failure:
        out["on_failure"] = [h.action for h in step.on_failure]
    return out


def static_plan(playbook: Playbook, registry: Registry) -> dict[str, Any]:
    """The playbook's DAG as waves, in the order the engine takes them (the graph must be sound)."""
    from flows.language.dag import dependencies, waves

    deps = dependencies(playbook.steps)
    by_id = {s.id: s for s in playbook.steps}
    plan_waves = []
    for number, wave in enumerate(waves(deps), start=1):
        steps = []
        for step_id in wave:
            step = by_id[step_id]
            kind = registry.get(step.action).kind.value if step.action in registry else None
            steps.append(
                {
                    "id": step.id,
                    "action": step.action,
                    "kind": kind,
                    "needs": deps[step.id],
                    "markers": markers(step),
                }
            )
        plan_waves.append({"wave": number, "steps": steps})
    return {
        "playbook": playbook.ref,
        "title": playbook.metadata.title,
        "steps": len(playbook.steps),
        "waves": plan_waves,
    }


def render_marker(key: str, value: Any) -> str:
    """One marker as text for the terminal."""
    if key == "for_each":
        return f"for_each {value!s}"
    if key == "concurrency":
        return f"concurrency {value if value is not None else 'unbounded'}"
    if key == "approval":
        return "APPROVAL (pauses the run)"
    if key == "on_failure":
        return "on_failure: " + ", ".join(value)
    if value is True:
        return key
    return f"{key} {value}"
