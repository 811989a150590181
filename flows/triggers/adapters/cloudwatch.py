"""CloudWatch alarms delivered through Amazon SNS (CloudWatch User Guide, "Using Amazon CloudWatch alarms").

The request body is an SNS message (checked by :class:`~flows.triggers.adapters.sns.SnsVerifier`).
A ``Notification``'s ``Message`` is the alarm's state change as JSON: ``NewStateValue`` ``ALARM``
fires, ``OK`` resolves, ``INSUFFICIENT_DATA`` carries no alert. Labels: ``alertname`` (the alarm
name), ``account``, ``region``, ``namespace``, ``metric`` and one ``dimension_<name>`` per metric
dimension; the fingerprint is derived from the alarm ARN. A ``SubscriptionConfirmation`` yields no
alert: the batch says the subscription was confirmed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flows.triggers.adapters.sns import SnsVerifier
from flows.triggers.model import Alert, AlertBatch, AlertError, obj, text
from flows.triggers.safejson import loads

STATES = {"ALARM": "firing", "OK": "resolved"}


def _labels(alarm: dict[str, Any]) -> dict[str, str]:
    trigger = obj(alarm.get("Trigger"))
    labels = {
        "alertname": text(alarm.get("AlarmName"), "alarm AlarmName"),
        "account": text(alarm.get("AWSAccountId"), "alarm AWSAccountId"),
        "region": text(alarm.get("Region"), "alarm Region"),
        "namespace": text(trigger.get("Namespace"), "alarm Trigger.Namespace"),
        "metric": text(trigger.get("MetricName"), "alarm Trigger.MetricName"),
    }
    dimensions = trigger.get("Dimensions")
    for dim in dimensions if isinstance(dimensions, list) else []:
        if isinstance(dim, dict):
            name = text(dim.get("name"), "alarm dimension name")[:200]
            labels[f"dimension_{name}"] = text(dim.get("value"), "alarm dimension value")
    return {k: v for k, v in labels.items() if v}


def alarm_batch(alarm: dict[str, Any], raw: Any) -> AlertBatch:
    """The alert of one alarm state change."""
    if not alarm.get("AlarmName"):
        raise AlertError("cloudwatch alarm: AlarmName is missing")
    state = text(alarm.get("NewStateValue"), "alarm NewStateValue")
    status = STATES.get(state)
    if status is None:
        return AlertBatch(source="cloudwatch", alerts=[], raw=raw, notes={"ignored": state})
    arn = text(alarm.get("AlarmArn"), "alarm AlarmArn") or text(alarm.get("AlarmName"), "alarm AlarmName")
    alert = Alert(
        source="cloudwatch",
        status=status,  # type: ignore[arg-type]  # from STATES
        fingerprint=hashlib.sha256(arn.encode()).hexdigest()[:16],
        labels=_labels(alarm),
        annotations={
            "description": text(alarm.get("AlarmDescription"), "alarm AlarmDescription"),
            "reason": text(alarm.get("NewStateReason"), "alarm NewStateReason"),
        },
        starts_at=text(alarm.get("StateChangeTime"), "alarm StateChangeTime") or None,
        raw=raw,
    )
    return AlertBatch(source="cloudwatch", alerts=[alert], raw=raw)


def parse(payload: dict[str, Any], sns: SnsVerifier | None) -> AlertBatch:
    if "AlarmName" in payload:  # an alarm message without its SNS envelope (alert files only)
        if sns is not None:
            raise AlertError("cloudwatch payload must be an SNS message")
        return alarm_batch(payload, payload)
    kind = payload.get("Type")
    if kind not in ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"):
        raise AlertError(f"cloudwatch payload: SNS Type {str(kind)[:40]!r} is not a known message type")
    if sns is not None:
        sns.verify(payload)
    if kind != "Notification":
        if kind == "SubscriptionConfirmation" and sns is not None:
            sns.confirm(payload)
        return AlertBatch(source="cloudwatch", alerts=[], raw=payload, notes={"sns": kind})
    alarm = loads(text(payload.get("Message"), "SNS Message"), what="SNS Message")
    if not isinstance(alarm, dict):
        raise AlertError("SNS Message is not a CloudWatch alarm object")
    return alarm_batch(alarm, payload)
