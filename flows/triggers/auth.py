"""Authenticating a source's request: a bearer token, or an HMAC signature with a replay window.

Comparisons are constant-time (``hmac.compare_digest``). With a ``timestamp_header``, the signed
bytes are ``<timestamp>.<body>`` and a timestamp (Unix seconds) further than ``replay_window`` from
now is refused, so a captured request cannot be replayed later. Several signatures in one header
(comma-separated, as PagerDuty sends during secret rotation) are accepted when any one verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

from flows.triggers.config import SourceSettings
from flows.triggers.model import AlertRefused


class Unauthorised(AlertRefused):
    """Missing or wrong credentials, or a stale signed timestamp (HTTP 401)."""

    code = "E812"
    status = 401


def sign(settings: SourceSettings, key: str, body: bytes, timestamp: str | None = None) -> str:
    """The header value a sender computes (for tests, the bench and ``docs/triggers.md``)."""
    message = f"{timestamp}.".encode() + body if timestamp is not None else body
    digest = hmac.new(key.encode(), message, getattr(hashlib, settings.algorithm)).digest()
    encoded = digest.hex() if settings.encoding == "hex" else base64.b64encode(digest).decode()
    return f"{settings.prefix}{encoded}"


def check(
    settings: SourceSettings,
    headers: Mapping[str, str],
    body: bytes,
    *,
    replay_window: float,
    clock: Callable[[], float] = time.time,
) -> None:
    """Raise :class:`Unauthorised` unless the request carries the source's credentials."""
    if settings.auth == "none":
        return
    key = settings.secret_value()
    if not key:
        raise Unauthorised(f"no secret configured for this source ({settings.secret_env or 'secret'} is empty)")
    if settings.auth == "bearer":
        given = headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            raise Unauthorised("missing or wrong bearer token")
        return
    timestamp = None
    if settings.timestamp_header:
        timestamp = headers.get(settings.timestamp_header.lower())
        try:
            moment = float(timestamp or "")
        except ValueError:
            raise Unauthorised(f"missing or bad {settings.timestamp_header} header") from None
        if not abs(clock() - moment) <= replay_window:  # also refuses NaN
            raise Unauthorised(f"signed timestamp is outside the {replay_window:g} s replay window")
    expected = sign(settings, key, body, timestamp).encode()
    given = headers.get(settings.header.lower(), "")
    if not any(hmac.compare_digest(part.strip().encode(), expected) for part in given.split(",")[:8]):
        raise Unauthorised(f"missing or wrong {settings.header} signature")
