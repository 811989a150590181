"""Runs going on in this process, so that alerts of their incident reach their record while they run.

The engine registers each run it drives (:func:`register`, from :func:`flows.engine.runner._drive`)
with its record and its alert list (``alerts`` in templates); the dispatcher appends an attached
alert to the list, so steps rendered later see it, and emits ``alert.*`` events through the run's own
record (thread-safe, one hash chain). A run in another process gets them when it has finished.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol


class _Emitter(Protocol):
    def emit(
        self, type_: str, *, step: str | None = None, item: Any = None, detail: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...


@dataclass
class LiveRun:
    record: _Emitter
    alerts: list[dict[str, Any]]
    trigger: dict[str, Any]  # the run's trigger as run.json shows it (set values of existing keys only)


_LIVE: dict[str, LiveRun] = {}
_LOCK = threading.Lock()


def register(run_id: str, record: _Emitter, scope: dict[str, Any], trigger: dict[str, Any] | None = None) -> None:
    alerts = scope.setdefault("alerts", [])
    with _LOCK:
        _LIVE[run_id] = LiveRun(record, alerts, trigger if trigger is not None else {})


def unregister(run_id: str) -> None:
    with _LOCK:
        _LIVE.pop(run_id, None)


def get(run_id: str) -> LiveRun | None:
    with _LOCK:
        return _LIVE.get(run_id)
