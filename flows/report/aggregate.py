"""``fireline metrics``: MTTA, MTTC and MTTR per playbook over the live runs of a period.

Each mean is over the runs where that milestone happened (``n`` says how many); dry-runs and
drills are never averaged in, and are listed separately. A run whose record cannot be read is
listed under ``skipped`` with the reason instead of failing the whole command.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flows.errors import FirelineError
from flows.report.facts import human_seconds, parse_time, seconds_between
from flows.report.load import load_run
from flows.report.metrics import milestones
from flows.report.steps import collect_steps

MEANS = {"mtta": "acknowledged", "mttc": "contained", "mttr": "recovered"}


def _row(run_dir: Path) -> dict[str, Any]:
    loaded = load_run(run_dir)
    steps = collect_steps(loaded.run, loaded.events)
    points = milestones(loaded.run, loaded.alert, loaded.events, steps)
    return {key: seconds_between(points["response_started"], points[name]) for key, name in MEANS.items()}


def _mean(values: list[float]) -> dict[str, Any]:
    seconds = round(sum(values) / len(values), 3) if values else None
    return {"seconds": seconds, "display": human_seconds(seconds), "n": len(values)}


def collect_metrics(runs_dir: Path, *, since: timedelta, now: datetime, playbook: str | None = None) -> dict[str, Any]:
    """``{"since", "playbooks": [{"playbook", "runs", "mtta", "mttc", "mttr"}], "excluded", "skipped"}``."""
    cutoff = now - since
    per_book: dict[str, list[dict[str, Any]]] = {}
    excluded: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for run_json in sorted(runs_dir.glob("*/run.json")) if runs_dir.is_dir() else []:
        try:
            data = json.loads(run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            skipped.append({"run_id": run_json.parent.name, "reason": f"run.json unreadable: {e}"})
            continue
        started = parse_time(data.get("started_at"))
        name = str((data.get("playbook") or {}).get("name") or "?")
        if started is None or started < cutoff or (playbook is not None and name != playbook):
            continue
        mode = str(data.get("mode") or "live")
        if mode != "live":
            excluded.append({"run_id": run_json.parent.name, "playbook": name, "mode": mode,
                             "outcome": data.get("outcome")})  # fmt: skip
            continue
        try:
            per_book.setdefault(name, []).append(_row(run_json.parent))
        except FirelineError as e:
            skipped.append({"run_id": run_json.parent.name, "reason": str(e)})
    books = []
    for name, rows in sorted(per_book.items()):
        entry: dict[str, Any] = {"playbook": name, "runs": len(rows)}
        for key in MEANS:
            entry[key] = _mean([r[key] for r in rows if r[key] is not None])
        books.append(entry)
    return {"since": cutoff.isoformat().replace("+00:00", "Z"), "playbooks": books, "excluded": excluded,
            "skipped": skipped}  # fmt: skip
