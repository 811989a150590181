"""Starting, resuming and undoing runs.

Everything that can be wrong with a request (playbook, alert, inputs) is checked before the run
directory exists, so a refused request leaves nothing behind. A started run holds
``state/lock.json`` (pid and process start time) until it ends; a run whose process died is marked
crashed (:func:`flows.engine.runs.detect_crash`) and finished by :func:`resume_run`.
"""

from __future__ import annotations

import getpass
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flows.actions.context import ActionContext, Incident, RunServices
from flows.actions.registry import Registry, default_registry
from flows.config import Settings, load_settings
from flows.engine.alerts import Alert, normalise
from flows.engine.approvals import AnswerSource, InboxSource, Responders
from flows.engine.executor import StepExecutor, ThreadExecutor
from flows.engine.inputs import redact_inputs, resolve_inputs
from flows.engine.outcomes import FAILURES, REJECTED, SUCCEEDED, SUCCEEDED_WITH_ERRORS, RunSummary, StepOutcome
from flows.engine.redact import RedactingRecord
from flows.engine.runs import CRASHED, FINISHED, RUNNING, detect_crash, find_run, mark_crashed_runs, read_run_json
from flows.engine.scheduler import Scheduler
from flows.engine.state import RunState
from flows.engine.work import Progress, RunDoc, RunEnv
from flows.errors import RunError
from flows.language.dag import check_graph
from flows.language.spec import Mode, Playbook
from flows.record.anchor import anchor_sink
from flows.record.seal import sealer_for
from flows.record.store import iso, utcnow


@dataclass(frozen=True)
class ResolvedPlaybook:
    """A playbook ready to run: the model, its file and the file's sha256."""

    playbook: Playbook
    path: Path
    sha256: str


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


def resolve_playbook(ref: str | Path, settings: Settings) -> ResolvedPlaybook:
    """Load a playbook from a path, or by name from ``settings.playbooks_dir``."""
    from flows.language.loader import load_playbook

    path = Path(ref)
    if not path.is_file():
        folder = settings.playbooks_dir
        named = [folder / f"{ref}.yaml", folder / f"{ref}.yml"]
        found = next((p for p in named if p.is_file()), None)
        if found is None:
            raise RunError(f"unknown playbook {str(ref)!r}: not a file, and not a playbook name in {folder}/")
        path = found
    loaded = load_playbook(path)
    return ResolvedPlaybook(loaded.playbook, loaded.path, loaded.sha256)


def validate_request(
    playbook: str | Path,
    *,
    inputs: dict[str, Any] | None = None,
    alert: dict[str, Any] | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> ResolvedPlaybook:
    """Check a run request the way :func:`run_playbook` does, without starting anything."""
    settings = settings or load_settings()
    resolved = resolve_playbook(playbook, settings)
    check_runnable(resolved.playbook, registry or default_registry())
    alert_model = normalise(alert) if alert is not None else Alert()
    incident = Incident(id="check", started_at=utcnow(), severity=resolved.playbook.metadata.severity)
    resolve_inputs(resolved.playbook, inputs, {"alert": alert_model.as_template(), "incident": incident.as_template()})
    return resolved


def check_runnable(playbook: Playbook, registry: Registry) -> None:
    """Refuse a playbook whose graph or actions cannot run (a validated one always can)."""
    problems = check_graph(playbook.steps)
    if problems:
        raise RunError(f"playbook {playbook.ref}: {problems[0].detail}")
    for step in playbook.steps:
        registry.get(step.action)
        for handler in step.on_failure:
            registry.get(handler.action)


def new_run_id(name: str) -> str:
    return f"{utcnow().strftime('%Y%m%dT%H%M%SZ')}-{name[:40]}-{secrets.token_hex(3)}"


def _default_trigger() -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"by": f"user:{user}", "how": "api"}


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
) -> RunSummary:
    """Validate the request, then run the playbook to its end and return the summary.

    ``alerts`` is the incident's alert list (``alerts`` in templates; default: the one ``alert``).

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
    trigger = {**_default_trigger(), **(trigger or {})}
    mark_crashed_runs(settings)
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
    sealer_for(settings)  # a bad record key refuses the run before anything is written
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
        "alert": {"source": alert_model.source, "fingerprint": alert_model.fingerprint, "labels": alert_model.labels,
                  "raw": alert_model.raw},
        "alerts": meta["alerts"],
        "started_at": iso(started),
        "finished_at": None,
        "steps": {},
        "actions": _step_actions(book, registry),
        "report": {"formats": list(book.report.formats)},
        "waiting": [],
        "people": people.write(run_dir),
    }
    return _drive(
        _Launch(
            run_dir, run_id, book, incident,
            scope | {"inputs": resolved_inputs, "alerts": list(meta["alerts"])}, doc_data, state, settings, registry,
            executor, _sources(run_dir, responders, answer_sources), trigger, progress, resumed=False, clock=clock,
        )
    )  # fmt: skip


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
    if force_reason is not None:
        from flows.engine.runs import force_takeover

        force_takeover(run_dir, force_reason, str(_default_trigger()["by"]))
    detect_crash(run_dir)
    data = read_run_json(run_dir)
    status = data.get("status")
    if status == FINISHED:
        raise RunError(f"run {run_dir.name} already finished ({data.get('outcome')}); there is nothing to resume")
    if status == RUNNING:
        raise RunError(f"run {run_dir.name} is still running in another process; resume it only after it stops")
    state = RunState(run_dir)
    meta = state.meta()
    if meta is None:
        raise RunError(f"run {run_dir.name} has no state/run.json; it cannot be resumed")
    from flows.language.loader import load_playbook

    loaded = load_playbook(Path(meta["playbook_path"]))
    if loaded.sha256 != meta["sha256"]:
        raise RunError(f"playbook {meta['playbook_path']} changed since run {run_dir.name} started; refusing to resume")
    book = loaded.playbook
    check_runnable(book, registry)
    incident = Incident(
        id=meta["incident"]["id"],
        started_at=datetime.fromisoformat(meta["incident"]["started_at"].replace("Z", "+00:00")),
        severity=book.metadata.severity,
        mode=meta["mode"],
        title=book.metadata.title,
    )
    alert_model = Alert.model_validate(meta["alert"])
    scope = {"alert": alert_model.as_template(), "incident": incident.as_template(), "inputs": meta["inputs"],
             "alerts": list(meta.get("alerts") or [alert_model.brief()])}
    data.update(status=RUNNING, outcome=None, resumed=[*data.get("resumed", []), iso(utcnow())])
    return _drive(
        _Launch(
            run_dir, data["run_id"], book, incident, scope, data, state, settings, registry, executor,
            _sources(run_dir, responders, answer_sources), meta["trigger"], progress, resumed=True, clock=clock,
        )
    )  # fmt: skip


def _step_actions(book: Playbook, registry: Registry) -> dict[str, dict[str, Any]]:
    """Each step's action, kind and undoability, so the report reads them from the record alone."""
    out: dict[str, dict[str, Any]] = {}
    for step in book.steps:
        action = registry.get(step.action)
        out[step.id] = {"action": step.action, "kind": action.kind.value, "undoable": action.undoable()}
        if step.for_each is not None:
            out[step.id]["for_each"] = True
    return out


def _first_starts(run_dir: Path) -> dict[str, str]:
    """When each step first started, from the event log (run.json lists a step only once it ended)."""
    from flows.record.store import read_events

    first: dict[str, str] = {}
    for event in read_events(run_dir / "events.jsonl"):
        if event.get("type") == "step.started" and event.get("item") is None and event.get("step"):
            first.setdefault(str(event["step"]), str(event["at"]))
    return first


def _keep_first_times(first: dict[str, str], steps: dict[str, StepOutcome]) -> dict[str, dict[str, Any]]:
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


def _outcome(book: Playbook, steps: dict[str, StepOutcome]) -> str:
    required = [sid for sid, o in steps.items() if o.status in FAILURES and not book.step(sid).continue_on_error]
    if any(steps[sid].status == REJECTED for sid in required):
        return REJECTED
    if required:
        return "failed"
    return SUCCEEDED_WITH_ERRORS if any(o.status in FAILURES for o in steps.values()) else SUCCEEDED


def _drive(launch: _Launch) -> RunSummary:
    run_dir, run_id, book, incident, state = launch.run_dir, launch.run_id, launch.book, launch.incident, launch.state
    first_attempt = _first_starts(run_dir) if launch.resumed else {}
    settings, trigger, executor = launch.settings, launch.trigger, launch.executor
    state.acquire()
    services = RunServices()
    from flows.engine.waits import SystemClock

    labels = (launch.doc.get("alert") or {}).get("labels") or {}
    library = Path(str((launch.doc.get("playbook") or {}).get("path") or ".")).parent
    services.cache.update({"clock": launch.clock or SystemClock(), "people.contacts": book.contacts,
                           "people.labels": labels, "people.library": library})  # fmt: skip
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

    live.register(run_id, record, launch.scope)
    try:
        steps = Scheduler(env, runner, launch.scope).run()
    finally:
        live.unregister(run_id)
        if own_executor:
            runner.shutdown()
    outcome = _outcome(book, steps)
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
        steps=_keep_first_times(first_attempt, steps),
        waiting=[],
    )
    _write_report(run_dir, record, settings)  # before the sinks close: the Slack thread gets the summary
    close_sinks(sinks)
    state.release()
    return RunSummary(run_id, run_dir, incident.mode, outcome, steps, refused)


def _write_report(run_dir: Path, record: RedactingRecord, settings: Settings) -> None:
    from flows.report.publish import finish_run_reports

    try:
        finish_run_reports(run_dir, settings, record)
    except Exception as e:  # a report failure must not change the run's outcome
        record.emit("report.failed", detail={"error": f"{type(e).__name__}: {e}"})
        record.update_run()


__all__ = [
    "CRASHED",
    "ResolvedPlaybook",
    "check_runnable",
    "resolve_playbook",
    "resume_run",
    "run_playbook",
    "validate_request",
]
