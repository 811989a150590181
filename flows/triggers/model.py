"""The normalised alert (``alert`` in templates) and a parsed payload (:class:`AlertBatch`).

Whatever system sent it, an alert becomes ``{"source", "status", "fingerprint", "labels",
"annotations", "starts_at", "ends_at", "raw"}``. A payload may carry several alerts (an Alertmanager
notification carries a whole group): :class:`AlertBatch` keeps every one of them, the count the
sender left out (``truncated``, Alertmanager's ``truncatedAlerts``) and the raw payload.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.errors import RunError
from flows.language.spec import AlertSource

SOURCES: tuple[str, ...] = ("alertmanager", "grafana", "cloudwatch", "datadog", "pagerduty", "generic")
MAX_LABELS = 256
MAX_VALUE = 8192


class AlertError(RunError):
    """An alert payload is missing, oversized, malformed or not a recognised format."""

    code = "E810"
    status = 400  # the HTTP status the receiver answers with


class AlertRefused(AlertError):
    """A payload that is well-formed but not allowed: bad signature, unlisted topic, foreign host."""

    code = "E811"
    status = 403


class Alert(BaseModel):
    """One alert, whatever system sent it."""

    model_config = ConfigDict(extra="forbid")

    source: AlertSource = "generic"
    status: Literal["firing", "resolved"] = "firing"
    fingerprint: str = Field(default="", max_length=256)
    labels: dict[str, str] = Field(default_factory=dict, max_length=MAX_LABELS)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=MAX_LABELS)
    starts_at: str | None = None
    ends_at: str | None = None
    raw: Any = None

    def model_post_init(self, context: Any, /) -> None:
        if not self.fingerprint:
            self.fingerprint = label_fingerprint(self.labels)

    def as_template(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def brief(self) -> dict[str, Any]:
        """The alert without its raw payload (for events and the run's alert list)."""
        return self.model_dump(mode="json", exclude={"raw"})


@dataclass
class AlertBatch:
    """Every alert of one payload, with what the sender said it left out."""

    source: str
    alerts: list[Alert]
    raw: Any = None
    truncated: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "resolved"]


def label_fingerprint(labels: dict[str, str]) -> str:
    """A stable fingerprint of a label set (sorted, sha256, 16 hex digits)."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def str_map(value: Any, what: str) -> dict[str, str]:
    """A mapping of strings to strings from a payload field; scalars are turned into strings."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AlertError(f"{what} must be an object")
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int | float) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(key, str) or not isinstance(item, str):
            raise AlertError(f"{what} must map strings to strings ({key!r} is {type(item).__name__})")
        if len(item) > MAX_VALUE:
            raise AlertError(f"{what}.{key} is longer than {MAX_VALUE} characters")
        out[key] = item
    if len(out) > MAX_LABELS:
        raise AlertError(f"{what} has more than {MAX_LABELS} entries")
    return out


def text(value: Any, what: str, default: str = "") -> str:
    """A string field of a payload (numbers are accepted as text)."""
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise AlertError(f"{what} must be a string")


def obj(value: Any) -> dict[str, Any]:
    """A nested object of a payload, or {} when it is missing or not an object."""
    return value if isinstance(value, dict) else {}
