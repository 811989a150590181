"""Acks and approval answers from people, delivered to a waiting run.

:func:`submit_answer` and :func:`submit_ack` are the one way every front end (the CLI, Slack
interactions, scripts) hands a person's answer to a run. They check the answer against the run's
own snapshot (its approval request, its directory and approvers, its trigger) and then drop it into
the run directory's inbox, one atomic file per answer. The waiting run polls that inbox whether it
runs in this process, in ``fireline serve`` or in a Prefect flow run on this machine, and checks
every answer again, so a receipt never says more than the run will do.

A receipt that says ``accepted=False`` carries the reason; the refused answer is still written
(marked refused) so the run records an ``approval.refused`` event. A replay (the same person giving
the same decision again, e.g. a re-delivered Slack payload) is ``duplicate=True`` and counts once.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.errors import ApprovalError
from flows.people.identity import Identity
from flows.record.store import iso, read_json_object, utcnow, write_atomic


@dataclass(frozen=True)
class AnswerReceipt:
    """What became of a submitted answer or ack.

    Attributes:
        accepted: the run's snapshot accepts it (it will count, or it is a duplicate that already did).
        reason: why not, one line, when ``accepted`` is False.
        run_id, step: the run and the step answered (for acks, the paging step or None for any).
        person_id: the canonical person.
        decision: ``approve``, ``reject`` or ``ack``.
        duplicate: the same person already gave this answer; it counts once.
        path: the inbox file written (None when nothing was written).
    """

    accepted: bool
    reason: str | None
    run_id: str
    step: str | None
    person_id: str
    decision: str
    duplicate: bool = False
    path: Path | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "reason": self.reason,
            "run_id": self.run_id,
            "step": self.step,
            "by": self.person_id,
            "decision": self.decision,
            "duplicate": self.duplicate,
            "answer": str(self.path) if self.path else None,
        }


def _run_dir(run: str | Path, settings: Any) -> Path:
    from flows.engine.runs import detect_crash, find_run

    run_dir = find_run(run, settings)
    detect_crash(run_dir)
    return run_dir


def submit_answer(
    run: str | Path, step: str, decision: str, identity: Identity, reason: str | None, settings: Any
) -> AnswerReceipt:
    """Hand an approval answer to a waiting run and say whether the run will accept it.

    Raises:
        ApprovalError: the step is not waiting for approval (nothing is written).
    """
    from flows.actions.control import ApprovalParams
    from flows.engine.approvals import Answer, parse_decision, read_inbox, refusal_reason, write_answer
    from flows.engine.runs import CRASHED, RUNNING, read_run_json
    from flows.engine.state import RunState
    from flows.people.snapshot import run_approvers

    run_dir = _run_dir(run, settings)
    data = read_run_json(run_dir)
    request = RunState(run_dir).read_request(step)
    if data.get("status") not in (RUNNING, CRASHED) or step not in data.get("waiting", []) or request is None:
        raise ApprovalError(f"step {step!r} of run {run_dir.name} is not waiting for approval")
    params = ApprovalParams.model_validate(request)
    approvers = run_approvers(run_dir, settings)
    person = approvers.canonical(identity.person_id) or identity.person_id
    answer = Answer(
        by=person, decision=decision, reason=reason or "", how=identity.via, at=iso(utcnow()),
        authenticated_as=identity.authenticated_as, claim=identity.claim,
    )  # fmt: skip
    earlier = [(a, r) for _, a, r in read_inbox(run_dir, step)]
    accounts = {
        a.authenticated_as: approvers.canonical(a.by) or a.by for a, r in earlier if not r and a.authenticated_as
    }
    refused = refusal_reason(answer, params, approvers, (data.get("trigger") or {}).get("by"), accounts)
    parsed = parse_decision(decision) or decision
    duplicate = refused is None and any(
        not r and approvers.canonical(a.by) == person and parse_decision(a.decision) == parsed for a, r in earlier
    )
    path = write_answer(run_dir, step, answer, refused=refused)
    return AnswerReceipt(refused is None, refused, run_dir.name, step, person, parsed, duplicate, path)


def ack_dir(run_dir: Path) -> Path:
    return run_dir / "acks"


def submit_ack(run: str | Path, identity: Identity, settings: Any, step: str | None = None) -> AnswerReceipt:
    """Acknowledge a run's page (``step``: one paging step; None: every page of the run).

    The ack qualifies when the person is known to the run's directory snapshot (or named by its
    contact tree); the paging step checks again and records ``page.acked`` or ``page.ack_refused``.

    Raises:
        ApprovalError: the run is not running (nothing is written).
    """
    from flows.engine.runs import CRASHED, RUNNING, read_run_json
    from flows.people.snapshot import ack_refusal

    run_dir = _run_dir(run, settings)
    data = read_run_json(run_dir)
    if data.get("status") not in (RUNNING, CRASHED):
        raise ApprovalError(f"run {run_dir.name} is not running ({data.get('status')}); there is nothing to ack")
    person, refused = ack_refusal(run_dir, settings, identity.person_id)
    folder = ack_dir(run_dir)
    duplicate = refused is None and any(
        doc.get("by") == person and doc.get("step") == step and not doc.get("refused") for _, doc in read_acks(run_dir)
    )
    doc = {
        "by": person, "step": step, "via": identity.via, "authenticated_as": identity.authenticated_as,
        "claim": identity.claim, "at": iso(utcnow()), "refused": refused,
    }  # fmt: skip
    path = folder / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
    write_atomic(path, json.dumps(doc).encode("utf-8"))
    return AnswerReceipt(refused is None, refused, run_dir.name, step, person, "ack", duplicate, path)


def read_acks(run_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every ack file of a run in arrival order: (file name, document)."""
    folder = ack_dir(run_dir)
    if not folder.is_dir():
        return []
    return [(p.name, read_json_object(p)) for p in sorted(folder.glob("*.json"))]
