"""The wait for one approval step's decision, as a condition the run's waiter thread polls.

The deadline is persisted in ``state/waits/<step>.json`` when the request is first made, so a
resumed run keeps the original deadline (and whether it already escalated) instead of restarting
the clock. Every poll reads every answer source; each answer is checked by
:func:`~flows.engine.approvals.refusal_reason`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flows.actions.control import ApprovalParams
from flows.engine.approvals import (
    Answer,
    AnswerSource,
    ApproverDirectory,
    Approvers,
    parse_decision,
    refusal_reason,
)
from flows.errors import ApprovalError
from flows.record.store import iso, utcnow, write_atomic

Emit = Callable[[str, dict[str, Any]], None]
RequestHook = Callable[[ApprovalParams], None]


def _request_detail(p: ApprovalParams) -> dict[str, Any]:
    return {
        "approvers": p.approvers,
        "min_approvals": p.min_approvals,
        "timeout": p.timeout,
        "on_timeout": p.on_timeout,
        "reason": p.reason,
    }


@dataclass
class ApprovalWait:
    """Waits for one approval step's decision, polling every source.

    ``state_file`` (``state/waits/<step>.json``) holds the deadline in epoch seconds; without it the
    deadline lives in memory only. ``on_request`` is called once when the request is first made
    (to page the approvers with the step's plan).
    """

    params: ApprovalParams
    run_id: str
    step_id: str
    sources: Sequence[AnswerSource]
    directory: ApproverDirectory | Approvers
    triggered_by: str | None
    emit: Emit
    cancel: threading.Event = field(default_factory=threading.Event)
    poll_interval: float = 0.2
    state_file: Path | None = None
    plan_summary: str | None = None
    on_request: RequestHook | None = None
    _deadline: float = 0.0
    _escalated: bool = False
    _granted: dict[str, Answer] = field(default_factory=dict)
    _announce: dict[str, Any] | None = None
    _ask: bool = False
    _accounts: dict[str, str] = field(default_factory=dict)

    @property
    def approvers(self) -> Approvers:
        d = self.directory
        return d if isinstance(d, Approvers) else Approvers(legacy=d)

    # -- the WaitCondition protocol -------------------------------------------------------------
    def start(self, now: float) -> None:
        # The request is announced on the first poll, after the waiter's pass has marked the step
        # waiting in run.json: whoever sees approval.requested can answer at once.
        saved = self._load()
        if saved is not None:
            self._deadline = float(saved["deadline"])
            self._escalated = bool(saved.get("escalated"))
            self._announce = {**_request_detail(self.params), "resumed": True, "deadline": saved.get("deadline_at")}
            return
        self._deadline = now + self.params.timeout
        self._save()
        self._announce = _request_detail(self.params)
        if self.plan_summary:
            self._announce["plan"] = self.plan_summary
        self._ask = True

    def _announced(self) -> None:
        if self._announce is None:
            return
        self.emit("approval.requested", self._announce)
        self._announce = None
        if self._ask and self.on_request is not None:
            self.on_request(self.params)

    def next_due(self) -> float | None:
        return self._deadline

    def poll(self, now: float) -> dict[str, Any] | None:
        if self.cancel.is_set():
            raise ApprovalError(f"approval {self.step_id!r} was cancelled")
        self._announced()
        for answer in self._poll_sources():
            result = self._consider(answer)
            if result is not None:
                return result
        if now < self._deadline:
            return None
        for source in self.sources:  # an answer written just before the deadline still counts
            refresh = getattr(source, "refresh", None)
            if refresh is not None:
                refresh()
        for answer in self._poll_sources():
            result = self._consider(answer)
            if result is not None:
                return result
        p = self.params
        if p.on_timeout == "escalate" and not self._escalated:
            self._escalated = True
            self._deadline = now + p.timeout
            self._save()
            self.emit("approval.escalated", {"after": p.timeout, "waiting_for": p.approvers})
            return None
        reason = f"no decision within {p.timeout:g}s" + (" after escalation" if self._escalated else "")
        self.emit("approval.rejected", {"by": None, "how": "timeout", "reason": reason})
        return {"decision": "timed_out", "answers": [_public(a) for a in self._granted.values()], "summary": reason}

    def run(self) -> dict[str, Any]:
        """Block until decided (for callers without a waiter: tests, a handler)."""
        import time

        self.start(time.time())
        while True:
            result = self.poll(time.time())
            if result is not None:
                return result
            if self.cancel.wait(self.poll_interval):
                raise ApprovalError(f"approval {self.step_id!r} was cancelled")

    # -- persistence ------------------------------------------------------------------------
    def _load(self) -> dict[str, Any] | None:
        if self.state_file is None or not self.state_file.is_file():
            return None
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) and "deadline" in data else None

    def _save(self) -> None:
        if self.state_file is None:
            return
        from datetime import UTC, datetime

        at = iso(datetime.fromtimestamp(self._deadline, UTC))
        doc = {"deadline": self._deadline, "deadline_at": at, "escalated": self._escalated}
        write_atomic(self.state_file, json.dumps(doc).encode())

    # -- answers ----------------------------------------------------------------------------
    def _poll_sources(self) -> list[Answer]:
        answers: list[Answer] = []
        for source in self.sources:
            answers.extend(source.poll(self.run_id, self.step_id))
            take = getattr(source, "take_refusals", None)
            if take is not None:
                for refusal in take():
                    self.emit("approval.refused", {k: v for k, v in refusal.items() if k != "step"})
        return answers

    def _consider(self, answer: Answer) -> dict[str, Any] | None:
        answer = answer if answer.at else replace(answer, at=iso(utcnow()))
        approvers = self.approvers
        reason = refusal_reason(answer, self.params, approvers, self.triggered_by, self._accounts)
        person = approvers.canonical(answer.by) or answer.user
        if reason is not None:
            self.emit("approval.refused", {**_public(replace(answer, by=person)), "refused_because": reason})
            return None
        answer = replace(answer, by=person, decision=parse_decision(answer.decision) or answer.decision)
        if answer.authenticated_as:
            self._accounts[answer.authenticated_as] = person
        if answer.decision == "reject":
            self.emit("approval.rejected", _public(answer))
            return {
                "decision": "rejected",
                "answers": [_public(a) for a in (*self._granted.values(), answer)],
                "summary": f"rejected by {person}: {answer.reason}",
            }
        if person in self._granted:
            return None  # the same person twice counts once
        self._granted[person] = answer
        count = len(self._granted)
        self.emit("approval.answered", {**_public(answer), "count": count, "needed": self.params.min_approvals})
        if count < self.params.min_approvals:
            return None
        people = sorted(self._granted)
        self.emit("approval.granted", {"by": people, "answers": [_public(a) for a in self._granted.values()]})
        return {
            "decision": "approved",
            "answers": [_public(a) for a in self._granted.values()],
            "summary": f"approved by {', '.join(people)}",
        }


def _public(answer: Answer) -> dict[str, Any]:
    out: dict[str, Any] = {"by": answer.user, "decision": answer.decision, "how": answer.how, "at": answer.at,
                           "reason": answer.reason}  # fmt: skip
    if answer.authenticated_as:
        out["authenticated_as"] = answer.authenticated_as
    if answer.claim is not None:
        out["claim"] = answer.claim
    return out


def dry_run_grant(params: ApprovalParams, emit: Emit, mode: str) -> dict[str, Any]:
    """Dry-run: record the request and grant it as 'dry-run' so the plan goes on; nobody is asked."""
    emit("approval.requested", _request_detail(params))
    note = f"auto-granted in {mode} mode: nobody was asked"
    emit("approval.granted", {"by": ["dry-run"], "how": "dry-run", "note": note})
    return {
        "decision": "approved",
        "answers": [{"by": "dry-run", "decision": "approve", "how": "dry-run", "at": iso(utcnow()), "reason": note}],
        "summary": note,
    }
