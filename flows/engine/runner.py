"""Starting and resuming runs, and driving them to their end.

Everything that can be wrong with a request (playbook, alert, inputs; :mod:`flows.engine.requests`)
is checked before the run directory exists, so a refused request leaves nothing behind; what a
resume needs is checked by :mod:`flows.engine.resumable`, and the run's outcome and reports come
from :mod:`flows.engine.finish`. A started run holds
``state/lock.json`` (pid and process start time) until it ends; a run whose process died is marked
crashed (:func:`flows.engine.runs.detect_crash`) and finished by :func:`resume_run`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.actions.context import ActionContext, Incident, RunServices
from flows.actions.registry import Registry, default_registry
from flows.config import Settings, load_settings
from flows.engine.alerts import Alert, normalise
from flows.engine.approvals import AnswerSource, InboxSource, Responders
from flows.engine.executor import StepExecutor, ThreadExecutor
from flows.engine.finish import first_starts, keep_first_times, run_outcome, step_actions, write_reports
from flows.engine.inputs import redact_inputs, resolve_inputs
from flows.engine.outcomes import RunSummary
from flows.engine.redact import RedactingRecord
from flows.engine.requests import (
    ResolvedPlaybook,
    check_configuration,
    check_runnable,
    default_trigger,
    new_run_id,
    resolve_playbook,
    validate_request,
)
from flows.engine.resumable import load_resumable
from flows.engine.runs import CRASHED, FINISHED, RUNNING, find_run, mark_crashed_runs
from flows.engine.scheduler import Scheduler
from flows.engine.state import RunState
from flows.engine.turns import finishing
from flows.engine.work import Progress, RunDoc, RunEnv
from flows.errors import RunError
from flows.language.spec import Mode, Playbook
from flows.record.anchor import anchor_sink
from flows.record.seal import sealer_for
from flows.record.store import iso, utcnow


@dataclass
class _Launch:
    """Everything a started or resumed run is driven with."""

    run_dir: Path
    run_id: str
    book: Playbook
    incident: Incident
    scope: dict[str, Any]
    doc: dict[str, Any]
    state: RunState
    settings: Settings
    registry: Registry
    executor: StepExecutor | None
    sources: list[AnswerSource]
    trigger: dict[str, Any]
    progress: Progress | None
    resumed: bool
    clock: Any = None  # flows.engine.waits.Clock for approval and page waits (None: the wall clock)
    cache: dict[str, Any] | None = None  # extra per-run services (a drill's client hooks)


def _sources(run_dir: Path, responders: Responders | None, extra: Sequence[AnswerSource]) -> list[AnswerSource]:
    sources: list[AnswerSource] = [InboxSource(run_dir)]
    if responders is not None:
        sources.append(responders)
    sources.extend(extra)
    return sources


def run_playbook(
    playbook: str | Path,
    *,
    inputs: dict[str, Any] | None = None,
    alert: dict[str, Any] | None = None,
    mode: Mode = "live",
    settings: Settings | None = None,
    responders: Responders | None = None,
    run_id: str | None = None,
    executor: StepExecutor | None = None,
    trigger: dict[str, Any] | None = None,
    registry: Registry | None = None,
    answer_sources: Sequence[AnswerSource] = (),
    progress: Progress | None = None,
    alerts: list[dict[str, Any]] | None = None,
    clock: Any = None,
    cache: dict[str, Any] | None = None,
) -> RunSummary:
    """Validate the request, then run the playbook to its end and return the summary.

    ``alerts`` is the incident's alert list (``alerts`` in templates; default: the one ``alert``).
    ``cache`` seeds the run's services (``aws.client_hooks``: callables given each new AWS client).

    Raises a :class:`~flows.errors.FirelineError` before writing anything when the playbook, the
    alert or the inputs are wrong. A run that starts always ends with a run record, whatever its outcome.
    """
    settings = settings or load_settings()
    registry = registry or default_registry()
    resolved = resolve_playbook(playbook, settings)
    book = resolved.playbook
    check_runnable(book, registry)
    alert_model = normalise(alert) if alert is not None else Alert()
    run_id = run_id or new_run_id(book.metadata.name)
    started = utcnow()
    trigger = {**default_trigger(), **(trigger or {})}
    _sweep_crashed(settings)
    incident = Incident(
        id=str(trigger.get("incident_id") or run_id),
        started_at=started,
        severity=book.metadata.severity,
        mode=mode,
        title=book.metadata.title,
    )
    scope = {"alert": alert_model.as_template(), "incident": incident.as_template()}
    resolved_inputs = resolve_inputs(book, inputs, scope)
    run_dir = settings.runs_dir / run_id
    if run_dir.exists():
        raise RunError(f"run {run_id!r} already exists at {run_dir}")
    meta = {
        "run_id": run_id,
        "playbook_path": str(resolved.path.resolve()),
        "sha256": resolved.sha256,
        "inputs": resolved_inputs,
        "alert": alert_model.model_dump(mode="json"),
        "alerts": alerts if alerts is not None else [alert_model.brief()],
        "trigger": trigger,
        "mode": mode,
        "incident": {"id": incident.id, "started_at": iso(started)},
    }
    check_configuration(settings)  # a bad record key or approvers file refuses the run before anything is written
    from flows.people.snapshot import prepare_snapshot

    people = prepare_snapshot(settings, book.contacts, resolved.path.parent)  # a bad directory or tree refuses the run
    state = RunState(run_dir)
    state.create(meta)
    doc_data: dict[str, Any] = {
        "run_id": run_id,
        "status": RUNNING,
        "mode": mode,
        "outcome": None,
        "playbook": {
            "name": book.metadata.name,
            "version": book.metadata.version,
            "ref": book.ref,
            "sha256": resolved.sha256,
            "path": str(resolved.path),
        },
        "incident": incident.as_template(),
        "trigger": trigger,
        "inputs": redact_inputs(resolved_inputs),
        "alert": {
            "source": alert_model.source,
            "fingerprint": alert_model.fingerprint,
            "labels": alert_model.labels,
            "raw": alert_model.raw,
        },
        "alerts": meta["alerts"],
        "started_at": iso(started),
        "finished_at": None,
        "steps": {},
        "actions": step_actions(book, registry),
        "report": {"formats": list(book.report.formats)},
        "waiting": [],
        "people": people.write(run_dir),
    }
    return _drive(
        _Launch(
            run_dir, run_id, book, incident,
            scope | {"inputs": resolved_inputs, "alerts": list(meta["alerts"])}, doc_data, state, settings, registry,
            executor, _sources(run_dir, responders, answer_sources), trigger, progress, resumed=False, clock=clock,
            cache=cache,
        )
    )  # fmt: skip


_SWEPT: dict[str, float] = {}  # runs directory: when this process last swept it for crashed runs
SWEEP_EVERY = 1.0  # seconds; a warm server starting runs back to back sweeps at most this often


def _sweep_crashed(settings: Settings) -> None:
    """The start-up sweep for crashed runs (:func:`mark_crashed_runs`), at most every :data:`SWEEP_EVERY`.

    Each sweep lists the runs directory; under an alert storm it was ~0.7 ms of each run's way to its
    first step, finding nothing new. ``fireline runs`` marks crashed runs on its own.
    """
    key = str(settings.runs_dir)
    now = time.monotonic()
    if now - _SWEPT.get(key, float("-inf")) >= SWEEP_EVERY:
        _SWEPT[key] = now
        mark_crashed_runs(settings)


def resume_run(
    run_id_or_dir: str | Path,
    *,
    settings: Settings | None = None,
    responders: Responders | None = None,
    executor: StepExecutor | None = None,
    registry: Registry | None = None,
    answer_sources: Sequence[AnswerSource] = (),
    progress: Progress | None = None,
    force_reason: str | None = None,
    clock: Any = None,
) -> RunSummary:
    """Finish a crashed or interrupted run: completed step-items are reused, never applied again.

    ``force_reason`` takes over a run whose owner's lock was written on another machine and still
    looks alive (its lease has not lapsed); the reason is recorded.
    """
    settings = settings or load_settings()
    registry = registry or default_registry()
    run_dir = find_run(run_id_or_dir, settings)
    check_configuration(settings)
    resumable = load_resumable(run_dir, registry, force_reason)
    book, incident, scope, data, state, meta = (
        resumable.book,
        resumable.incident,
        resumable.scope,
        resumable.data,
        resumable.state,
        resumable.meta,
    )
    return _drive(
        _Launch(
            run_dir, data["run_id"], book, incident, scope, data, state, settings, registry, executor,
            _sources(run_dir, responders, answer_sources), meta["trigger"], progress, resumed=True, clock=clock,
        )
    )  # fmt: skip


def _drive(launch: _Launch) -> RunSummary:
    run_dir, run_id, book, incident, state = launch.run_dir, launch.run_id, launch.book, launch.incident, launch.state
    first_attempt = first_starts(run_dir) if launch.resumed else {}
    settings, trigger, executor = launch.settings, launch.trigger, launch.executor
    state.acquire()
    services = RunServices()
    from flows.engine.waits import SystemClock

    labels = (launch.doc.get("alert") or {}).get("labels") or {}
    library = Path(str((launch.doc.get("playbook") or {}).get("path") or ".")).parent
    services.cache.update({"clock": launch.clock or SystemClock(), "people.contacts": book.contacts,
                           "people.labels": labels, "people.library": library, **(launch.cache or {})})  # fmt: skip
    sealing = {"sealer": sealer_for(settings), "anchor": anchor_sink(settings)}
    record = RedactingRecord(run_dir, run_id, services.secret_values, incident.mode, **sealing)
    doc = RunDoc(record, launch.doc)
    ctx = ActionContext(
        run_id=run_id,
        incident=incident,
        settings=settings,
        record=record,
        actor=str(trigger.get("by", "fireline")),
        playbook=book.ref,
        services=services,
    )
    if launch.resumed:
        record.emit("run.resumed", detail={"mode": incident.mode, "playbook": book.ref})
    else:
        record.emit(
            "run.started",
            detail={
                "mode": incident.mode,
                "playbook": book.ref,
                "sha256": launch.doc["playbook"]["sha256"],
                "trigger": trigger,
                "inputs": launch.doc["inputs"],
                "incident": incident.as_template(),
            },
        )
    doc.update()
    from flows.people.sinks import attach_timeline_sinks, close_sinks  # the Slack timeline, loaded by module name
    from flows.people.snapshot import run_approvers

    sinks = attach_timeline_sinks(record, settings=settings, run_id=run_id, mode=incident.mode)
    env = RunEnv(
        playbook=book,
        registry=launch.registry,
        ctx=ctx,
        state=state,
        doc=doc,
        sources=launch.sources,
        directory=run_approvers(run_dir, settings),
        triggered_by=trigger.get("by"),
        progress=launch.progress,
    )
    own_executor = executor is None
    runner: StepExecutor = executor or ThreadExecutor()
    clock = time.monotonic()
    from flows.triggers import live  # alerts of this incident reach the run while it goes on

    live.register(run_id, record, launch.scope, launch.doc.get("trigger") or {})
    try:
        steps = Scheduler(env, runner, launch.scope).run()
        finishing()  # runs of this process still on their way to containment go first (a storm's)
    finally:
        live.unregister(run_id)
        if own_executor:
            runner.shutdown()
    outcome = run_outcome(book, steps)
    finished = iso(utcnow())
    refused = list(services.refused_calls)
    record.emit(
        "run.finished",
        detail={
            "outcome": outcome,
            "mode": incident.mode,
            "seconds": round(time.monotonic() - clock, 3),
            "refused_calls": len(refused),
        },
    )
    doc.update(
        status=FINISHED,
        outcome=outcome,
        finished_at=finished,
        refused_calls=refused,
        steps=keep_first_times(first_attempt, steps),
        waiting=[],
    )
    write_reports(run_dir, record, settings)  # before the sinks close: the Slack thread gets the summary
    close_sinks(sinks)
    state.release()
    return RunSummary(run_id, run_dir, incident.mode, outcome, steps, refused)


__all__ = [
    "CRASHED",
    "ResolvedPlaybook",
    "check_runnable",
    "new_run_id",
    "resolve_playbook",
    "resume_run",
    "run_playbook",
    "validate_request",
]
