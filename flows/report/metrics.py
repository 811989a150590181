"""Incident milestones and the times between them, each with the definition the report prints.

Milestones (UTC, from the run record only):

- **detected**: the alert's ``starts_at`` (when the monitoring system saw the condition);
- **response started**: the run's start (``run.json`` ``started_at``);
- **acknowledged**: the first ``page.acked`` event;
- **engaged**: the first time a person acted on the run: a page acked or an approval answered;
- **contained**: the end of the last containment step, when every containment step succeeded;
- **recovered**: the end of the last recovery step, when every recovery step succeeded.

A milestone that did not happen is None and its metric is shown as "—", never guessed.
"""

from __future__ import annotations

from typing import Any

from flows.report.facts import human_seconds, parse_time, seconds_between

DEFINITIONS: dict[str, tuple[str, str, str, str]] = {
    # key: (name, from milestone, to milestone, definition)
    "ttd": ("Time to detect", "detected", "response_started",
            "From the alert's starts_at (the monitoring system's first detection) to the start of this run."),
    "tta": ("Time to acknowledge", "response_started", "acknowledged",
            "From the start of the run to the first acknowledged page."),
    "tte": ("Time to engage", "response_started", "engaged",
            "From the start of the run to the first human action: a page acknowledged or an approval answered."),
    "ttc": ("Time to contain", "response_started", "contained",
            "From the start of the run to the end of its last containment step (all of them succeeded)."),
    "ttr": ("Time to recover", "response_started", "recovered",
            "From the start of the run to the end of its last recovery step (all of them succeeded)."),
}  # fmt: skip
_HUMAN_ANSWERS = ("approval.answered", "approval.rejected")


def _stamp(text: str) -> float:
    moment = parse_time(text)
    return moment.timestamp() if moment is not None else 0.0


def _last_end(steps: list[dict[str, Any]], kind: str) -> str | None:
    chosen = [s for s in steps if s.get("kind") == kind and s.get("status") != "skipped"]
    if not chosen or any(s.get("status") != "succeeded" for s in chosen):
        return None
    ends = [str(s["finished_at"]) for s in chosen if s.get("finished_at")]
    return max(ends, key=_stamp) if ends else None


def milestones(
    run: dict[str, Any], alert: dict[str, Any], events: list[dict[str, Any]], steps: list[dict[str, Any]]
) -> dict[str, str | None]:
    """The milestones of one run as ISO-8601 UTC strings (None when it did not happen)."""
    acked = next((e["at"] for e in events if e["type"] == "page.acked"), None)
    human = next(
        (
            (e.get("detail") or {}).get("at") or e["at"]
            for e in events
            if e["type"] in _HUMAN_ANSWERS and (e.get("detail") or {}).get("by") not in (None, "dry-run")
        ),
        None,
    )
    live = run.get("mode", "live") == "live"  # a dry-run or drill contains and recovers nothing
    known = [str(t) for t in (acked, human) if t]
    engaged = min(known, key=_stamp) if known else None
    return {
        "detected": alert.get("starts_at") if parse_time(alert.get("starts_at")) else None,
        "response_started": run.get("started_at"),
        "acknowledged": acked,
        "engaged": engaged,
        "contained": _last_end(steps, "containment") if live else None,
        "recovered": _last_end(steps, "recovery") if live else None,
    }


def metric_rows(points: dict[str, str | None]) -> list[dict[str, Any]]:
    """One row per metric: key, name, seconds (None when unknown), display text and definition."""
    rows = []
    for key, (name, start, end, definition) in DEFINITIONS.items():
        seconds = seconds_between(points.get(start), points.get(end))
        rows.append({"key": key, "name": name, "seconds": seconds, "display": human_seconds(seconds),
                     "definition": definition, "from": start, "to": end})  # fmt: skip
    return rows
