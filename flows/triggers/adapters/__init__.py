"""One adapter per alert source: the source's payload in, an :class:`~flows.triggers.model.AlertBatch` out.

An adapter is a pure function of the parsed JSON body (and, for SNS, a signature verifier): it
keeps every alert of a group, the sender's own fingerprint, the count of alerts the sender left out,
and the raw payload. :func:`parse` picks the adapter by source name; :func:`detect` recognises the
source of a file given to ``fireline run --alert``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flows.triggers.adapters import alertmanager, cloudwatch, datadog, generic, grafana, pagerduty
from flows.triggers.adapters.sns import SnsVerifier
from flows.triggers.model import SOURCES, AlertBatch, AlertError

Parser = Callable[[Any], AlertBatch]

PARSERS: dict[str, Parser] = {
    "alertmanager": alertmanager.parse,
    "grafana": grafana.parse,
    "datadog": datadog.parse,
    "pagerduty": pagerduty.parse,
    "generic": generic.parse,
}


def parse(source: str, payload: Any, *, sns: SnsVerifier | None = None) -> AlertBatch:
    """Normalise ``payload`` from ``source``; raise :class:`AlertError` (one line) when it is not one."""
    if source not in SOURCES:
        raise AlertError(f"unknown alert source {source!r} (known: {', '.join(SOURCES)})")
    if not isinstance(payload, dict):
        raise AlertError(f"{source} payload must be a JSON object")
    if source == "cloudwatch":
        return cloudwatch.parse(payload, sns)
    return PARSERS[source](payload)


def detect(payload: Any) -> str:
    """The source of a raw payload in a file; ``generic`` for the normalised form."""
    if not isinstance(payload, dict):
        return "generic"
    if isinstance(payload.get("alerts"), list) and ("orgId" in payload or str(payload.get("version")) == "1"):
        return "grafana"
    if isinstance(payload.get("alerts"), list) and str(payload.get("version", "")) == "4":
        return "alertmanager"
    if ("TopicArn" in payload and "Type" in payload) or "AlarmName" in payload:
        return "cloudwatch"
    if "event_action" in payload or (isinstance(payload.get("event"), dict) and "event_type" in payload["event"]):
        return "pagerduty"
    if "alert_transition" in payload or ("alert_id" in payload and "aggreg_key" in payload):
        return "datadog"
    return "generic"


__all__ = ["PARSERS", "AlertBatch", "AlertError", "SnsVerifier", "detect", "parse"]
