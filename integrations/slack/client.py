"""The Slack connection: a ``WebClient`` built from ``[slack]`` settings, and per-channel pacing.

Slack allows about one ``chat.postMessage`` per second per channel and answers bursts beyond that
with HTTP 429 and ``Retry-After`` (Slack API docs, "Rate limits", "Posting messages"). fireline
paces every message and update it sends to a channel to one per ``min_interval`` seconds, process
wide, and lets slack-sdk's ``RateLimitErrorRetryHandler`` sleep the ``Retry-After`` a 429 carries;
when the handler's retries run out, :meth:`SlackConnection.call` waits ``Retry-After`` itself and
tries again, so a timeline entry is delayed, never dropped. ``ConnectionErrorRetryHandler`` retries
connection resets. slack_sdk is imported here only, on first use.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flows.config import Settings
from flows.errors import ConfigError, IntegrationError

SECRET_PREFIX = "secret:"
RATE_LIMIT_RETRIES = 2
MAX_RATE_LIMIT_WAITS = 20  # per call, after the handler's own retries: minutes of 429s before giving up


class SlackCallError(IntegrationError):
    """Slack answered ``ok: false``; ``slack_code`` is its error code (``name_taken``, ``not_in_channel``)."""

    def __init__(self, method: str, slack_code: str, *, retryable: bool = False) -> None:
        super().__init__(f"slack {method}: {slack_code}", retryable=retryable, details={"code": slack_code})
        self.slack_code = slack_code


def resolve_secret(value: str | None, what: str) -> str | None:
    """``secret:NAME`` -> the environment variable NAME; a plain value is returned as is."""
    if value is None or not value.startswith(SECRET_PREFIX):
        return value
    name = value[len(SECRET_PREFIX) :]
    found = os.environ.get(name)
    if not found:
        raise ConfigError(f"slack.{what}: secret {name!r} is not set in the environment")
    return found


def configured(settings: Settings) -> bool:
    """Whether a Slack token is configured (without it nothing is ever sent)."""
    return bool(settings.slack.token)


@dataclass
class Pacer:
    """At most one send per ``interval`` seconds per channel; thread-safe.

    ``clock`` and ``sleep`` are injectable so that a benchmark can run on a virtual clock.
    """

    interval: float = 1.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_turn(self, channel: str) -> float:
        """Block until this channel may receive the next message; return the seconds waited."""
        with self._lock:
            now = self.clock()
            slot = max(now, self._next.get(channel, now))
            self._next[channel] = slot + self.interval
        delay = slot - now
        if delay > 0:
            self.sleep(delay)
        return delay

    def hold(self, channel: str, seconds: float) -> None:
        """Push the channel's next slot back (after a 429's Retry-After)."""
        with self._lock:
            self._next[channel] = max(self._next.get(channel, 0.0), self.clock() + seconds)


def build_web_client(settings: Settings, *, rate_limit_retries: int = RATE_LIMIT_RETRIES) -> Any:
    """A ``slack_sdk.WebClient`` for ``settings.slack`` with rate-limit and connection retry handlers.

    Raises:
        ConfigError: no token configured, or a ``secret:`` reference that is not set.
    """
    from slack_sdk import WebClient
    from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

    token = resolve_secret(settings.slack.token, "token")
    if not token:
        raise ConfigError("slack.token is not set (fireline.toml [slack] token, or FIRELINE_SLACK_TOKEN)")
    return WebClient(
        token=token,
        base_url=settings.slack.base_url,
        timeout=int(settings.slack.timeout),
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),  # slack-sdk's default: one retry of a reset
            RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
        ],
    )


class SlackConnection:
    """A WebClient plus the pacer and the e-mail -> Slack user id cache, shared per workspace."""

    def __init__(self, client: Any, pacer: Pacer) -> None:
        self.client = client
        self.pacer = pacer
        self.user_ids: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def call(self, method: str, *, channel: str | None = None, paced: bool = True, **params: Any) -> dict[str, Any]:
        """Call a Web API method (``"chat.postMessage"``), paced per channel, waiting out 429s.

        Raises:
            SlackCallError: Slack answered ``ok: false`` (the error code is in the message).
        """
        from slack_sdk.errors import SlackApiError

        if channel is not None:
            params["channel"] = channel
        for _ in range(MAX_RATE_LIMIT_WAITS):
            if channel is not None and paced:
                self.pacer.wait_turn(channel)
            try:
                # The typed method sends the encoding Slack documents for it (JSON, form or GET).
                response = getattr(self.client, method.replace(".", "_"))(**params)
                data = dict(response.data)
                if channel is not None and paced:
                    # Space from when it went through (a 429 retry inside the WebClient may have sent it
                    # late), under the name used and the channel id Slack answered with: one channel, one pace.
                    for key in {channel, str(data.get("channel") or channel)}:
                        self.pacer.hold(key, self.pacer.interval)
                return data
            except SlackApiError as e:
                code = str(e.response.get("error", ""))
                if e.response.status_code == 429 or code == "ratelimited":
                    wait = float(e.response.headers.get("Retry-After", e.response.headers.get("retry-after", 1)))
                    self.pacer.hold(channel or method, wait)
                    if channel is None:
                        self.pacer.sleep(wait)
                    continue
                raise SlackCallError(method, code or str(e)) from e
            except OSError as e:  # connection refused or reset after ConnectionErrorRetryHandler's retries
                raise SlackCallError(method, f"connection failed: {e}", retryable=True) from e
        raise SlackCallError(method, "ratelimited", retryable=True)

    def user_id_for(self, email: str) -> str | None:
        """The Slack user id of an e-mail address (``users.lookupByEmail``), cached; None if unknown."""
        key = email.lower()
        with self._lock:
            if key in self.user_ids:
                return self.user_ids[key]
        try:
            found: str | None = str(self.call("users.lookupByEmail", email=email)["user"]["id"])
        except SlackCallError as e:
            if e.slack_code != "users_not_found":
                raise
            found = None
        with self._lock:
            self.user_ids[key] = found
        return found


_connections: dict[tuple[str, str], SlackConnection] = {}
_connections_lock = threading.Lock()


def connection(settings: Settings) -> SlackConnection:
    """The process-wide connection for this workspace (base URL and token): one pacer per channel."""
    key = (settings.slack.base_url, settings.slack.token or "")
    with _connections_lock:
        found = _connections.get(key)
        if found is None:
            found = SlackConnection(build_web_client(settings), Pacer(settings.slack.min_interval))
            _connections[key] = found
        return found
