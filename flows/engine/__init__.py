"""The engine: runs playbooks (scheduler, templates, modes, guards, approvals, durable state, run record).

Public API::

    run_playbook(playbook, *, inputs, alert, mode, settings, responders, run_id, executor, trigger) -> RunSummary
    resume_run(run_id_or_dir, *, settings, responders, executor) -> RunSummary
    undo_run(run_id_or_dir, step=None, *, settings) -> list[UndoOutcome]

The engine never imports Prefect: the Prefect layer supplies a :class:`StepExecutor` and extra
:class:`AnswerSource` objects and wraps :func:`run_playbook` in a flow.
"""

from __future__ import annotations

from flows.engine.approvals import Answer, AnswerSource, Responders
from flows.engine.executor import StepExecutor, ThreadExecutor
from flows.engine.outcomes import RunSummary, StepOutcome, UndoOutcome
from flows.engine.runner import resume_run, run_playbook
from flows.engine.undo import undo_run
from flows.spec import Mode

__all__ = [
    "Answer",
    "AnswerSource",
    "Mode",
    "Responders",
    "RunSummary",
    "StepExecutor",
    "StepOutcome",
    "ThreadExecutor",
    "UndoOutcome",
    "resume_run",
    "run_playbook",
    "undo_run",
]
