"""Alerts given by hand: ``fireline run --alert FILE`` and the ``alert`` of a run request.

A file holds the normalised form (every field optional, ``{"labels": {...}}`` is valid) or a raw
payload of any supported source, recognised by its shape or named with ``--source``; it goes through
the same adapters as the receiver (:mod:`flows.triggers.adapters`), so a grouped Alertmanager
notification yields every alert in it. Files are read with a cap (:data:`MAX_ALERT_BYTES`, counted
while reading, so ``/dev/zero`` and FIFOs are bounded too) and parsed with depth, number and text
checks (:mod:`flows.triggers.safejson`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.triggers.adapters import detect, parse
from flows.triggers.model import Alert, AlertBatch, AlertError, label_fingerprint
from flows.triggers.safejson import ensure_safe, loads, read_capped

MAX_ALERT_BYTES = 1024 * 1024
AlertFileError = AlertError  # the name callers have always used


def parse_payload(payload: Any, source: str | None = None) -> AlertBatch:
    """Every alert of a payload (raw of any source, or the normalised form)."""
    return parse(source or detect(payload), payload)


def from_alertmanager(payload: dict[str, Any]) -> list[Alert]:
    """Every alert of an Alertmanager webhook v4 notification."""
    return parse("alertmanager", payload).alerts


def normalise(payload: Any) -> Alert:
    """One alert from a payload: the first firing one of a group (a run request's ``alert``)."""
    if not isinstance(payload, dict):
        raise AlertError("an alert must be a JSON object")
    ensure_safe(payload, what="alert")  # NaN, infinities and lone surrogates never reach the run record
    batch = parse_payload(payload)
    if not batch.alerts:
        raise AlertError(f"the {batch.source} payload holds no alert ({batch.notes})")
    return next((a for a in batch.alerts if a.status == "firing"), batch.alerts[0])


def load_alert_batch(path: Path, source: str | None = None) -> AlertBatch:
    """Read an alert file (JSON, at most 1 MiB) and return every alert in it."""
    data = read_capped(path, MAX_ALERT_BYTES)
    payload = loads(data, what=str(path))
    try:
        return parse_payload(payload, source)
    except AlertError as e:
        raise AlertError(f"{path}: {e}") from e


def load_alert_file(path: Path) -> Alert:
    """Read an alert file and return its first firing alert (see :func:`load_alert_batch` for all)."""
    batch = load_alert_batch(path)
    if not batch.alerts:
        raise AlertError(f"{path}: the {batch.source} payload holds no alert")
    return next((a for a in batch.alerts if a.status == "firing"), batch.alerts[0])


__all__ = [
    "MAX_ALERT_BYTES",
    "Alert",
    "AlertBatch",
    "AlertFileError",
    "from_alertmanager",
    "label_fingerprint",
    "load_alert_batch",
    "load_alert_file",
    "normalise",
    "parse_payload",
]
