"""Approval answers through Prefect: flow run input (API, ``send_to``) and Prefect Variables (the UI).

A fireline run never waits in ``pause_flow_run``: an expired pause fails the whole flow run even
when ``FlowPauseTimeout`` is caught, and ``suspend_flow_run`` needs a deployment. The engine's own
approval wait (with its own timeout and ``on_timeout``) polls answer sources instead; this module
is the source that reads what was sent to the flow run:

- **Flow run input** (API and Python): ``ApprovalInput(by=..., decision=...).send_to(flow_run_id,
  key_prefix=approval_key_prefix(step_id))``, or :func:`send_answer`, or ``POST
  /api/flow_runs/<id>/input`` with ``{"key": "<prefix>-<anything>", "value": "<json>"}``.
- **A Prefect Variable** (the UI has no form to send input to a *running* flow run, but it edits
  Variables): create the variable named by :func:`approval_variable_name`, e.g.
  ``fireline_approve_<run id>_<step>``, with the JSON value ``{"by": "alice", "decision":
  "approve", "reason": "..."}`` (or a list of such objects for several approvers).

Either way the answer then goes through the engine's authorisation like any other: the name in
``by`` must be an allowed approver, may not be the run's trigger, and counts once. Prefect does not
authenticate who typed it: whoever can write to the Prefect API can claim any name, so expose the
Prefect API only to the people who may approve.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import re
import threading
import time
from typing import Any, Literal
from uuid import UUID

from prefect.input.run_input import RunInput
from pydantic import BaseModel, ConfigDict, Field

from flows.engine.approvals import Answer

KEY_PREFIX = "fireline-approval"
MIN_POLL_INTERVAL = 1.0  # the engine polls every 0.2 s; one API round-trip a second is plenty
_NOT_KEY = re.compile(r"[^a-z0-9-]+")
_NOT_VARIABLE = re.compile(r"[^a-z0-9_]+")


class ApprovalAnswer(BaseModel):
    """The value of an answer sent through Prefect.

    ``decision`` is kept as sent: the engine accepts exactly ``approve`` or ``reject`` (blanks and
    case aside) and records anything else as ``approval.refused``, never as an approval.
    """

    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=200)
    decision: str = Field(max_length=200)
    reason: str = Field(default="", max_length=2000)


class ApprovalInput(RunInput):
    """An answer as flow run input (``ApprovalInput(...).send_to(flow_run_id, key_prefix=...)``)."""

    by: str
    decision: str
    reason: str = ""


def approval_key_prefix(step_id: str) -> str:
    """The flow run input key prefix of ``step_id``'s answers (keys allow only ``[a-z0-9-]``)."""
    digest = hashlib.sha256(step_id.encode()).hexdigest()[:6]
    return f"{KEY_PREFIX}-{_NOT_KEY.sub('-', step_id.lower()).strip('-')}-{digest}"


def approval_variable_name(run_id: str, step_id: str) -> str:
    """The Prefect Variable an operator creates in the UI to answer ``step_id`` of ``run_id``."""
    return f"fireline_approve_{_NOT_VARIABLE.sub('_', run_id.lower())}_{_NOT_VARIABLE.sub('_', step_id.lower())}"[:255]


def _answers_from(value: Any, *, at: str) -> list[Answer]:
    """Every answer in a value; a malformed one still becomes an answer, which the engine refuses and records."""
    items = value if isinstance(value, list) else [value]
    answers: list[Answer] = []
    for item in items:
        try:
            parsed = ApprovalAnswer.model_validate(item)
        except ValueError:
            by = item.get("by") if isinstance(item, dict) else None
            raw = item.get("decision") if isinstance(item, dict) else item
            answers.append(Answer(by=str(by or "?")[:200], decision=str(raw)[:200], reason="malformed answer",
                                  how="prefect", at=at, authenticated_as="prefect"))  # fmt: skip
            continue
        answers.append(Answer(by=parsed.by, decision=parsed.decision, reason=parsed.reason, how="prefect", at=at,
                              authenticated_as="prefect"))  # fmt: skip
    return answers


class PrefectAnswerSource:
    """An :class:`~flows.engine.approvals.AnswerSource` reading answers sent to one flow run."""

    def __init__(self, flow_run_id: str, *, min_interval: float = MIN_POLL_INTERVAL, variables: bool = True) -> None:
        self.flow_run_id = UUID(flow_run_id)
        self.min_interval = min_interval
        self.variables = variables
        self._seen: set[str] = set()
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        # Approval waits poll from the engine's waiter thread, which does not carry the flow's context:
        # without it the client would not know the runtime's API URL.
        self._context = contextvars.copy_context()

    def poll(self, run_id: str, step_id: str) -> list[Answer]:
        with self._lock:
            now = time.monotonic()
            if now - self._last.get(step_id, float("-inf")) < self.min_interval:
                return []
            self._last[step_id] = now
        return self._context.copy().run(self._poll, run_id, step_id)

    def _poll(self, run_id: str, step_id: str) -> list[Answer]:
        from prefect.client.orchestration import get_client

        answers: list[Answer] = []
        with get_client(sync_client=True) as client:
            prefix = approval_key_prefix(step_id)
            for entry in client.filter_flow_run_input(
                self.flow_run_id, prefix, limit=100, exclude_keys=set(self._seen)
            ):
                self._seen.add(entry.key)
                at = entry.created.isoformat() if entry.created else ""
                try:
                    value = json.loads(entry.value)
                except json.JSONDecodeError:
                    continue
                # RunInput.send_to wraps nothing for a RunInput subclass: the fields are the value.
                answers.extend(_answers_from(value, at=at))
            if self.variables:
                answers.extend(self._from_variable(client, run_id, step_id))
        return answers

    def _from_variable(self, client: Any, run_id: str, step_id: str) -> list[Answer]:
        variable = client.read_variable_by_name(approval_variable_name(run_id, step_id))
        if variable is None:
            return []
        marker = f"variable:{variable.id}:{variable.updated}"
        if marker in self._seen:
            return []
        self._seen.add(marker)
        value = variable.value
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return []
        return _answers_from(value, at=str(variable.updated or ""))


def send_answer(
    flow_run_id: str, step_id: str, *, by: str, decision: Literal["approve", "reject"], reason: str = ""
) -> None:
    """Send an approval answer to a running ``respond`` flow run through the Prefect API."""
    ApprovalInput(by=by, decision=decision, reason=reason).send_to(
        UUID(flow_run_id), sender=f"fireline:{by}", key_prefix=approval_key_prefix(step_id)
    )
