"""Grafana unified alerting webhook (Grafana docs, "Configure webhook notifications", version 1).

The notification has Alertmanager's shape (Grafana's alerting is built on it) plus ``orgId``,
``title``, ``state``, ``message`` and per alert ``values``, ``valueString`` and dashboard links;
every alert of the group becomes an alert, ``truncatedAlerts`` is kept.
"""

from __future__ import annotations

from typing import Any

from flows.triggers.adapters.alertmanager import parse_group
from flows.triggers.model import AlertBatch, text


def parse(payload: dict[str, Any]) -> AlertBatch:
    batch = parse_group(payload, "grafana")
    batch.notes["title"] = text(payload.get("title"), "grafana payload: title")
    batch.notes["org_id"] = payload.get("orgId") if isinstance(payload.get("orgId"), int) else None
    return batch
