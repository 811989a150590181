"""Contact trees: loading and checking them, and who each level pages at a given moment.

``playbooks/contact-trees/<name>.yaml`` (``kind: ContactTree``)::

    metadata: {name: ml-platform-primary, version: 1}
    when: {severity: [high, critical]}
    levels:
      - {targets: [person:alice, slack_channel:C0INCIDENT], ack_timeout: 5m}
      - {targets: [group:ml-security], ack_timeout: 10m, strategy: round_robin,
         active_hours: {timezone: Europe/Berlin, days: [mon, tue, wed, thu, fri], start: "08:00", end: "20:00"}}
    repeat: {times: 1, wait: 5m}
    fallback: [webhook:secret:PAGER_WEBHOOK_URL]
    reminder_interval: 10m

Checks (``fireline validate`` and every run): every ``person:`` and ``group:`` target exists in the
directory (with did-you-mean), and a tree that is not ``drill: true`` gives every level at least a
minute to acknowledge.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flows.errors import ConfigError, Diagnostic, ValidationError
from flows.language.diagnose import suggest
from flows.people.directory import Directory
from flows.people.load import LoadedDoc, diag, load_doc
from flows.people.models import ActiveHours, ContactTreeDoc, Level, When
from flows.people.notify import Recipient

MIN_LIVE_ACK_TIMEOUT = 60.0


def tree_files(folder: Path) -> dict[str, Path]:
    """Tree name (file stem) to file, for every tree in ``folder``."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in (".yaml", ".yml") and p.is_file()}


def check_tree(loaded: LoadedDoc[ContactTreeDoc], directory: Directory) -> list[Diagnostic]:
    """Every target resolves, and live trees give each level at least a minute."""
    tree = loaded.doc
    out: list[Diagnostic] = []
    sites: list[tuple[tuple[str | int, ...], str]] = []
    for li, level in enumerate(tree.levels):
        sites.extend((("levels", li, "targets", ti), t) for ti, t in enumerate(level.targets))
        if not tree.drill and level.ack_timeout < MIN_LIVE_ACK_TIMEOUT:
            message = f"ack_timeout {level.ack_timeout:g}s is under 1 minute in a live tree"
            out.append(diag("E813", message, loaded, ("levels", li, "ack_timeout"), "set drill: true for a drill tree"))
    sites.extend((("fallback", i), t) for i, t in enumerate(tree.fallback))
    for path, target in sites:
        kind, _, name = target.partition(":")
        if kind == "person" and directory.resolve(name) is None:
            hint = suggest(name, directory.people)
            out.append(diag("E811", f"unknown person {name!r} (not in the directory)", loaded, path, hint))
        elif kind == "group" and name not in directory.groups:
            hint = suggest(name, directory.groups)
            out.append(diag("E812", f"unknown group {name!r} (not in the directory)", loaded, path, hint))
    return out


def load_tree(
    name_or_path: str | Path, settings: Any, directory: Directory | None = None, library: Path | None = None
) -> LoadedDoc[ContactTreeDoc]:
    """Load and check a tree by name (``<trees_dir>/<name>.yaml``) or path.

    Raises:
        ConfigError: no such tree (with did-you-mean).
        SpecError: the tree is malformed or a target does not resolve (every error located).
    """
    from flows.people.directory import load_directory
    from flows.people.settings import trees_dir

    path = Path(name_or_path)
    if not path.is_file():
        folder = trees_dir(settings, library)
        files = tree_files(folder)
        if str(name_or_path) not in files:
            hint = suggest(str(name_or_path), files)
            extra = f" ({hint})" if hint else ""
            raise ConfigError(f"unknown contact tree {str(name_or_path)!r} in {folder}/{extra}")
        path = files[str(name_or_path)]
    loaded = load_doc(path, ContactTreeDoc, "ContactTree")
    problems = check_tree(loaded, directory if directory is not None else load_directory(settings, library))
    if problems:
        raise ValidationError(problems)
    return loaded


# -- who a level pages -------------------------------------------------------------------------
def matches(when: When | None, severity: str, labels: dict[str, str]) -> bool:
    if when is None:
        return True
    if when.severity is not None and severity not in when.severity:
        return False
    return all(labels.get(k) == v for k, v in when.labels.items())


def active(hours: ActiveHours | None, at: datetime) -> bool:
    """Whether ``at`` (aware) falls in the active hours (always, without them)."""
    if hours is None:
        return True
    from zoneinfo import ZoneInfo

    local = at.astimezone(ZoneInfo(hours.timezone))
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    clock = f"{local.hour:02d}:{local.minute:02d}"
    return day in hours.days and hours.start <= clock < hours.end


def expand(target: str, directory: Directory) -> list[Recipient]:
    """The recipients one target stands for (a group becomes its people)."""
    kind, _, name = target.partition(":")
    if kind == "person":
        person = directory.resolve(name)
        return [_person(person.id, directory)] if person is not None else []
    if kind == "group":
        return [_person(pid, directory) for pid in sorted(directory.members(name))]
    if kind == "email":
        return [Recipient("email", name.lower(), name, email=name)]
    if kind == "webhook":
        return [Recipient("webhook", name.removeprefix("secret:"), "webhook")]
    return [Recipient(kind, name, name)]  # type: ignore[arg-type]  # slack_channel / slack_usergroup


def _person(pid: str, directory: Directory) -> Recipient:
    p = directory.people[pid]
    return Recipient("person", p.id, p.name, slack_user_id=p.slack_user_id, email=p.email)


@dataclass(frozen=True)
class LevelPlan:
    """Who one level pages at a moment, or why it is skipped."""

    index: int
    name: str
    recipients: tuple[Recipient, ...]
    ack_timeout: float
    skipped: str | None = None


def plan_level(
    level: Level, index: int, directory: Directory, *, severity: str, labels: dict[str, str], at: datetime,
    rotation: int = 0, drill: bool = False,
) -> LevelPlan:  # fmt: skip
    """Resolve one level: ``when``, active hours, targets, strategy, and in drills only ``drill_ok`` people."""
    name = level.name or f"level {index}"
    if not matches(level.when, severity, labels):
        return LevelPlan(index, name, (), level.ack_timeout, "its when does not match the incident")
    if not active(level.active_hours, at):
        return LevelPlan(index, name, (), level.ack_timeout, "outside its active hours")
    people = drill_filter([r for t in level.targets for r in expand(t, directory)], directory, drill)
    unique = list({(r.kind, r.id): r for r in people}.values())
    if not unique:
        return LevelPlan(index, name, (), level.ack_timeout, "no target resolves" + (" to a drill_ok person" * drill))
    if level.strategy == "round_robin":
        unique = [unique[rotation % len(unique)]]
    return LevelPlan(index, name, tuple(unique), level.ack_timeout)


def drill_filter(recipients: list[Recipient], directory: Directory, drill: bool) -> list[Recipient]:
    """In a drill only people marked ``drill_ok`` are paged (channels and webhooks are not)."""
    if not drill:
        return recipients
    return [r for r in recipients if r.kind == "person" and directory.people[r.id].drill_ok]


def rotation_of(incident_id: str) -> int:
    """A stable round-robin start for an incident."""
    return int(hashlib.sha256(incident_id.encode()).hexdigest()[:8], 16)
