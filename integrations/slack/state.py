"""What a run knows about its Slack side, kept in ``<run dir>/slack.json``.

``incident_channel`` (``{"id", "name"}``) is written by ``slack.open_incident_channel`` and read by
the notifier (pages to the incident channel) and the timeline; ``root`` (``{"channel", "ts"}``) is
the run's root message; ``posted_seq`` is the last event sequence number the timeline thread
carries, so a resumed run updates the same root message and continues the thread without a gap or
a repeat. The file is replaced atomically.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from flows.record.store import write_atomic

FILE = "slack.json"
_lock = threading.Lock()


def read_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / FILE
    if not path.is_file():
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data


def update_state(run_dir: Path, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into the run's Slack state and write it atomically."""
    with _lock:
        data = {**read_state(run_dir), **changes}
        write_atomic(run_dir / FILE, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))
        return data


def record_post(run_dir: Path, key: str, posted: dict[str, str]) -> None:
    """Remember a ``slack.post`` under its idempotency key (read and written under one lock)."""
    with _lock:
        data = read_state(run_dir)
        data["posts"] = {**(data.get("posts") or {}), key: posted}
        write_atomic(run_dir / FILE, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))
