"""The normalised alert (``alert`` in templates) and reading alert files.

An alert file holds either the normalised form (every field optional, ``{"labels": {...}}`` is valid)
or a raw payload of a supported source; Prometheus Alertmanager webhook v4 is recognised by its
``version`` and ``alerts`` keys. Files are capped at :data:`MAX_ALERT_BYTES`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from flows.errors import RunError
from flows.language.spec import AlertSource

MAX_ALERT_BYTES = 1024 * 1024


class AlertFileError(RunError):
    """An alert file is missing, oversized or not a recognised payload."""

    code = "E810"


class Alert(BaseModel):
    """One alert, whatever system sent it."""

    model_config = ConfigDict(extra="forbid")

    source: AlertSource = "generic"
    status: Literal["firing", "resolved"] = "firing"
    fingerprint: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: str | None = None
    ends_at: str | None = None
    raw: Any = None

    def model_post_init(self, context: Any, /) -> None:
        if not self.fingerprint:
            self.fingerprint = label_fingerprint(self.labels)

    def as_template(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def label_fingerprint(labels: dict[str, str]) -> str:
    """A stable fingerprint of a label set (sorted, sha256, 16 hex digits)."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def is_alertmanager(payload: Any) -> bool:
    return isinstance(payload, dict) and "alerts" in payload and str(payload.get("version", "")) == "4"


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise AlertFileError(f"alertmanager payload: {what} must map strings to strings")
    return dict(value)


def from_alertmanager(payload: dict[str, Any]) -> list[Alert]:
    """Normalise an Alertmanager webhook v4 payload: one Alert per entry of ``alerts``."""
    entries = payload.get("alerts")
    if not isinstance(entries, list) or not entries:
        raise AlertFileError("alertmanager payload: 'alerts' must be a non-empty list")
    common_labels = _str_map(payload.get("commonLabels"), "commonLabels")
    common_annotations = _str_map(payload.get("commonAnnotations"), "commonAnnotations")
    alerts: list[Alert] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise AlertFileError(f"alertmanager payload: alerts[{index}] is not an object")
        labels = {**common_labels, **_str_map(entry.get("labels"), f"alerts[{index}].labels")}
        annotations = {**common_annotations, **_str_map(entry.get("annotations"), f"alerts[{index}].annotations")}
        status = entry.get("status", payload.get("status", "firing"))
        ends_at = entry.get("endsAt")
        alerts.append(
            Alert(
                source="alertmanager",
                status="resolved" if status == "resolved" else "firing",
                fingerprint=str(entry.get("fingerprint") or label_fingerprint(labels)),
                labels=labels,
                annotations=annotations,
                starts_at=entry.get("startsAt"),
                # Alertmanager sends the zero time for alerts that have not ended.
                ends_at=None if not ends_at or str(ends_at).startswith("0001-") else str(ends_at),
                raw=payload,
            )
        )
    return alerts


def normalise(payload: Any) -> Alert:
    """Turn a payload (normalised form or Alertmanager v4) into one Alert; the first firing one wins."""
    if is_alertmanager(payload):
        alerts = from_alertmanager(payload)
        return next((a for a in alerts if a.status == "firing"), alerts[0])
    if not isinstance(payload, dict):
        raise AlertFileError("an alert must be a JSON object")
    try:
        return Alert.model_validate(payload)
    except PydanticValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "alert"
        raise AlertFileError(f"alert: {where}: {first['msg']}") from e


def load_alert_file(path: Path) -> Alert:
    """Read and normalise an alert file (JSON, at most 1 MiB)."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise AlertFileError(f"{path}: cannot read the alert file: {e.strerror}") from e
    if size > MAX_ALERT_BYTES:
        raise AlertFileError(f"{path}: alert file is {size} bytes, over the {MAX_ALERT_BYTES} byte cap")
    try:
        payload = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AlertFileError(f"{path}: not a JSON alert: {e}") from e
    try:
        return normalise(payload)
    except AlertFileError as e:
        raise AlertFileError(f"{path}: {e}") from e
