"""PagerDuty: V3 webhook subscriptions and Events API v2 events, both on ``/alerts/pagerduty``.

V3 webhooks (PagerDuty Developer docs, "Webhooks v3 overview") wrap one ``event`` with an
``event_type``: ``incident.triggered`` fires, ``incident.resolved`` resolves; other event types
(acknowledged, annotated, ...) carry no alert and are recorded as ignored. They are signed with
``X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the body>`` (several comma-separated during secret
rotation). Events API v2 (PagerDuty docs, "Events API v2 overview") sends ``event_action``
``trigger``/``resolve``/``acknowledge`` with a ``dedup_key``, which is the fingerprint.
"""

from __future__ import annotations

from typing import Any

from flows.triggers.model import Alert, AlertBatch, AlertError, obj, str_map, text

V3_STATUS = {"incident.triggered": "firing", "incident.resolved": "resolved"}
V2_STATUS = {"trigger": "firing", "resolve": "resolved"}


def _v3(payload: dict[str, Any]) -> AlertBatch:
    event = payload["event"]
    event_type = text(event.get("event_type"), "pagerduty event.event_type")
    data = event.get("data")
    if not isinstance(data, dict):
        raise AlertError("pagerduty event.data must be an object")
    status = V3_STATUS.get(event_type)
    if status is None:
        return AlertBatch(source="pagerduty", alerts=[], raw=payload, notes={"ignored": event_type})
    service = obj(data.get("service"))
    priority = obj(data.get("priority"))
    labels = {k: v for k, v in {
        "alertname": text(data.get("title"), "pagerduty event.data.title"),
        "service": text(service.get("summary"), "pagerduty event.data.service.summary"),
        "urgency": text(data.get("urgency"), "pagerduty event.data.urgency"),
        "priority": text(priority.get("summary"), "pagerduty event.data.priority.summary"),
        "incident_number": text(data.get("number"), "pagerduty event.data.number"),
    }.items() if v}  # fmt: skip
    fingerprint = text(data.get("incident_key"), "pagerduty event.data.incident_key") or text(
        data.get("id"), "pagerduty event.data.id"
    )
    alert = Alert(
        source="pagerduty",
        status=status,  # type: ignore[arg-type]  # from V3_STATUS
        fingerprint=fingerprint[:256],
        labels=labels,
        annotations={"html_url": text(data.get("html_url"), "pagerduty event.data.html_url")},
        starts_at=text(event.get("occurred_at"), "pagerduty event.occurred_at") or None,
        raw=payload,
    )
    return AlertBatch(source="pagerduty", alerts=[alert], raw=payload, notes={"event_type": event_type})


def _v2(payload: dict[str, Any]) -> AlertBatch:
    action = text(payload.get("event_action"), "pagerduty event_action")
    status = V2_STATUS.get(action)
    if status is None:
        if action != "acknowledge":
            raise AlertError(f"pagerduty event_action {action!r} is not trigger, acknowledge or resolve")
        return AlertBatch(source="pagerduty", alerts=[], raw=payload, notes={"ignored": action})
    body = obj(payload.get("payload"))
    if status == "firing" and not body:
        raise AlertError("pagerduty trigger event needs a payload object")
    details = body.get("custom_details")
    labels = str_map({k: v for k, v in details.items() if isinstance(v, str | int | float)}, "custom_details") if (
        isinstance(details, dict)) else {}  # fmt: skip
    for key in ("source", "severity", "component", "group", "class"):
        value = text(body.get(key), f"pagerduty payload.{key}")
        if value:
            labels[key] = value
    summary = text(body.get("summary"), "pagerduty payload.summary")
    dedup_key = text(payload.get("dedup_key"), "pagerduty dedup_key")
    if status == "resolved" and not dedup_key:
        raise AlertError("pagerduty resolve event needs a dedup_key")
    alert = Alert(
        source="pagerduty",
        status=status,  # type: ignore[arg-type]  # from V2_STATUS
        fingerprint=dedup_key[:256],
        labels=labels,
        annotations={"summary": summary[:8192]} if summary else {},
        starts_at=text(body.get("timestamp"), "pagerduty payload.timestamp") or None,
        raw=payload,
    )
    return AlertBatch(source="pagerduty", alerts=[alert], raw=payload)


def parse(payload: dict[str, Any]) -> AlertBatch:
    if isinstance(payload.get("event"), dict):
        return _v3(payload)
    if "event_action" in payload:
        return _v2(payload)
    raise AlertError("pagerduty payload is neither a V3 webhook ('event') nor an Events API v2 event ('event_action')")
