"""Datadog webhooks (Datadog docs, "Webhooks integration": the payload is a template of ``$VARIABLES``).

fireline expects the template below (``docs/triggers.md`` gives it to paste): ``alert_transition``
(``Triggered``, ``Re-Triggered``, ``Warn``, ``Recovered``, ...), ``alert_id`` (the monitor),
``alert_scope`` (the group of a multi-alert monitor), ``aggreg_key``, ``title``, ``hostname``,
``priority``, ``tags`` (``$TAGS``: comma-separated ``key:value``), ``date``, ``id``. A recovery is a
resolved alert; the fingerprint is the monitor and its scope, so each group of a multi-alert monitor
is its own incident.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flows.triggers.model import Alert, AlertBatch, AlertError, text

RESOLVED = {"recovered", "success"}


def _tags(value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    items = value if isinstance(value, list) else text(value, "datadog payload: tags").split(",")
    labels: dict[str, str] = {}
    for raw in items[:256]:
        tag = text(raw, "datadog payload: tags[]").strip()
        if tag:
            key, _, val = tag.partition(":")
            labels[key.strip()[:256]] = val.strip()[:8192]
    return labels


def parse(payload: dict[str, Any]) -> AlertBatch:
    transition = text(payload.get("alert_transition"), "datadog payload: alert_transition")
    alert_type = text(payload.get("alert_type"), "datadog payload: alert_type")
    monitor = text(payload.get("alert_id"), "datadog payload: alert_id")
    scope = text(payload.get("alert_scope"), "datadog payload: alert_scope")
    title = text(payload.get("title"), "datadog payload: title")
    if not monitor and not title:
        raise AlertError("datadog payload: needs alert_id or title (see the webhook template in docs/triggers.md)")
    labels = _tags(payload.get("tags"))
    labels.update(
        {
            k: v
            for k, v in {
                "alertname": title,
                "monitor_id": monitor,
                "scope": scope,
                "host": text(payload.get("hostname"), "datadog payload: hostname"),
                "priority": text(payload.get("priority"), "datadog payload: priority"),
            }.items()
            if v
        }
    )
    resolved = transition.lower() in RESOLVED or alert_type.lower() == "success"
    key = text(payload.get("aggreg_key"), "datadog payload: aggreg_key") or monitor or title
    fingerprint = hashlib.sha256(f"{key}\0{scope}".encode()).hexdigest()[:16]
    alert = Alert(
        source="datadog",
        status="resolved" if resolved else "firing",
        fingerprint=fingerprint,
        labels=labels,
        annotations={"transition": transition, "event_id": text(payload.get("id"), "datadog payload: id")},
        starts_at=text(payload.get("date"), "datadog payload: date") or None,
        raw=payload,
    )
    return AlertBatch(source="datadog", alerts=[alert], raw=payload)
