"""Prometheus Alertmanager webhook payload, version 4 (Alertmanager docs, "webhook_config").

One notification carries a whole alert group in ``alerts``; every entry becomes an alert with its
own status and fingerprint. ``truncatedAlerts`` (alerts left out by ``max_alerts``) is kept in the
batch so the run record can say the group was incomplete. Alertmanager sends the zero time
``0001-01-01T00:00:00Z`` as ``endsAt`` of an alert that has not ended.
"""

from __future__ import annotations

from typing import Any

from flows.triggers.model import Alert, AlertBatch, AlertError, str_map, text


def parse_group(payload: dict[str, Any], source: str) -> AlertBatch:
    """The shared shape of Alertmanager and Grafana notifications."""
    entries = payload.get("alerts")
    if not isinstance(entries, list) or not entries:
        raise AlertError(f"{source} payload: 'alerts' must be a non-empty list")
    common_labels = str_map(payload.get("commonLabels"), f"{source} payload: commonLabels")
    common_annotations = str_map(payload.get("commonAnnotations"), f"{source} payload: commonAnnotations")
    group_status = text(payload.get("status"), f"{source} payload: status", "firing")
    alerts: list[Alert] = []
    for index, entry in enumerate(entries):
        where = f"{source} payload: alerts[{index}]"
        if not isinstance(entry, dict):
            raise AlertError(f"{where} is not an object")
        labels = {**common_labels, **str_map(entry.get("labels"), f"{where}.labels")}
        annotations = {**common_annotations, **str_map(entry.get("annotations"), f"{where}.annotations")}
        status = text(entry.get("status"), f"{where}.status", group_status)
        ends_at = text(entry.get("endsAt"), f"{where}.endsAt") or None
        alerts.append(
            Alert(
                source=source,  # type: ignore[arg-type]  # one of the two group sources
                status="resolved" if status == "resolved" else "firing",
                fingerprint=text(entry.get("fingerprint"), f"{where}.fingerprint")[:256],
                labels=labels,
                annotations=annotations,
                starts_at=text(entry.get("startsAt"), f"{where}.startsAt") or None,
                ends_at=None if ends_at is None or ends_at.startswith("0001-") else ends_at,
                raw=payload,
            )
        )
    truncated = payload.get("truncatedAlerts", 0)
    notes = {"group_key": text(payload.get("groupKey"), f"{source} payload: groupKey")}
    return AlertBatch(
        source=source,
        alerts=alerts,
        raw=payload,
        truncated=truncated if isinstance(truncated, int) and not isinstance(truncated, bool) else 0,
        notes=notes,
    )


def parse(payload: dict[str, Any]) -> AlertBatch:
    version = str(payload.get("version", ""))
    if version != "4":
        raise AlertError(f"alertmanager payload: version {version!r} is not the webhook version 4")
    return parse_group(payload, "alertmanager")
