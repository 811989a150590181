"""Finishing a run: its outcome from the step outcomes, the step records run.json keeps, the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.actions.registry import Registry
from flows.config import Settings
from flows.engine.outcomes import FAILURES, REJECTED, SUCCEEDED, SUCCEEDED_WITH_ERRORS, StepOutcome
from flows.engine.redact import RedactingRecord
from flows.language.spec import Playbook


def step_actions(book: Playbook, registry: Registry) -> dict[str, dict[str, Any]]:
    """Each step's action, kind and undoability, so the report reads them from the record alone."""
    out: dict[str, dict[str, Any]] = {}
    for step in book.steps:
        action = registry.get(step.action)
        out[step.id] = {"action": step.action, "kind": action.kind.value, "undoable": action.undoable()}
        if step.for_each is not None:
            out[step.id]["for_each"] = True
    return out


def first_starts(run_dir: Path) -> dict[str, str]:
    """When each step first started, from the event log (run.json lists a step only once it ended)."""
    from flows.record.store import read_events

    first: dict[str, str] = {}
    for event in read_events(run_dir / "events.jsonl"):
        if event.get("type") == "step.started" and event.get("item") is None and event.get("step"):
            first.setdefault(str(event["step"]), str(event["at"]))
    return first


def keep_first_times(first: dict[str, str], steps: dict[str, StepOutcome]) -> dict[str, dict[str, Any]]:
    """Step records whose start is the first attempt's; a step the resume ran again says when."""
    out: dict[str, dict[str, Any]] = {}
    for sid, outcome in steps.items():
        doc = outcome.as_dict()
        earlier = first.get(sid)
        if earlier and doc.get("started_at") and earlier < doc["started_at"]:
            doc["resumed_at"] = doc["started_at"]
            doc["started_at"] = earlier
        out[sid] = doc
    return out


def run_outcome(book: Playbook, steps: dict[str, StepOutcome]) -> str:
    required = [sid for sid, o in steps.items() if o.status in FAILURES and not book.step(sid).continue_on_error]
    if any(steps[sid].status == REJECTED for sid in required):
        return REJECTED
    if required:
        return "failed"
    return SUCCEEDED_WITH_ERRORS if any(o.status in FAILURES for o in steps.values()) else SUCCEEDED


def write_reports(run_dir: Path, record: RedactingRecord, settings: Settings) -> None:
    from flows.report.publish import finish_run_reports

    try:
        finish_run_reports(run_dir, settings, record)
    except Exception as e:  # a report failure must not change the run's outcome
        record.emit("report.failed", detail={"error": f"{type(e).__name__}: {e}"})
        record.update_run()
