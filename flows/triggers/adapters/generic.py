"""The generic format: fireline's normalised alert, one object or ``{"alerts": [...]}``.

Every field is optional (``{"labels": {...}}`` is a valid alert); unknown keys are refused so that
a typo cannot vanish. Off loopback, requests must be signed (``auth = "hmac"``: HMAC-SHA256 over
``<timestamp>.<body>`` with a 5-minute replay window, see :mod:`flows.triggers.auth`), which is
what makes this format safe to expose.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from flows.triggers.model import Alert, AlertBatch, AlertError

MAX_ALERTS = 1000


def _one(entry: Any, where: str) -> Alert:
    if not isinstance(entry, dict):
        raise AlertError(f"{where} must be an object")
    try:
        alert = Alert.model_validate({"source": "generic", **entry})
    except ValidationError as e:
        first = e.errors()[0]
        # The location holds the payload's own keys: escaped, so a key with a newline stays one line.
        loc = ".".join(str(p) for p in first["loc"]).encode("unicode_escape").decode("ascii")[:200] or "alert"
        raise AlertError(f"{where}: {loc}: {first['msg']}") from e
    return alert


def parse(payload: dict[str, Any]) -> AlertBatch:
    entries = payload.get("alerts") if set(payload) <= {"alerts", "truncated"} and "alerts" in payload else None
    if entries is None:
        return AlertBatch(source="generic", alerts=[_one(payload, "alert")], raw=payload)
    if not isinstance(entries, list) or not entries or len(entries) > MAX_ALERTS:
        raise AlertError(f"generic payload: 'alerts' must be a list of 1 to {MAX_ALERTS} alerts")
    alerts = [_one(e, f"generic payload: alerts[{i}]") for i, e in enumerate(entries)]
    truncated = payload.get("truncated", 0)
    return AlertBatch(
        source="generic",
        alerts=alerts,
        raw=payload,
        truncated=truncated if isinstance(truncated, int) and not isinstance(truncated, bool) else 0,
    )
