"""What resuming a run needs, checked: a run that may be resumed, its unchanged playbook, its scope.

``fireline resume`` refuses a finished run, one still driven by a live process, one without durable
state, and one whose playbook file changed since it started (same sha256 or nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flows.actions.context import Incident
from flows.actions.registry import Registry
from flows.engine.alerts import Alert
from flows.engine.requests import check_runnable, default_trigger
from flows.engine.runs import FINISHED, RUNNING, detect_crash, read_run_json
from flows.engine.state import RunState
from flows.errors import RunError
from flows.language.spec import Playbook
from flows.record.store import iso, utcnow


@dataclass
class Resumable:
    """A crashed or interrupted run, ready to be driven again."""

    book: Playbook
    incident: Incident
    scope: dict[str, Any]
    data: dict[str, Any]
    state: RunState
    meta: dict[str, Any]


def load_resumable(run_dir: Path, registry: Registry, force_reason: str | None = None) -> Resumable:
    """Check that ``run_dir`` can be resumed and load what the engine drives it with.

    ``force_reason`` takes over a run whose owner's lock another machine wrote (see
    :func:`flows.engine.runs.force_takeover`).
    """
    if force_reason is not None:
        from flows.engine.runs import force_takeover

        force_takeover(run_dir, force_reason, str(default_trigger()["by"]))
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
    scope = {
        "alert": alert_model.as_template(),
        "incident": incident.as_template(),
        "inputs": meta["inputs"],
        "alerts": list(meta.get("alerts") or [alert_model.brief()]),
    }
    data.update(status=RUNNING, outcome=None, resumed=[*data.get("resumed", []), iso(utcnow())])
    return Resumable(book, incident, scope, data, state, meta)
