"""Alert events in the record of a run that has finished (or runs in another process, once it has).

The run's own lock (``state/``) is taken first, so nothing else writes the hash chain at the same
time; ``run.json`` is then rewritten with the new event count and head, so ``fireline audit verify``
stays clean, and gains ``alerts_resolved`` / ``alerts_attached`` entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def coalesce(notes: list[tuple[int, str, dict[str, Any]]]) -> list[tuple[int, str, dict[str, Any]]]:
    """Repeats of one alert among ``notes`` as one ``alert.repeated`` event: its count and last batch.

    A storm that repeats one firing alert thousands of times within its dedup window is one event
    per sweep of the dispatcher, not thousands; each repeat stays a note of its own in the spool
    (idempotent by batch), so nothing is counted twice after a crash. Other kinds pass unchanged.
    """
    out: list[tuple[int, str, dict[str, Any]]] = []
    first: dict[Any, dict[str, Any]] = {}
    for note_id, kind, detail in notes:
        if kind == "alert.repeated":
            fingerprint = (detail.get("alert") or {}).get("fingerprint")
            seen = first.get(fingerprint)
            if seen is not None:
                seen["count"] += 1
                seen["last_batch"] = detail.get("batch")
                continue
            detail = first[fingerprint] = {**detail, "count": 1, "last_batch": detail.get("batch")}
        out.append((note_id, kind, detail))
    return out


def run_status(run_dir: Path) -> tuple[str | None, str | None]:
    """(status, outcome) from run.json; (None, None) while it does not exist."""
    try:
        doc = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(doc, dict):
        return None, None
    return doc.get("status"), doc.get("outcome")


def append_to_finished(
    run_dir: Path,
    notes: list[tuple[int, str, dict[str, Any]]],
    *,
    update: Callable[[dict[str, Any]], None] | None = None,
) -> bool:
    """Append the notes as events of a run no process drives; False when it is not ready (yet).

    ``update`` may change run.json's document (in place) before it is written with the new head.
    """
    from flows.engine.state import RunState
    from flows.errors import RunError
    from flows.record.store import RunRecord

    status, _ = run_status(run_dir)
    if status not in ("finished", "crashed"):
        return False
    state = RunState(run_dir)
    try:
        state.acquire()
    except RunError:
        return False
    try:
        record = RunRecord(run_dir)
        doc = record.read_run()
        for _, kind, detail in coalesce(notes):
            record.emit(kind, detail=detail)
            name = {"alert.resolved": "alerts_resolved", "alert.attached": "alerts_attached"}.get(kind)
            if name is not None:
                doc.setdefault(name, []).append(detail["alert"])
        if update is not None:
            update(doc)
        record.write_run({k: v for k, v in doc.items() if k != "events"})
    finally:
        state.release()
    return True
