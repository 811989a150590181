"""Finding, listing and checking run directories; marking runs whose process died as crashed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flows.config import Settings
from flows.engine.state import RunState
from flows.errors import RecordError, RunError
from flows.record.store import RunRecord, iso, utcnow

RUNNING = "running"
FINISHED = "finished"
_SEEN_FINISHED: set[str] = set()  # run directories this process has read as finished (see mark_crashed_runs)
CRASHED = "crashed"


LATEST = "latest"


def find_run(run: str | Path, settings: Settings) -> Path:
    """A run directory from a run id (under ``settings.runs_dir``), a path, or ``latest`` (the newest run)."""
    if str(run) == LATEST:
        return latest_run(settings)
    candidates = [Path(run), settings.runs_dir / str(run)]
    for candidate in candidates:
        if (candidate / "run.json").is_file():
            return candidate
    from flows.language.diagnose import suggest

    names = [p.name for p in _run_dirs(settings.runs_dir)]
    hint = suggest(str(run), names)
    raise RecordError(
        f"no run {str(run)!r} (looked in {settings.runs_dir} and at the path itself)" + (f"; {hint}" if hint else ""),
        where=str(run),
    )


def _run_dirs(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if (p / "run.json").is_file()] if root.is_dir() else []


def latest_run(settings: Settings) -> Path:
    """The run directory under ``settings.runs_dir`` that started last."""

    def started(run_dir: Path) -> str:
        try:
            return str(read_run_json(run_dir).get("started_at") or "")
        except RecordError:
            return ""

    found = _run_dirs(settings.runs_dir)
    if not found:
        raise RecordError(f"no runs in {settings.runs_dir} yet, so there is no latest run")
    return max(found, key=lambda p: (started(p), p.name))


def read_run_json(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise RecordError(f"{run_dir}: run.json is missing or unreadable: {e}") from e
    if not isinstance(data, dict):
        raise RecordError(f"{run_dir}: run.json is not an object")
    return data


def detect_crash(run_dir: Path) -> bool:
    """Mark a run crashed when run.json says running but its owner process is gone; True if it is crashed."""
    data = read_run_json(run_dir)
    if data.get("status") != RUNNING:
        return data.get("status") == CRASHED
    state = RunState(run_dir)
    if state.owner_alive() or not state.claim():
        return False
    try:  # holding the owner lock: no other process drives or marks this run meanwhile
        data = read_run_json(run_dir)
        if data.get("status") != RUNNING:
            return data.get("status") == CRASHED
        record = RunRecord(run_dir)
        record.emit("run.crashed", detail={"detected_at": iso(utcnow()), "note": "the process driving the run is gone"})
        record.update_run(status=CRASHED, outcome=CRASHED)
    finally:
        state.release()
    return True


def adopt_orphan(run_dir: Path, settings: Settings | None = None) -> bool:
    """Give a run that died between creating ``state/`` and writing run.json a record: crashed, resumable.

    Its creator holds the owner lock from the moment ``state/`` exists, so a run still being
    created is never taken for an orphan. True when a record was written.
    """
    if (run_dir / "run.json").is_file() or not (run_dir / "state" / "run.json").is_file():
        return False
    state = RunState(run_dir)
    if not state.claim():
        return False
    try:
        meta = state.meta()
        if (run_dir / "run.json").is_file() or meta is None:
            return False
        from flows.engine.redact import Redactor

        run_id = str(meta.get("run_id") or run_dir.name)
        from flows.record.seal import sealer_for

        record = RunRecord(run_dir, run_id, sealer=sealer_for(settings) if settings is not None else None)
        note = "the process died before the run's record was written"
        record.emit("run.crashed", detail={"detected_at": iso(utcnow()), "note": note, "mode": meta.get("mode")})
        path = str(meta.get("playbook_path", ""))
        record.write_run(
            {
                "run_id": run_id,
                "status": CRASHED,
                "mode": meta.get("mode"),
                "outcome": CRASHED,
                "playbook": {"ref": Path(path).stem, "path": path, "sha256": meta.get("sha256")},
                "trigger": meta.get("trigger", {}),
                "inputs": Redactor(hide_refs=True).scrub(meta.get("inputs", {})),
                "started_at": (meta.get("incident") or {}).get("started_at"),
                "finished_at": None,
                "steps": {},
                "waiting": [],
            }
        )
    finally:
        state.unclaim()
    return True


def force_takeover(run_dir: Path, reason: str, by: str) -> None:
    """Mark a run whose owner still looks alive crashed, on a person's word (``fireline resume --force``).

    Only a lock written under another kernel can be taken over: a process that holds the run on
    this machine is never displaced. The previous owner and the reason are recorded.
    """
    if not reason.strip():
        raise RunError("--force needs --reason: say why the run's owner is known to be gone")
    state = RunState(run_dir)
    if not state.claim():
        raise RunError(f"run {run_dir.name} is driven by a live process on this machine; it cannot be taken over")
    try:
        data = read_run_json(run_dir)
        if data.get("status") != RUNNING:
            return
        record = RunRecord(run_dir)
        detail = {"reason": reason, "by": by, "previous_owner": state.lock_owner(), "mode": data.get("mode")}
        record.emit("run.force_resumed", detail=detail)
        record.update_run(status=CRASHED, outcome=CRASHED)
        state.drop_lock()
    finally:
        state.unclaim()


def mark_crashed_runs(settings: Settings) -> list[str]:
    """Mark crashed every run under ``settings.runs_dir`` left running by a dead process (start-up sweep).

    Runs this process has seen finished are not read again: a finished run never runs again, and
    every run start sweeps, so a long-lived ``fireline serve`` read every run.json of the directory
    once per new run (an alert storm's 50 runs read each other's 1,250 times). Nor are the runs this
    process drives: they have not crashed.
    """
    from flows.triggers import live

    root = settings.runs_dir
    crashed: list[str] = []
    if not root.is_dir():
        return crashed
    for run_dir in root.iterdir():
        if str(run_dir) in _SEEN_FINISHED or live.get(run_dir.name) is not None:
            continue
        try:
            if adopt_orphan(run_dir, settings):
                crashed.append(run_dir.name)
                continue
            if not (run_dir / "run.json").is_file():
                continue
            status = read_run_json(run_dir).get("status")
            if status == FINISHED:
                _SEEN_FINISHED.add(str(run_dir))
            elif status == RUNNING and detect_crash(run_dir):
                crashed.append(run_dir.name)
        except RecordError:
            continue  # an unreadable record is reported by runs show / audit, not by a sweep
    return crashed


def list_runs(settings: Settings) -> list[dict[str, Any]]:
    """Every run under ``settings.runs_dir``, newest first, crashed ones marked on the way."""
    root = settings.runs_dir
    if not root.is_dir():
        return []
    rows: list[dict[str, Any]] = []
    for run_dir in root.iterdir():
        adopt_orphan(run_dir, settings)
        if not (run_dir / "run.json").is_file():
            continue
        try:
            detect_crash(run_dir)
            data = read_run_json(run_dir)
        except RecordError:
            continue
        rows.append(
            {
                "run_id": data.get("run_id", run_dir.name),
                "run_dir": str(run_dir),
                "playbook": data.get("playbook", {}).get("ref"),
                "mode": data.get("mode"),
                "status": data.get("status"),
                "outcome": data.get("outcome"),
                "started_at": data.get("started_at"),
                "finished_at": data.get("finished_at"),
            }
        )
    rows.sort(key=lambda r: str(r.get("started_at") or ""), reverse=True)
    return rows
