"""Timeline sinks: things that follow a run's events as they are recorded (the Slack timeline).

The modules in :data:`TIMELINE_SINK_MODULES` are imported by name when a run starts or resumes
(``flows`` never imports ``integrations`` statically); each exposes
``timeline_sink(record, *, settings, run_id, mode) -> sink | None`` and attaches itself to the
record's event log (:meth:`flows.record.store.EventLog.add_listener`). The engine closes every sink
when the run ends, which flushes what is still queued. A sink that fails to attach is skipped: the
run never depends on a chat service.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

TIMELINE_SINK_MODULES: list[str] = ["integrations.slack.timeline"]
CLOSE_TIMEOUT = 60.0


class TimelineSink(Protocol):
    def close(self, timeout: float = CLOSE_TIMEOUT) -> bool: ...


def attach_timeline_sinks(record: Any, *, settings: Any, run_id: str, mode: str) -> list[TimelineSink]:
    """Attach every configured sink to ``record``'s event log; returns them for :func:`close_sinks`."""
    sinks: list[TimelineSink] = []
    for name in TIMELINE_SINK_MODULES:
        try:
            module = importlib.import_module(name)
            sink = module.timeline_sink(record, settings=settings, run_id=run_id, mode=mode)
        except Exception as e:  # a missing or misconfigured chat integration must not stop a run
            record.emit("timeline.unavailable", detail={"sink": name, "error": f"{type(e).__name__}: {e}"})
            continue
        if sink is not None:
            sinks.append(sink)
    return sinks


def close_sinks(sinks: list[TimelineSink], timeout: float = CLOSE_TIMEOUT) -> None:
    """Flush and stop the sinks of a run that ended (each bounded by ``timeout`` seconds)."""
    for sink in sinks:
        sink.close(timeout)
