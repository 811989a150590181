"""``fireline undo RUN [STEP]``: reverse a run's undoable effects from its saga log, newest first.

Only this explicit command undoes anything; containment is never undone automatically. Each effect
is keyed by its idempotency key: an effect logged twice (re-applied after a crash) is undone once,
and an effect whose undoing is in the saga log is never undone again.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from flows.actions.context import ActionContext, Incident
from flows.actions.registry import Registry, default_registry
from flows.config import Settings, load_settings
from flows.engine.outcomes import UndoOutcome
from flows.engine.runs import RUNNING, detect_crash, find_run, read_run_json
from flows.engine.state import RunState
from flows.errors import RunError
from flows.record.store import RunRecord, iso, utcnow


def _effects(state: RunState, step: str | None) -> tuple[list[dict[str, Any]], set[str]]:
    """The last logged effect per idempotency key (in first-seen order) and the keys already undone."""
    effects: dict[str, dict[str, Any]] = {}
    undone: set[str] = set()
    for entry in state.saga():
        key = str(entry.get("idempotency_key"))
        if "undo_of" in entry:
            if entry.get("status") in ("undone", "already_undone"):
                undone.add(str(entry["undo_of"]))
        elif step is None or entry.get("step") == step:
            effects[key] = {**effects.get(key, {}), **entry}
    return list(effects.values()), undone


def undo_run(
    run_id_or_dir: str | Path,
    step: str | None = None,
    *,
    settings: Settings | None = None,
    registry: Registry | None = None,
    by: str = "user:unknown",
    reason: str = "",
    dry_run: bool = False,
) -> list[UndoOutcome]:
    """Undo the run's logged effects (of one step, or all) in reverse order; safe to repeat.

    ``by`` and ``reason`` are recorded on every undo event and in run.json's ``undo`` list (with
    the time), so the report names who undid what, when and why. ``dry_run`` lists what would be
    undone (status ``would_undo``) and writes nothing.
    """
    settings = settings or load_settings()
    registry = registry or default_registry()
    run_dir = find_run(run_id_or_dir, settings)
    detect_crash(run_dir)
    data = read_run_json(run_dir)
    if data.get("status") == RUNNING:
        raise RunError(f"run {run_dir.name} is still running; undo it after it ends")
    if step is not None and step not in data.get("steps", {}):
        raise RunError(f"run {run_dir.name} has no step {step!r}")
    state = RunState(run_dir)
    meta = state.meta() or {}
    effects, undone = _effects(state, step)
    if dry_run:
        return [_would_undo(entry, undone, registry) for entry in reversed(effects)]
    state.acquire()
    try:
        record = RunRecord(run_dir)
        started = datetime.fromisoformat(str(meta.get("incident", {}).get("started_at", "")).replace("Z", "+00:00"))
        incident = Incident(id=str(meta.get("incident", {}).get("id", run_dir.name)), started_at=started, mode="live")
        base = ActionContext(
            run_id=run_dir.name,
            incident=incident,
            settings=settings,
            record=record,
            actor=by,
            playbook=str(data.get("playbook", {}).get("ref", "")),
        )
        who = {"by": by, "reason": reason}
        outcomes = [_undo_one(entry, undone, registry, base, state, who) for entry in reversed(effects)]
        at = iso(utcnow())
        record.update_run(undo=[*data.get("undo", []), *[{**o.__dict__, **who, "at": at} for o in outcomes]])
        _rerender(run_dir, record, settings)
    finally:
        state.release()
    return outcomes


def _rerender(run_dir: Path, record: RunRecord, settings: Settings) -> None:
    """Re-render the reports, so their header says what was undone, by whom and when."""
    from flows.report import write_reports

    try:
        write_reports(run_dir, settings=settings)
    except Exception as e:  # the undo happened; a report failure is recorded, not raised
        record.emit("report.failed", detail={"error": f"{type(e).__name__}: {e}"})
        record.update_run()


def _would_undo(entry: dict[str, Any], undone: set[str], registry: Registry) -> UndoOutcome:
    step, item_key, name = str(entry["step"]), str(entry.get("item_key", "")), str(entry["action"])
    if str(entry["idempotency_key"]) in undone:
        return UndoOutcome(step, item_key, name, "already_undone", "undone earlier")
    try:
        undoable = registry.get(name).undoable()
    except Exception as e:  # an unknown action is reported like a failed undo would be
        return UndoOutcome(step, item_key, name, "failed", str(e))
    if not undoable:
        return UndoOutcome(step, item_key, name, "not_undoable", f"{name} cannot be undone")
    return UndoOutcome(step, item_key, name, "would_undo", str((entry.get("result") or {}).get("summary", "")))


def _undo_one(
    entry: dict[str, Any],
    undone: set[str],
    registry: Registry,
    base: ActionContext,
    state: RunState,
    who: dict[str, str],
) -> UndoOutcome:
    key = str(entry["idempotency_key"])
    step, item_key, name = str(entry["step"]), str(entry.get("item_key", "")), str(entry["action"])
    if key in undone:
        return UndoOutcome(step, item_key, name, "already_undone", "undone earlier")
    ctx = base.for_step(step, None, item_key)
    detail = {"action": name, "idempotency_key": key, **who}
    try:
        action = registry.get(name)
        if not action.undoable():
            return UndoOutcome(step, item_key, name, "not_undoable", f"{name} cannot be undone")
        result = action.Result.model_validate(entry["result"])
        ctx.emit("undo.started", detail)
        done = action.undo(result, ctx)
    except Exception as e:  # one failed undo is reported; the others still run
        ctx.emit("undo.failed", {**detail, "error": f"{type(e).__name__}: {e}"})
        state.append_saga({"undo_of": key, "step": step, "item_key": item_key, "status": "failed", "error": str(e)})
        return UndoOutcome(step, item_key, name, "failed", str(e))
    state.append_saga({"undo_of": key, "step": step, "item_key": item_key, "status": "undone", "summary": done.summary})
    ctx.emit("undo.succeeded", {**detail, "summary": done.summary, "changed": done.changed})
    return UndoOutcome(step, item_key, name, "undone", done.summary)
