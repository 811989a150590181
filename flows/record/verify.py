"""``fireline audit verify``: check a run record against what its editor cannot rewrite.

Four checks, each a list of one-line problems (all empty: the record is intact):

1. the hash chain of events.jsonl, and its end against the head stamped in run.json;
2. the seal of run.json (HMAC with the record key, kept outside the run directory), which covers
   the outcome, trigger, steps, inputs and the chain's head;
3. the evidence manifest against the chained ``evidence.stored`` events (same ids, same sha256)
   and, for files in the run directory, against the bytes;
4. with an evidence bucket configured, the local chain against every head anchored there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flows.record.anchor import anchor_sink, check_anchors
from flows.record.seal import sealer_for
from flows.record.store import sha256_bytes, sha256_file, verify_events


def _run_json(run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    try:
        data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return {}, [f"run.json is missing or unreadable: {e}"]
    if not isinstance(data, dict):
        return {}, ["run.json is not an object"]
    return data, []


def _chain(run_dir: Path, data: dict[str, Any]) -> list[str]:
    head = data.get("events")
    if not isinstance(head, dict) or "count" not in head or "head_sha256" not in head:
        return ["run.json has no event head (events.count, events.head_sha256): the log's end cannot be checked"]
    return verify_events(run_dir / "events.jsonl", (int(head["count"]), str(head["head_sha256"])))


def _stored_events(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The ``evidence.stored`` events of the chain, by evidence id (late attempts' are not the run's)."""
    found: dict[str, dict[str, Any]] = {}
    path = run_dir / "events.jsonl"
    if not path.exists():
        return found
    for raw in path.read_bytes().splitlines():
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "evidence.stored":
            detail = event.get("detail") or {}
            found.setdefault(str(detail.get("id")), detail)
    return found


def check_manifest(run_dir: Path) -> list[str]:
    """The manifest against the chained events, and local files against the manifest."""
    path = run_dir / "evidence" / "manifest.json"
    stored = _stored_events(run_dir)
    if not path.exists():
        return [f"evidence {i} is in the event log but there is no manifest" for i in sorted(stored)]
    try:
        items = json.loads(path.read_text(encoding="utf-8")).get("items", [])
    except (OSError, ValueError, AttributeError) as e:
        return [f"evidence/manifest.json is unreadable: {e}"]
    problems: list[str] = []
    listed: set[str] = set()
    for item in items:
        ident, name, sha = str(item.get("id")), str(item.get("name")), str(item.get("sha256"))
        listed.add(ident)
        event = stored.get(ident)
        if event is None:
            problems.append(f"manifest item {name} ({ident}) has no evidence.stored event in the chain")
        elif event.get("sha256") != sha:
            chained = str(event.get("sha256"))[:12]
            problems.append(f"manifest item {name}: sha256 {sha[:12]}… differs from the chained event's {chained}…")
        location = str(item.get("location", ""))
        if location and not location.startswith("s3://"):
            file = (run_dir / location).resolve()
            if not file.is_relative_to(run_dir.resolve()):
                problems.append(f"manifest item {name}: location points outside the run directory")
            elif not file.is_file():
                problems.append(f"evidence file {location} is missing")
            elif sha256_file(file) != sha:
                problems.append(f"evidence file {location} no longer hashes to its recorded sha256")
    for ident in sorted(set(stored) - listed):
        problems.append(f"evidence {stored[ident].get('name')} ({ident}) is in the chain but not in the manifest")
    return problems


def _anchors(run_dir: Path, data: dict[str, Any], settings: Any) -> list[str]:
    sink = anchor_sink(settings)
    if sink is None:
        return []
    path = run_dir / "events.jsonl"
    lines = path.read_bytes().splitlines() if path.exists() else []
    try:
        heads = sink.heads(str(data.get("run_id") or run_dir.name))
    except Exception as e:  # the anchor store is unreachable: say so, never pass silently
        return [f"the anchored heads could not be read: {e}"]
    if not heads:
        return ["no head of this run is anchored in the evidence bucket"]
    return check_anchors(heads, [sha256_bytes(line) for line in lines], data.get("status") == "finished")


def verify_record(run_dir: Path, settings: Any) -> list[str]:
    """Every problem with the run record at ``run_dir`` (empty when it verifies)."""
    data, problems = _run_json(run_dir)
    if problems:
        return problems
    problems += _chain(run_dir, data)
    problems += sealer_for(settings).check(str(data.get("run_id") or run_dir.name), data)
    problems += check_manifest(run_dir)
    problems += _anchors(run_dir, data, settings)
    return problems
