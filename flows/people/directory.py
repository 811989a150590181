"""The people directory: canonical people, groups (nested, cycle-free), unix logins, Slack ids.

``playbooks/people.yaml`` (``kind: Directory``; ``[people] directory`` in the settings)::

    people:
      - {id: alice, name: Alice Adams, email: alice@example.com, groups: [ml-security],
         unix_logins: [alice], drill_ok: true, timezone: Europe/Berlin}
    groups:
      ml-leads: [alice, group:ml-security]

:meth:`Directory.resolve` maps any way of naming a person (``Alice``, ``user:alice``,
``alice@example.com``, her Slack user id) to the one :class:`Person`. Slack ids learnt by e-mail
lookup are cached in ``<home>/people/slack-ids.json`` and filled into ``Person.slack_user_id``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.errors import ConfigError, Diagnostic, ValidationError
from flows.language.diagnose import suggest
from flows.people.identity import try_canonical
from flows.people.load import LoadedDoc, diag, load_doc
from flows.people.models import DirectoryDoc, Person
from flows.record.store import read_json_object, write_atomic


@dataclass
class Directory:
    """People and groups, in canonical form. An empty directory knows nobody."""

    people: dict[str, Person] = field(default_factory=dict)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)  # expanded: group -> person ids
    name: str = ""
    version: int = 0
    sha256: str = ""
    path: Path | None = None
    cache_path: Path | None = None

    @classmethod
    def from_doc(cls, loaded: LoadedDoc[DirectoryDoc], cache_path: Path | None = None) -> Directory:
        """Build from a loaded document; raises :class:`ValidationError` for unknown members and cycles."""
        doc = loaded.doc
        problems: list[Diagnostic] = []
        people: dict[str, Person] = {}
        for index, person in enumerate(doc.people):
            if person.id in people:
                problems.append(diag("E802", f"person {person.id!r} is listed twice", loaded, ("people", index, "id")))
            people[person.id] = person
        direct, nested = _group_members(loaded, people, problems)
        cycle = _find_cycle(nested)
        if cycle:
            message = "groups form a cycle: " + " -> ".join(cycle)
            problems.append(diag("E805", message, loaded, ("groups", cycle[0])))
        if problems:
            raise ValidationError(problems)
        expanded = {g: frozenset(_expand(g, direct, nested, set())) for g in direct}
        directory = cls(people, expanded, doc.metadata.name, doc.metadata.version, loaded.sha256, loaded.path)
        directory.cache_path = cache_path
        directory._apply_cache()
        return directory

    @classmethod
    def load(cls, path: Path, cache_path: Path | None = None) -> Directory:
        """Load and check a directory file (``ValidationError``/``YamlSyntaxError`` when it is wrong)."""
        return cls.from_doc(load_doc(path, DirectoryDoc, "Directory"), cache_path)

    # -- lookups -----------------------------------------------------------------------------
    def resolve(self, name_or_slack_id_or_email: str) -> Person | None:
        """The person a name, ``user:name``, e-mail address, unix login or Slack user id stands for."""
        raw = name_or_slack_id_or_email.strip()
        for person in self.people.values():
            if person.slack_user_id and raw == person.slack_user_id:
                return person
        key = try_canonical(raw)
        if key is None:
            return None
        if key in self.people:
            return self.people[key]
        for person in self.people.values():
            if person.email and person.email.lower() == key:
                return person
        return None

    def canonical(self, raw: str) -> str | None:
        """The canonical id of ``raw``: the directory's id when known, else the canonical name."""
        person = self.resolve(raw)
        return person.id if person is not None else try_canonical(raw)

    def people_for_login(self, login: str) -> list[Person]:
        """The people whose ``unix_logins`` list ``login``."""
        return [p for p in self.people.values() if login in p.unix_logins]

    def members(self, group: str) -> frozenset[str]:
        """Person ids of a group, nested groups included (empty for an unknown group)."""
        return self.groups.get(group, frozenset())

    def in_group(self, person_id: str, group: str) -> bool:
        return person_id in self.members(group)

    def snapshot(self) -> dict[str, Any]:
        """Name, version and sha256, for a run's record."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "path": str(self.path or "")}

    # -- the Slack id cache ------------------------------------------------------------------
    def remember_slack_id(self, person_id: str, slack_user_id: str) -> None:
        """Record a Slack user id found by e-mail lookup; later loads fill it in."""
        person = self.people.get(person_id)
        if person is None or self.cache_path is None:
            return
        cache = read_json_object(self.cache_path)
        cache[person.email.lower() if person.email else person.id] = slack_user_id
        write_atomic(self.cache_path, json.dumps(cache, indent=1, sort_keys=True).encode())
        self.people[person_id] = person.model_copy(update={"slack_user_id": slack_user_id})

    def _apply_cache(self) -> None:
        if self.cache_path is None:
            return
        cache = read_json_object(self.cache_path)
        for pid, person in list(self.people.items()):
            if person.slack_user_id:
                continue
            found = cache.get(person.email.lower() if person.email else pid)
            if isinstance(found, str):
                self.people[pid] = person.model_copy(update={"slack_user_id": found})


def _group_members(
    loaded: LoadedDoc[DirectoryDoc], people: dict[str, Person], problems: list[Diagnostic]
) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """Direct members and nested groups of every group; unknown people and groups are problems."""
    doc = loaded.doc
    direct: dict[str, set[str]] = {}
    for person in doc.people:
        for group in person.groups:
            direct.setdefault(group, set()).add(person.id)
    nested: dict[str, list[str]] = {}
    for group, members in doc.groups.items():
        direct.setdefault(group, set())
        for index, member in enumerate(members):
            kind, _, rest = member.partition(":")
            if kind == "group" and rest:
                nested.setdefault(group, []).append(rest)
            elif member in people:
                direct[group].add(member)
            else:
                message = f"unknown person {member!r} in group {group!r}"
                problems.append(diag("E803", message, loaded, ("groups", group, index), suggest(member, people)))
    for group, subs in nested.items():
        for sub in subs:
            if sub not in direct:
                path = ("groups", group, doc.groups[group].index(f"group:{sub}"))
                message = f"unknown group {sub!r} in group {group!r}"
                problems.append(diag("E804", message, loaded, path, suggest(sub, direct)))
    return direct, nested


def _expand(group: str, direct: dict[str, set[str]], nested: dict[str, list[str]], seen: set[str]) -> set[str]:
    if group in seen:
        return set()
    seen.add(group)
    out = set(direct.get(group, set()))
    for sub in nested.get(group, []):
        out |= _expand(sub, direct, nested, seen)
    return out


def _find_cycle(nested: dict[str, list[str]]) -> list[str]:
    """One cycle among nested groups, as the path that closes it, or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in nested.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(nested):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def load_directory(settings: Any, library: Path | None = None) -> Directory:
    """The configured directory; an empty one when the file does not exist.

    Raises:
        ConfigError: the configured file is named explicitly but missing.
        SpecError: the file is malformed (every error located).
    """
    from flows.people.settings import directory_path, people_settings

    path = directory_path(settings, library)
    cache = Path(settings.home) / "people" / "slack-ids.json"
    if not path.is_file():
        if people_settings(settings).directory is not None:
            raise ConfigError(f"[people] directory {path} does not exist")
        return Directory(cache_path=cache)
    return Directory.load(path, cache)
