"""The engine: runs playbooks (scheduler, templates, modes, guards, approvals, durable state, run record).

Public API::

    run_playbook(playbook, *, inputs, alert, mode, settings, responders, run_id, executor, trigger) -> RunSummary
    resume_run(run_id_or_dir, *, settings, responders, executor) -> RunSummary
    undo_run(run_id_or_dir, step=None, *, settings) -> list[UndoOutcome]

The engine never imports Prefect: the Prefect layer supplies a :class:`StepExecutor` and extra
:class:`AnswerSource` objects and wraps :func:`run_playbook` in a flow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.engine.approvals import Answer, AnswerSource, Responders
    from flows.engine.executor import StepExecutor, ThreadExecutor
    from flows.engine.outcomes import RunSummary, StepOutcome, UndoOutcome
    from flows.engine.runner import resume_run, run_playbook
    from flows.engine.undo import undo_run
    from flows.language.spec import Mode

# Resolved on first use, so that importing one submodule (the warm-runtime hand-off client, the
# alert model) does not load the whole engine: `fireline run` against a warm server stays fast.
_LAZY = {
    "Answer": "flows.engine.approvals",
    "AnswerSource": "flows.engine.approvals",
    "Responders": "flows.engine.approvals",
    "StepExecutor": "flows.engine.executor",
    "ThreadExecutor": "flows.engine.executor",
    "RunSummary": "flows.engine.outcomes",
    "StepOutcome": "flows.engine.outcomes",
    "UndoOutcome": "flows.engine.outcomes",
    "resume_run": "flows.engine.runner",
    "run_playbook": "flows.engine.runner",
    "undo_run": "flows.engine.undo",
    "Mode": "flows.language.spec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flows.engine' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
