"""Blast-radius guards, enforced against the targets each action's ``plan()`` declares.

- ``max_targets``: a step may touch at most this many resources (for ``for_each``, all items
  together; for ``on_failure`` handlers, all handlers of the step together).
- ``protected_tags``: never act on a resource carrying any of these tags (``fireline/protected=true``
  always applies).
- ``require_tags``: only act on resources carrying all of these.

Unknown means refused: a target whose tags are unknown (``tags=None``: the plan-time read failed
with throttling, a 5xx, AccessDenied or no network, or the action cannot read tags at all) cannot
be shown to be unprotected, so it is refused in live mode by the protected-tag guard (which always
applies) and by ``require_tags``. The refusal carries the plan's warnings, which say why the read
failed. In dry-run and drills the same refusals are reported as "would refuse".

Guards apply to the targets of every plan that says ``mutating`` (the default); a plan that only
reads (``mutating=False``) is exempt.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
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


def target_label(target: Target) -> str:
    return f"{target.type}:{target.id}"


def check_target(guards: Guards, target: Target, *, live: bool, why_unknown: str = "") -> list[Refusal]:
    """Refusals for one target (protected and required tags); unknown tags refuse both."""
    label = target_label(target)
    if target.tags is None:
        verb = "refused" if live else "unknown (would be refused in live mode)"
        because = f" ({why_unknown})" if why_unknown else ""
        protected = guards.effective_protected_tags()
        refusals = [
            Refusal(
                "protected_tags",
                label,
                f"{label}: tags are unknown{because}, so the protected tags {protected} cannot be checked: {verb}",
            )
        ]
        if guards.require_tags:
            refusals.append(
                Refusal(
                    "require_tags",
                    label,
                    f"{label}: tags are unknown{because}, so require_tags {guards.require_tags} cannot be checked: "
                    f"{verb}",
                )
            )
        return refusals
    refusals = []
    for key, value in guards.effective_protected_tags().items():
        if target.tags.get(key) == value:
            refusals.append(Refusal("protected_tags", label, f"{label} carries the protected tag {key}={value}"))
    missing = {k: v for k, v in guards.require_tags.items() if target.tags.get(k) != v}
    if missing:
        refusals.append(Refusal("require_tags", label, f"{label} lacks the required tags {missing}"))
    return refusals


def mutating_targets(plans: Sequence[Plan]) -> dict[str, tuple[Target, Plan]]:
    """The targets that ``plans`` would change, by label (first plan naming a target wins)."""
    found: dict[str, tuple[Target, Plan]] = {}
    for plan in plans:
        if plan.mutating:
            for target in plan.targets:
                found.setdefault(target_label(target), (target, plan))
    return found


def check_plans(guards: Guards, plans: Sequence[Plan], *, live: bool, touched: Collection[str] = ()) -> list[Refusal]:
    """Every refusal for one unit's plans (one plan per item); plans that do not mutate are exempt.

    ``touched`` holds the labels of targets that earlier units of the same step already changed
    (the step's own items before its handlers): they count towards ``max_targets``.
    """
    targets = mutating_targets(plans)
    refusals: list[Refusal] = []
    total = len(set(targets) | set(touched))
    if guards.max_targets is not None and targets and total > guards.max_targets:
        refusals.append(
            Refusal(
                "max_targets", None, f"the step would touch {total} resources, over max_targets {guards.max_targets}"
            )
        )
    for target, plan in targets.values():
        refusals.extend(check_target(guards, target, live=live, why_unknown="; ".join(plan.warnings)))
    return refusals
