"""Which playbook an alert starts, and under which incident key.

A playbook's ``triggers`` select alerts: a trigger matches when the alert comes from its ``source``,
every ``match`` label is equal, every matcher holds (:mod:`flows.triggers.matchers`) and, when
``severity`` is given, the alert's ``severity`` label is one of them. Every matching playbook gets
its own incident (``fireline lint`` warns when two playbooks of a library can match one alert).

The incident key is ``<playbook>:<fingerprint>``, or with ``group_by`` ``<playbook>:`` followed by
the grouped label values, so that the alerts of one group (several hosts of one alertname, say)
make one incident and one run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from flows.language.spec import Playbook, Trigger
from flows.triggers.matchers import Matcher, parse_matcher
from flows.triggers.model import Alert


@dataclass(frozen=True)
class Route:
    """An alert matched by a trigger of a playbook."""

    playbook: Playbook
    path: Path
    trigger: Trigger
    key: str


@dataclass
class Verdict:
    """Why a playbook does or does not take an alert (for ``fireline triggers test``)."""

    playbook: str
    path: Path
    route: Route | None
    reasons: list[str] = field(default_factory=list)


def matchers_of(trigger: Trigger) -> list[Matcher]:
    found = [Matcher(name, "=", value) for name, value in trigger.match.items()]
    return found + [parse_matcher(text) for text in trigger.matchers]


def why_not(trigger: Trigger, alert: Alert) -> list[str]:
    """The reasons a trigger does not match an alert (empty when it matches)."""
    reasons: list[str] = []
    if trigger.source != alert.source:
        reasons.append(f"source is {alert.source}, the trigger wants {trigger.source}")
    for matcher in matchers_of(trigger):
        if not matcher.matches(alert.labels):
            reasons.append(f"{matcher} does not hold (label is {alert.labels.get(matcher.name, '')!r})")
    if trigger.severity and alert.labels.get("severity", "") not in trigger.severity:
        reasons.append(f"severity {alert.labels.get('severity', '')!r} is not one of {', '.join(trigger.severity)}")
    return reasons


def incident_key(playbook: Playbook, trigger: Trigger, alert: Alert) -> str:
    """The key that makes alerts one incident: the fingerprint, or the ``group_by`` label values."""
    if not trigger.group_by:
        return f"{playbook.metadata.name}:{alert.fingerprint}"
    values = json.dumps([alert.labels.get(name, "") for name in trigger.group_by], separators=(",", ":"))
    return f"{playbook.metadata.name}:g-{hashlib.sha256(values.encode()).hexdigest()[:16]}"


def explain(alert: Alert, library: Iterable[tuple[Path, Playbook]]) -> list[Verdict]:
    """One verdict per playbook: the first trigger that matches, or every trigger's reasons."""
    verdicts: list[Verdict] = []
    for path, book in library:
        verdict = Verdict(book.metadata.name, path, None)
        if not book.triggers:
            verdict.reasons.append("has no triggers")
        for index, trigger in enumerate(book.triggers):
            reasons = why_not(trigger, alert)
            if not reasons:
                verdict.route = Route(book, path, trigger, incident_key(book, trigger, alert))
                verdict.reasons = [f"triggers[{index}] matches"]
                break
            verdict.reasons.extend(f"triggers[{index}]: {r}" for r in reasons)
        verdicts.append(verdict)
    return verdicts


def route(alert: Alert, library: Iterable[tuple[Path, Playbook]]) -> list[Route]:
    """Every playbook that takes the alert, in library order."""
    return [v.route for v in explain(alert, library) if v.route is not None]


def load_library(folder: Path) -> list[tuple[Path, Playbook]]:
    """The playbooks of a library folder (its top level, sorted), skipping files that do not load."""
    from flows.errors import FirelineError
    from flows.language.loader import load_playbook

    books: list[tuple[Path, Playbook]] = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            books.append((path, load_playbook(path).playbook))
        except FirelineError:
            continue  # `fireline validate` reports it; the receiver routes to the playbooks that load
    return books
