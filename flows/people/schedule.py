"""The escalation a contact tree would take if nobody acknowledged: who, at which level, and when.

Used by ``fireline contacts show``. The timing follows :mod:`flows.people.escalation`: each level
that is not skipped waits its ``ack_timeout``, a repeat pass starts after ``repeat.wait``, then the
fallback targets and ``@here`` are paged, then reminders every ``reminder_interval``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flows.language.durations import format_duration
from flows.people.trees import drill_filter, expand, load_tree, matches, plan_level, rotation_of


def _entry(start: datetime, offset: float, what: str, who: list[str], note: str = "") -> dict[str, Any]:
    at = (start + timedelta(seconds=offset)).isoformat()
    return {"offset": format_duration(offset) if offset else "0s", "at": at, "what": what, "who": who, "note": note}


def escalation_schedule(
    tree: str, settings: Any, start: datetime, *, severity: str = "critical", labels: dict[str, str] | None = None,
    incident_id: str = "preview",
) -> dict[str, Any]:  # fmt: skip
    """The schedule as JSON: ``{"tree", "version", "entries": [{offset, at, what, who, note}]}``."""
    from flows.people.directory import load_directory

    path = Path(tree)
    library = path.parent.parent if path.is_file() else None
    directory = load_directory(settings, library)
    doc = load_tree(tree, settings, directory, library).doc
    labels = labels or {}
    entries: list[dict[str, Any]] = []
    if not matches(doc.when, severity, labels):
        entries.append(_entry(start, 0, "not engaged", [], "the tree's when does not match"))
        return {"tree": doc.metadata.name, "version": doc.metadata.version, "entries": entries}
    offset = 0.0
    for pass_no in range(doc.repeat.times + 1):
        if pass_no:
            offset += doc.repeat.wait
        for index, level in enumerate(doc.levels):
            moment = start + timedelta(seconds=offset)
            lp = plan_level(level, index, directory, severity=severity, labels=labels, at=moment,
                            rotation=rotation_of(incident_id) + pass_no)  # fmt: skip
            what = f"level {index} ({lp.name})" + (f" pass {pass_no + 1}" if pass_no else "")
            if lp.skipped:
                entries.append(_entry(start, offset, what, [], f"skipped: {lp.skipped}"))
                continue
            who = [f"{r.kind}:{r.id}" for r in lp.recipients]
            entries.append(_entry(start, offset, what, who, f"ack within {format_duration(lp.ack_timeout)}"))
            offset += lp.ack_timeout
    fallback = [f"{r.kind}:{r.id}" for t in doc.fallback for r in drill_filter(expand(t, directory), directory, False)]
    entries.append(_entry(start, offset, "exhausted: fallback", [*fallback, "@here in the incident channel"],
                          "ack-SLO breach recorded"))  # fmt: skip
    for n in range(1, doc.reminders + 1):
        entries.append(_entry(start, offset + n * doc.reminder_interval, f"reminder {n}", fallback))
    return {"tree": doc.metadata.name, "version": doc.metadata.version, "entries": entries}
