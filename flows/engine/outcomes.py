"""What a run and its steps came to: :class:`StepOutcome`, :class:`RunSummary`, :class:`UndoOutcome`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.language.spec import Mode

# Step statuses that end a step.
SUCCEEDED = "succeeded"
# A run outcome (never a step status): every required step succeeded, but a step marked
# ``continue_on_error`` failed, so part of the response (often evidence) is missing.
SUCCEEDED_WITH_ERRORS = "succeeded_with_errors"
FAILED = "failed"
TIMED_OUT = "timed_out"
SKIPPED = "skipped"
REJECTED = "rejected"
TERMINAL = frozenset({SUCCEEDED, FAILED, TIMED_OUT, SKIPPED, REJECTED})
FAILURES = frozenset({FAILED, TIMED_OUT, REJECTED})


@dataclass
class StepOutcome:
    """How one step ended. ``output`` is the action's result, or a list (one per item) for ``for_each``."""

    status: str
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    reason: str | None = None  # why it was skipped
    started_at: str | None = None
    finished_at: str | None = None
    items: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class RunSummary:
    """The result of :func:`flows.engine.run_playbook` and :func:`flows.engine.resume_run`."""

    run_id: str
    run_dir: Path
    mode: Mode
    outcome: str  # succeeded | succeeded_with_errors | failed | rejected
    steps: dict[str, StepOutcome] = field(default_factory=dict)
    refused_calls: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome in (SUCCEEDED, SUCCEEDED_WITH_ERRORS)


@dataclass
class UndoOutcome:
    """One saga entry as :func:`flows.engine.undo_run` left it."""

    step: str
    item_key: str
    action: str
    status: str  # undone | already_undone | not_undoable | failed | would_undo (dry-run)
    summary: str = ""
