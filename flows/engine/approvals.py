"""Approvals: answers, where they come from, who may give them, and the wait for a decision.

Answers arrive through :class:`AnswerSource` objects polled in turn: the run directory's inbox
(written by ``fireline approve``/``reject`` and by Slack through
:func:`flows.people.answers.submit_answer`), :class:`Responders` (scripted, for drills and demos),
and the Prefect source. Every answer goes through the same checks (:func:`refusal_reason`):

- the decision is exactly ``approve`` or ``reject`` after normalisation (surrounding blanks removed,
  case folded): ``REJECT`` is a rejection, ``approved``, ``yes`` or ``ok`` are refused and recorded
  as ``approval.refused``; nothing unknown ever counts as an approval;
- the person is compared in canonical form (``Alice``, ``alice``, ``user:alice``, her e-mail and
  her Slack user id are one person, through the run's directory snapshot) and must be listed in
  the step's ``approvers`` (``user:x``, or a member of ``group:y`` in the directory or the legacy
  ``approvers_file``);
- whoever triggered the run cannot approve it;
- ``min_approvals`` distinct people must approve, and one authenticated account counts for one
  person only (``--as bob`` then ``--as carol`` from one login is refused the second time);
- a single authorised rejection rejects.

The wait is an :class:`ApprovalWait`, a :class:`~flows.engine.waits.WaitCondition` polled by the
run's waiter thread; its deadline is persisted in ``state/waits/<step>.json`` so a resumed run keeps
the original deadline.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from flows.actions.control import ApprovalParams
from flows.errors import ApprovalError, ConfigError
from flows.record.store import iso, utcnow, write_atomic

if TYPE_CHECKING:
    from flows.people.directory import Directory

Decision = Literal["approve", "reject"]
DECISIONS: tuple[Decision, ...] = ("approve", "reject")
POLL_INTERVAL = 0.2


def parse_decision(text: object) -> Decision | None:
    """``approve`` or ``reject`` after removing blanks and folding case; None for anything else."""
    if not isinstance(text, str):
        return None
    folded = text.strip().casefold()
    if folded == "approve":
        return "approve"
    return "reject" if folded == "reject" else None


@dataclass(frozen=True)
class Answer:
    """One person's answer to an approval step, as it arrived (the decision text is checked later)."""

    by: str
    decision: str
    reason: str = ""
    how: str = "cli"  # cli | scripted | prefect | slack
    at: str = ""
    after: float = 0.0  # scripted answers only: seconds after the request before it is given
    authenticated_as: str = ""
    claim: str | None = None

    @property
    def user(self) -> str:
        return normalise_user(self.by)


def normalise_user(who: str) -> str:
    """The canonical form of a name without a directory (lower-case, one ``user:`` prefix removed)."""
    from flows.people.identity import try_canonical

    return try_canonical(who) or who.strip()


class AnswerSource(Protocol):
    """Where answers come from; ``poll`` returns the answers that arrived since the last poll."""

    def poll(self, run_id: str, step_id: str) -> list[Answer]: ...


# -- the inbox in the run directory ------------------------------------------------------------
def inbox_dir(run_dir: Path, step_id: str) -> Path:
    return run_dir / "approvals" / step_id


def write_answer(run_dir: Path, step_id: str, answer: Answer, *, refused: str | None = None) -> Path:
    """Drop an answer into the run's inbox as one atomic file (names sort by arrival)."""
    doc = {**asdict(replace(answer, at=answer.at or iso(utcnow()))), "refused": refused}
    name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    path = inbox_dir(run_dir, step_id) / name
    write_atomic(path, json.dumps(doc, ensure_ascii=False).encode("utf-8"))
    return path


def read_inbox(run_dir: Path, step_id: str) -> list[tuple[str, Answer, str | None]]:
    """Every answer file of a step in arrival order: (file name, answer, refusal or None)."""
    folder = inbox_dir(run_dir, step_id)
    out: list[tuple[str, Answer, str | None]] = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            refused = doc.pop("refused", None)
            out.append((path.name, Answer(**doc), refused))
        except (OSError, json.JSONDecodeError, TypeError):
            continue
    return out


class InboxSource:
    """Polls ``<run dir>/approvals/<step>/`` for answer files."""

    REFRESH = 0.1  # seconds: how stale the list of steps with answers may be

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.refusals: list[dict[str, Any]] = []
        self._folders: set[str] = set()
        self._listed = float("-inf")

    def refresh(self) -> None:
        """Forget the cached listing: the next poll looks at the disk (a deadline is about to pass)."""
        with self._lock:
            self._listed = float("-inf")

    def _has_answers(self, step_id: str) -> bool:
        """Whether the step has an inbox folder: one directory listing per REFRESH for all waiting steps."""
        now = time.monotonic()
        if now - self._listed >= self.REFRESH:
            root = self.run_dir / "approvals"
            self._folders = {p.name for p in root.iterdir()} if root.is_dir() else set()
            self._listed = now
        return step_id in self._folders

    def poll(self, run_id: str, step_id: str) -> list[Answer]:
        answers: list[Answer] = []
        with self._lock:
            if not self._has_answers(step_id):
                return answers
            for name, answer, refused in read_inbox(self.run_dir, step_id):
                if name in self._seen:
                    continue
                self._seen.add(name)
                if refused:
                    self.refusals.append(
                        {"step": step_id, "by": answer.user, "how": answer.how, "decision": answer.decision,
                         "authenticated_as": answer.authenticated_as, "claim": answer.claim,
                         "refused_because": refused}
                    )  # fmt: skip
                    continue
                answers.append(answer)
        return answers

    def take_refusals(self) -> list[dict[str, Any]]:
        with self._lock:
            out, self.refusals = self.refusals, []
        return out


@dataclass
class Responders:
    """Scripted answers per approval step id, and scripted acks per paging step id (drills, demos).

    They go through the same checks as CLI answers; ``after`` is seconds after the request.
    """

    approvals: dict[str, list[Answer]] = field(default_factory=dict)
    acks: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # step -> [(person, after seconds)]
    _started: dict[str, float] = field(default_factory=dict, repr=False)
    _given: dict[str, int] = field(default_factory=dict, repr=False)

    def poll(self, run_id: str, step_id: str) -> list[Answer]:
        now = time.monotonic()
        start = self._started.setdefault(step_id, now)
        pending = self.approvals.get(step_id, [])[self._given.get(step_id, 0) :]
        due: list[Answer] = []
        for answer in pending:
            if now - start < answer.after:
                break
            due.append(replace(answer, how="scripted", at=answer.at or iso(utcnow()), authenticated_as="script"))
        self._given[step_id] = self._given.get(step_id, 0) + len(due)
        return due


# -- who may answer -------------------------------------------------------------------------
@dataclass(frozen=True)
class ApproverDirectory:
    """Legacy groups from ``settings.approvers_file`` (YAML ``groups: {name: [user, ...]}``)."""

    groups: dict[str, list[str]] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | None) -> ApproverDirectory:
        if path is None:
            return cls()
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: cannot read approvers: {e}") from e
        groups = data.get("groups", {}) if isinstance(data, dict) else None
        if not isinstance(groups, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(u, str) for u in v) for k, v in groups.items()
        ):
            raise ConfigError(f"{path}: expected 'groups: {{name: [user, ...]}}'")
        if set(data) - {"groups"}:
            raise ConfigError(f"{path}: unknown keys {sorted(set(data) - {'groups'})}")
        return cls(groups={k: [normalise_user(u) for u in v] for k, v in groups.items()}, path=path)

    def allowed(self, user: str, approvers: Sequence[str]) -> bool:
        return Approvers(legacy=self).allowed(user, approvers)


@dataclass
class Approvers:
    """Who may answer: the run's directory snapshot plus the legacy approvers-file groups."""

    legacy: ApproverDirectory = field(default_factory=ApproverDirectory)
    directory: Directory | None = None

    @property
    def configured(self) -> bool:
        return bool(self.legacy.groups) or bool(self.directory is not None and self.directory.people)

    def canonical(self, raw: str | None) -> str | None:
        """The canonical person id of ``raw`` (through the directory when it knows the person)."""
        from flows.people.identity import try_canonical

        if raw is None:
            return None
        if self.directory is not None:
            return self.directory.canonical(raw)
        return try_canonical(raw)

    def allowed(self, person: str, approvers: Sequence[str]) -> bool:
        for entry in approvers:
            kind, _, name = entry.partition(":")
            if kind == "user" and self.canonical(name) == person:
                return True
            if kind == "group":
                legacy = {self.canonical(u) for u in self.legacy.groups.get(name, [])}
                if person in legacy or (self.directory is not None and self.directory.in_group(person, name)):
                    return True
        return False


def refusal_reason(
    answer: Answer,
    params: ApprovalParams,
    directory: ApproverDirectory | Approvers,
    triggered_by: str | None,
    accounts: dict[str, str] | None = None,
) -> str | None:
    """Why an answer does not count (None when it does).

    ``accounts`` maps an authenticated account to the person it already answered as for this step.
    """
    approvers = directory if isinstance(directory, Approvers) else Approvers(legacy=directory)
    decision = parse_decision(answer.decision)
    if decision is None:
        return f"{answer.decision!r} is not a decision (expected approve or reject)"
    person = approvers.canonical(answer.by)
    if not person:
        return f"{answer.by!r} is not a person name"
    if not approvers.allowed(person, params.approvers):
        if not approvers.configured:
            return (
                f"{person} is not an approver of this step, and no approvers are configured: list people and "
                "groups in the directory (playbooks/people.yaml, or [people] directory in fireline.toml) or "
                "set approvers_file in fireline.toml"
            )
        return f"{person} is not an approver of this step (approvers: {', '.join(params.approvers)})"
    if decision == "approve" and triggered_by and approvers.canonical(triggered_by) == person:
        return f"{person} triggered this run and cannot approve it"
    account = answer.authenticated_as
    if accounts and account and account not in ("script", "prefect") and accounts.get(account, person) != person:
        return f"account {account!r} already answered as {accounts[account]}; one account counts for one person"
    return None


def check_answer(
    answer: Answer, params: ApprovalParams, directory: ApproverDirectory | Approvers, triggered_by: str | None
) -> None:
    """Raise :class:`ApprovalError` when the answer would be refused."""
    reason = refusal_reason(answer, params, directory, triggered_by)
    if reason is not None:
        raise ApprovalError(f"refused: {reason}")


Emit = Callable[[str, dict[str, Any]], None]

__all__ = [
    "Answer", "AnswerSource", "ApproverDirectory", "Approvers", "Decision", "InboxSource",
    "Responders", "check_answer", "normalise_user", "parse_decision", "read_inbox",
    "refusal_reason", "write_answer",
]  # fmt: skip
