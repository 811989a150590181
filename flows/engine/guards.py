"""Blast-radius guards, enforced against the targets each action's ``plan()`` declares.

- ``max_targets``: a step may touch at most this many resources (for ``for_each``, all items together).
- ``protected_tags``: never act on a resource carrying any of these tags (``fireline/protected=true``
  always applies).
- ``require_tags``: only act on resources carrying all of these; a resource whose tags are unknown
  is refused in live mode and reported as "unknown" in a plan.

Guards apply to the targets of every plan that says ``mutating`` (the default); a plan that only
reads (``mutating=False``) is exempt. In live mode a refusal fails the step before ``apply``; in dry-run and
drills the same refusals are reported as "would refuse".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flows.actions.registry import Plan, Target
from flows.language.spec import Guards


@dataclass(frozen=True)
class Refusal:
    """One guard that refused, and why."""

    guard: str
    target: str | None
    message: str

    def as_detail(self) -> dict[str, str | None]:
        return {"guard": self.guard, "target": self.target, "message": self.message}


def _label(target: Target) -> str:
    return f"{target.type}:{target.id}"


def check_target(guards: Guards, target: Target, *, live: bool) -> list[Refusal]:
    """Refusals for one target (protected and required tags)."""
    refusals: list[Refusal] = []
    label = _label(target)
    if target.tags is None:
        if guards.require_tags:
            verb = "refused" if live else "unknown (would be refused in live mode)"
            refusals.append(
                Refusal(
                    "require_tags",
                    label,
                    f"{label}: tags are unknown, so require_tags {guards.require_tags} cannot be checked: {verb}",
                )
            )
        return refusals
    for key, value in guards.effective_protected_tags().items():
        if target.tags.get(key) == value:
            refusals.append(Refusal("protected_tags", label, f"{label} carries the protected tag {key}={value}"))
    missing = {k: v for k, v in guards.require_tags.items() if target.tags.get(k) != v}
    if missing:
        refusals.append(Refusal("require_tags", label, f"{label} lacks the required tags {missing}"))
    return refusals


def check_plans(guards: Guards, plans: Sequence[Plan], *, live: bool) -> list[Refusal]:
    """Every refusal for a step's plans (one plan per item); plans that do not mutate are exempt."""
    targets: dict[str, Target] = {}
    for plan in plans:
        if plan.mutating:
            for target in plan.targets:
                targets.setdefault(_label(target), target)
    refusals: list[Refusal] = []
    if guards.max_targets is not None and len(targets) > guards.max_targets:
        refusals.append(
            Refusal(
                "max_targets",
                None,
                f"the step would touch {len(targets)} resources, over max_targets {guards.max_targets}",
            )
        )
    for target in targets.values():
        refusals.extend(check_target(guards, target, live=live))
    return refusals
