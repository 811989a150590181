"""Read one run record for the report: run.json, events.jsonl, the evidence manifest, the alert.

Everything a report says comes from these files (and ``state/run.json``, which keeps the alert as
it was received). A damaged record is refused with one line naming the file and line, never half
rendered: a post-mortem built on a cut event log would state wrong times with confidence.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.errors import RecordError

_ZERO = "0" * 64


@dataclass
class LoadedRun:
    """The parts of a run record a report is built from."""

    run_dir: Path
    run: dict[str, Any]
    events: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    alert: dict[str, Any]
    chain_problems: list[str] = field(default_factory=list)
    slack: dict[str, Any] = field(default_factory=dict)


def _json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise RecordError(f"{path}: {what} is missing") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"{path}: {what} is unreadable: {e}") from e


def read_event_lines(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Parse ``events.jsonl``; return the events and the hash-chain problems found on the way.

    Raises :class:`RecordError` naming ``file:line`` for a line that is not a JSON object (a log
    cut mid-line, or edited by hand).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise RecordError(f"{path}: the event log is missing") from e
    except OSError as e:
        raise RecordError(f"{path}: the event log is unreadable: {e}") from e
    events: list[dict[str, Any]] = []
    problems: list[str] = []
    prev = _ZERO
    sha = hashlib.sha256
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
        except ValueError as e:
            state = "truncated" if number == data.count(b"\n") + 1 or not data.endswith(b"\n") else "not JSON"
            raise RecordError(
                f"{path}:{number}: the event log is {state} ({e.__class__.__name__}); "
                "run `fireline audit verify` on the run for every problem"
            ) from e
        if not isinstance(event, dict) or "type" not in event or "at" not in event:
            raise RecordError(f"{path}:{number}: not an event (an object with at least 'type' and 'at')")
        if event.get("prev_sha256") != prev and len(problems) < 10:
            problems.append(f"events.jsonl:{number}: prev_sha256 does not match the line before")
        prev = sha(raw).hexdigest()
        events.append(event)
    head = None
    try:
        head = json.loads((path.parent / "run.json").read_text(encoding="utf-8")).get("events")
    except (OSError, ValueError, AttributeError):
        head = None
    if isinstance(head, dict) and (head.get("count"), head.get("head_sha256")) != (len(events), prev):
        problems.append(
            f"events.jsonl ends at line {len(events)}, run.json expects line {head.get('count')} "
            "(lines removed or appended after the run)"
        )
    return events, problems


def load_run(run_dir: Path) -> LoadedRun:
    """Read a run directory; :class:`RecordError` (one line, naming the file) when it is damaged.

    The evidence manifest may be absent only when no event says evidence was stored (a run that
    collected nothing never writes one).
    """
    if not run_dir.is_dir():
        raise RecordError(f"{run_dir}: not a run directory")
    run = _json_file(run_dir / "run.json", "run.json")
    if not isinstance(run, dict):
        raise RecordError(f"{run_dir / 'run.json'}: run.json is not an object")
    events, problems = read_event_lines(run_dir / "events.jsonl")
    manifest_path = run_dir / "evidence" / "manifest.json"
    stored = sum(1 for e in events if e.get("type") == "evidence.stored")
    evidence: list[dict[str, Any]] = []
    if manifest_path.exists():
        doc = _json_file(manifest_path, "the evidence manifest")
        items = doc.get("items") if isinstance(doc, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise RecordError(f"{manifest_path}: the evidence manifest has no list of items")
        evidence = items
    elif stored:
        raise RecordError(
            f"{manifest_path}: the evidence manifest is missing, but the event log records {stored} evidence item(s)"
        )
    meta_path = run_dir / "state" / "run.json"
    alert: dict[str, Any] = dict(run.get("alert") or {})
    if meta_path.exists():
        meta = _json_file(meta_path, "the run's state")
        if isinstance(meta, dict) and isinstance(meta.get("alert"), dict):
            alert = {**alert, **meta["alert"]}
    slack: dict[str, Any] = {}
    if (run_dir / "slack.json").is_file():
        doc = _json_file(run_dir / "slack.json", "the run's Slack state")
        slack = doc if isinstance(doc, dict) else {}
    return LoadedRun(run_dir, run, events, evidence, alert, problems, slack)
