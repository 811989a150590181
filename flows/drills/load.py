"""Load a scenario with located errors and check it against its playbook and directory.

The same YAML reader as playbooks (``file:line:col``, did-you-mean for misspelt keys). Beyond the
shape, a scenario is refused when it names an unknown playbook, step or person, puts a fault on a
step that does not exist (or that could never hit it), or expects something the drill can never
observe (an escalation level of a step that pages nobody, a containment milestone in a playbook
that contains nothing). Codes: E600 playbook, E601 step, E602 person, E603 fault, E604
expectation, E605 duration, E606 alert.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.drills.models import Scenario
from flows.errors import Diagnostic, ValidationError
from flows.language.durations import parse_duration
from flows.language.spec import Playbook


@dataclass(frozen=True)
class LoadedScenario:
    """A checked scenario, its playbook and alert."""

    scenario: Scenario
    path: Path
    playbook: Playbook
    playbook_path: Path
    alert: dict[str, Any]


def _hint(name: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(name, known, n=1)
    return f"did you mean {close[0]!r}?" if close else None


def playbook_path(scenario: Scenario, path: Path, playbooks_dir: Path | None) -> tuple[Path | None, list[str]]:
    """The drilled playbook's file (None when not found) and the names that were available."""
    ref = scenario.playbook
    if ref.endswith((".yaml", ".yml")):
        found = (path.parent / ref).resolve()
        return (found if found.is_file() else None), []
    folders = [path.parent.parent, path.parent] + ([playbooks_dir] if playbooks_dir else [])
    names: list[str] = []
    for folder in folders:
        candidate = folder / f"{ref}.yaml"
        if candidate.is_file():
            return candidate, []
        names += [p.stem for p in folder.glob("*.yaml") if p.name not in ("people.yaml",)]
    return None, sorted(set(names))


class _Checker:
    def __init__(self, loaded: Any, book: Playbook, people: Any, settings: Any = None) -> None:
        self.settings = settings
        self.loaded = loaded
        self.book = book
        self.people = people
        self.found: list[Diagnostic] = []
        self.steps = {s.id: s.action for s in book.steps}

    def add(self, code: str, message: str, where: tuple[Any, ...], hint: str | None = None) -> None:
        from flows.people.load import diag

        self.found.append(diag(code, message, self.loaded, where, hint))

    def step(self, name: str, where: tuple[Any, ...], action: str | None = None) -> bool:
        if name not in self.steps:
            hint = _hint(name, list(self.steps))
            self.add("E601", f"step {name!r} is not in playbook {self.book.metadata.name!r}", where, hint)
            return False
        if action is not None and self.steps[name] != action:
            self.add("E604", f"step {name!r} is a {self.steps[name]} step, not {action}: this can never be checked",
                     where)  # fmt: skip
            return False
        return True

    def person(self, name: str, where: tuple[Any, ...]) -> None:
        if self.people is None or not self.people.people:
            return
        if self.people.resolve(name) is None:
            known = list(self.people.people)
            self.add("E602", f"person {name!r} is not in the directory", where, _hint(name, known))

    def duration(self, text: str, where: tuple[Any, ...]) -> None:
        try:
            parse_duration(text)
        except (ValueError, TypeError) as e:
            self.add("E605", f"{text!r} is not a duration ({e})", where)


def _check_responders(c: _Checker, s: Scenario) -> None:
    for i, ack in enumerate(s.responders.acks):
        c.step(ack.step, ("responders", "acks", i, "step"), "contacts.page")
        c.person(ack.by, ("responders", "acks", i, "by"))
        c.duration(ack.after, ("responders", "acks", i, "after"))
        if ack.by in s.responders.unreachable:
            c.add("E602", f"{ack.by!r} is unreachable and cannot ack", ("responders", "acks", i, "by"))
    for i, ans in enumerate(s.responders.approvals):
        c.step(ans.step, ("responders", "approvals", i, "step"), "approval")
        c.person(ans.by, ("responders", "approvals", i, "by"))
        c.duration(ans.after, ("responders", "approvals", i, "after"))
    for i, who in enumerate(s.responders.unreachable):
        c.person(who, ("responders", "unreachable", i))


def _check_faults(c: _Checker, s: Scenario) -> None:
    for i, fault in enumerate(s.faults):
        where = ("faults", i)
        if fault.kind == "slack_429":
            if not getattr(getattr(c.settings, "slack", None), "token", None):
                c.add("E603", "Slack is not configured ([slack] token): a slack_429 fault can never hit", where)
            continue
        if fault.kind == "target_missing":
            if not fault.target:
                c.add("E603", "a target_missing fault names its target (a world key)", where)
            continue
        if fault.step is None:
            c.add("E603", f"a {fault.kind} fault names its step", where)
            continue
        want = "approval" if fault.kind == "approval_timeout" else None
        if not c.step(fault.step, (*where, "step"), want):
            continue
        if fault.kind == "aws_error" and not c.steps[fault.step].startswith("aws."):
            c.add("E603", f"step {fault.step!r} ({c.steps[fault.step]}) makes no AWS call: the fault can never hit",
                  (*where, "step"))  # fmt: skip


def _check_expect(c: _Checker, s: Scenario) -> None:
    e = s.expect
    lists = {"run": e.steps.run, "skipped": e.steps.skipped, "failed": e.steps.failed}
    seen: dict[str, str] = {}
    for kind, names in lists.items():
        for i, name in enumerate(names):
            where: tuple[Any, ...] = ("expect", "steps", kind, i)
            if c.step(name, where) and name in seen:
                c.add("E604", f"step {name!r} is expected both {seen[name]} and {kind}: it can never hold", where)
            seen.setdefault(name, kind)
    for name in e.escalation:
        c.step(name, ("expect", "escalation", name), "contacts.page")
    for name in e.approvals:
        c.step(name, ("expect", "approvals", name), "approval")
    kinds = {_kind(a) for a in c.steps.values()}
    for milestone, limit in e.milestones.items():
        where = ("expect", "milestones", str(milestone))
        c.duration(limit, where)
        if milestone == "acknowledged" and "contacts.page" not in c.steps.values():
            c.add("E604", "no contacts.page step: time to acknowledge can never be checked", where)
        if milestone == "contained" and "containment" not in kinds:
            c.add("E604", "no containment step: time to containment can never be checked", where)


def _kind(action: str) -> str:
    from flows.actions.registry import default_registry

    registry = default_registry()
    return registry.get(action).kind.value if action in registry else ""


def load_scenario(path: Path, settings: Any) -> LoadedScenario:
    """Load and check ``path``.

    Raises:
        SpecError: the YAML cannot be read, or a ValidationError holding every located error.
    """
    from flows.language.loader import load_playbook
    from flows.people.directory import load_directory
    from flows.people.load import diag, load_doc

    loaded = load_doc(path, Scenario, "Scenario")
    s = loaded.doc
    book_file, names = playbook_path(s, path, getattr(settings, "playbooks_dir", None))
    if book_file is None:
        hint = _hint(s.playbook, names)
        raise ValidationError([diag("E600", f"unknown playbook {s.playbook!r}", loaded, ("playbook",), hint)])
    book = load_playbook(book_file).playbook
    people = load_directory(settings, book_file.parent)
    checker = _Checker(loaded, book, people, settings)
    _check_responders(checker, s)
    _check_faults(checker, s)
    _check_expect(checker, s)
    alert = s.alert
    if isinstance(alert, str):
        file = path.parent / alert
        try:
            alert = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            checker.add("E606", f"cannot read alert file {alert!r}: {e}", ("alert",))
            alert = {}
    if checker.found:
        from flows.language.loader import sort_diagnostics

        raise ValidationError(sort_diagnostics(checker.found))
    return LoadedScenario(s, path, book, book_file, dict(alert))


def scenario_files(paths: list[Path]) -> list[Path]:
    """The scenario files of the given files and folders (a library's ``scenarios/`` folder included)."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            folder = path / "scenarios" if (path / "scenarios").is_dir() else path
            found.extend(sorted(p for p in folder.glob("*.y*ml") if p.is_file()))
    return list(dict.fromkeys(found))


def is_scenario(path: Path) -> bool:
    """Whether ``path`` is a scenario (in a ``scenarios/`` folder, or saying ``kind: Scenario``)."""
    if path.parent.name == "scenarios":
        return True
    from flows.people.lint import document_kind

    return document_kind(path) == "Scenario"


def library_scenarios(paths: list[Path]) -> list[Path]:
    """The ``scenarios/`` files of the given library folders (``fireline validate playbooks/``)."""
    return scenario_files([p for p in paths if p.is_dir() and (p / "scenarios").is_dir()])


def validate_scenario(path: Path, settings: Any = None) -> tuple[None, list[Diagnostic]]:
    """Every located error of a scenario file, for ``fireline validate``; never raises for a bad file."""
    from flows.errors import SpecError

    if settings is None:
        from flows.config import load_settings

        settings = load_settings()
    try:
        load_scenario(path, settings)
    except SpecError as e:
        return None, list(e.diagnostics)
    return None, []
