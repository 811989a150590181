"""Approvals: answers, where they come from, who may give them, and the wait for a decision.

Answers arrive through :class:`AnswerSource` objects polled in turn: the run directory's inbox
(written by ``fireline approve``/``reject``), :class:`Responders` (scripted, for drills and demos),
and whatever the Prefect layer or Slack adds. Every answer goes through the same authorisation:
the answerer must be listed in the step's ``approvers`` (``user:x`` or a member of ``group:y`` in
``settings.approvers_file``), may not approve a run they triggered, counts once towards
``min_approvals``, and a single authorised rejection rejects.
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
from typing import Any, Literal, Protocol

from flows.actions.control import ApprovalParams
from flows.errors import ApprovalError, ConfigError
from flows.record.store import iso, utcnow, write_atomic

Decision = Literal["approve", "reject"]
POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class Answer:
    """One person's answer to an approval step."""

    by: str
    decision: Decision
    reason: str = ""
    how: str = "cli"  # cli | scripted | prefect | slack
    at: str = ""
    after: float = 0.0  # scripted answers only: seconds after the request before it is given

    @property
    def user(self) -> str:
        return normalise_user(self.by)


def normalise_user(who: str) -> str:
    return who.removeprefix("user:").strip()


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


class InboxSource:
    """Polls ``<run dir>/approvals/<step>/`` for answer files."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.refusals: list[dict[str, Any]] = []

    def poll(self, run_id: str, step_id: str) -> list[Answer]:
        folder = inbox_dir(self.run_dir, step_id)
        if not folder.is_dir():
            return []
        answers: list[Answer] = []
        with self._lock:
            for path in sorted(folder.glob("*.json")):
                if path.name in self._seen:
                    continue
                self._seen.add(path.name)
                try:
                    doc = json.loads(path.read_text(encoding="utf-8"))
                    refused = doc.pop("refused", None)
                    answer = Answer(**doc)
                except (OSError, json.JSONDecodeError, TypeError):
                    continue
                if refused:
                    self.refusals.append(
                        {"step": step_id, "by": answer.user, "how": answer.how, "refused_because": refused}
                    )
                    continue
                answers.append(answer)
        return answers

    def take_refusals(self) -> list[dict[str, Any]]:
        with self._lock:
            out, self.refusals = self.refusals, []
        return out


@dataclass
class Responders:
    """Scripted answers per approval step id; they go through the same checks as CLI answers."""

    approvals: dict[str, list[Answer]] = field(default_factory=dict)
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
            due.append(replace(answer, how="scripted", at=answer.at or iso(utcnow())))
        self._given[step_id] = self._given.get(step_id, 0) + len(due)
        return due


# -- who may answer -------------------------------------------------------------------------
@dataclass(frozen=True)
class ApproverDirectory:
    """Groups of people, from ``settings.approvers_file`` (YAML ``groups: {name: [user, ...]}``)."""

    groups: dict[str, list[str]] = field(default_factory=dict)

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
        return cls(groups={k: [normalise_user(u) for u in v] for k, v in groups.items()})

    def allowed(self, user: str, approvers: Sequence[str]) -> bool:
        for entry in approvers:
            kind, _, name = entry.partition(":")
            if kind == "user" and name == user:
                return True
            if kind == "group" and user in self.groups.get(name, []):
                return True
        return False


def refusal_reason(
    answer: Answer, params: ApprovalParams, directory: ApproverDirectory, triggered_by: str | None
) -> str | None:
    """Why an answer does not count (None when it does)."""
    user = answer.user
    if not user:
        return "the answer names nobody"
    if not directory.allowed(user, params.approvers):
        return f"{user} is not an approver of this step (approvers: {', '.join(params.approvers)})"
    if answer.decision == "approve" and triggered_by and normalise_user(triggered_by) == user:
        return f"{user} triggered this run and cannot approve it"
    return None


def check_answer(
    answer: Answer, params: ApprovalParams, directory: ApproverDirectory, triggered_by: str | None
) -> None:
    """Raise :class:`ApprovalError` when the answer would be refused."""
    reason = refusal_reason(answer, params, directory, triggered_by)
    if reason is not None:
        raise ApprovalError(f"refused: {reason}")


# -- the wait -------------------------------------------------------------------------------
Emit = Callable[[str, dict[str, Any]], None]


@dataclass
class ApprovalWait:
    """Waits for one approval step's decision, polling every source."""

    params: ApprovalParams
    run_id: str
    step_id: str
    sources: Sequence[AnswerSource]
    directory: ApproverDirectory
    triggered_by: str | None
    emit: Emit
    cancel: threading.Event = field(default_factory=threading.Event)
    poll_interval: float = POLL_INTERVAL

    def run(self) -> dict[str, Any]:
        """Block until approved, rejected or timed out; return the ApprovalResult fields."""
        p = self.params
        self.emit(
            "approval.requested",
            {
                "approvers": p.approvers,
                "min_approvals": p.min_approvals,
                "timeout": p.timeout,
                "on_timeout": p.on_timeout,
                "reason": p.reason,
            },
        )
        granted: dict[str, Answer] = {}
        deadline = time.monotonic() + p.timeout
        escalated = False
        while True:
            for answer in self._poll():
                result = self._consider(answer, granted)
                if result is not None:
                    return result
            if time.monotonic() >= deadline:
                if p.on_timeout == "escalate" and not escalated:
                    escalated = True
                    deadline = time.monotonic() + p.timeout
                    self.emit(
                        "approval.escalated",
                        {
                            "after": p.timeout,
                            "waiting_for": p.approvers,
                            "note": "paging the escalation is done by the contacts layer",
                        },
                    )
                    continue
                reason = f"no decision within {p.timeout:g}s" + (" after escalation" if escalated else "")
                self.emit("approval.rejected", {"by": None, "how": "timeout", "reason": reason})
                return {"decision": "timed_out", "answers": [_public(a) for a in granted.values()], "summary": reason}
            if self.cancel.wait(self.poll_interval):
                raise ApprovalError(f"approval {self.step_id!r} was cancelled")

    def _poll(self) -> list[Answer]:
        answers: list[Answer] = []
        for source in self.sources:
            answers.extend(source.poll(self.run_id, self.step_id))
            take = getattr(source, "take_refusals", None)
            if take is not None:
                for refusal in take():
                    self.emit("approval.refused", {k: v for k, v in refusal.items() if k != "step"})
        return answers

    def _consider(self, answer: Answer, granted: dict[str, Answer]) -> dict[str, Any] | None:
        answer = answer if answer.at else replace(answer, at=iso(utcnow()))
        reason = refusal_reason(answer, self.params, self.directory, self.triggered_by)
        if reason is not None:
            self.emit("approval.refused", {**_public(answer), "refused_because": reason})
            return None
        if answer.decision == "reject":
            self.emit("approval.rejected", _public(answer))
            return {
                "decision": "rejected",
                "answers": [_public(a) for a in (*granted.values(), answer)],
                "summary": f"rejected by {answer.user}: {answer.reason}",
            }
        if answer.user in granted:
            return None  # the same person twice counts once
        granted[answer.user] = answer
        self.emit("approval.answered", {**_public(answer), "count": len(granted), "needed": self.params.min_approvals})
        if len(granted) >= self.params.min_approvals:
            people = sorted(granted)
            self.emit("approval.granted", {"by": people, "answers": [_public(a) for a in granted.values()]})
            return {
                "decision": "approved",
                "answers": [_public(a) for a in granted.values()],
                "summary": f"approved by {', '.join(people)}",
            }
        return None


def _public(answer: Answer) -> dict[str, str]:
    return {"by": answer.user, "decision": answer.decision, "how": answer.how, "at": answer.at, "reason": answer.reason}


def dry_run_grant(params: ApprovalParams, emit: Emit, mode: str) -> dict[str, Any]:
    """Dry-run: record the request and grant it as 'dry-run' so the plan goes on; nobody is asked."""
    emit(
        "approval.requested",
        {
            "approvers": params.approvers,
            "min_approvals": params.min_approvals,
            "timeout": params.timeout,
            "on_timeout": params.on_timeout,
            "reason": params.reason,
        },
    )
    note = f"auto-granted in {mode} mode: nobody was asked"
    emit("approval.granted", {"by": ["dry-run"], "how": "dry-run", "note": note})
    return {
        "decision": "approved",
        "answers": [{"by": "dry-run", "decision": "approve", "how": "dry-run", "at": iso(utcnow()), "reason": note}],
        "summary": note,
    }
