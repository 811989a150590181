"""The state behind the loopback Slack Web API: one workspace, its users, channels and messages.

:class:`SlackWorkspace` holds what the loopback knows and every request it received; the methods
and the dispatch live in :mod:`integrations.slack.loopback_api`, the HTTP server in
:mod:`integrations.slack.loopback`.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

BOT_USER = "U0FIRELINE"
TOKEN = "xoxb-loopback"
CHANNEL_NAME = re.compile(r"^[a-z0-9_-]{1,80}$")

Reply = tuple[int, dict[str, Any], dict[str, str]]  # status, body, extra headers


class SlackError(Exception):
    """A Slack API error answer (HTTP 200, ``ok: false``)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Request:
    """One request the loopback received."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic()
    status: int = 200
    error: str | None = None


@dataclass
class Message:
    """A message as the loopback stores it."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    user: str = BOT_USER
    edits: int = 0


@dataclass
class Channel:
    id: str
    name: str
    created: int
    members: set[str] = field(default_factory=lambda: {BOT_USER})
    topic: str = ""
    purpose: str = ""
    is_im: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": True,
            "is_private": False,
            "is_archived": False,
            "created": self.created,
            "creator": BOT_USER,
            "is_member": BOT_USER in self.members,
            "num_members": len(self.members),
            "topic": {"value": self.topic, "creator": BOT_USER, "last_set": self.created},
            "purpose": {"value": self.purpose, "creator": BOT_USER, "last_set": self.created},
        }


class SlackWorkspace:
    """The state behind the loopback: users, user groups, channels, messages and requests."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.lock = threading.RLock()
        self.users: dict[str, dict[str, str]] = {}  # id -> {name, email}
        self.usergroups: dict[str, dict[str, Any]] = {}  # id -> {handle, users}
        self.channels: dict[str, Channel] = {}
        self.messages: list[Message] = []
        self.ephemeral: list[dict[str, Any]] = []
        self.views: list[dict[str, Any]] = []
        self.requests: list[Request] = []
        self._faults: dict[str, list[Reply]] = {}
        self._ids = itertools.count(1)
        self._clock = itertools.count(1)
        self._base = int(time.time())

    # -- set-up ----------------------------------------------------------------------------------
    def add_user(self, user_id: str, name: str, email: str) -> None:
        with self.lock:
            self.users[user_id] = {"name": name, "email": email}

    def add_usergroup(self, group_id: str, handle: str, users: list[str]) -> None:
        with self.lock:
            self.usergroups[group_id] = {"handle": handle, "users": list(users)}

    def add_channel(self, name: str, *, member: bool = True, purpose: str = "") -> str:
        """A channel that exists before fireline runs (e.g. one holding the name it wants)."""
        with self.lock:
            channel = self._new_channel(name)
            channel.purpose = purpose
            if not member:
                channel.members.discard(BOT_USER)
            return channel.id

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 429 and ``Retry-After``."""
        self.fail(method, times, status=429, error="ratelimited", headers={"Retry-After": str(retry_after)})

    def fail(
        self, method: str, times: int = 1, *, error: str, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with this error."""
        with self.lock:
            reply: Reply = (status, {"ok": False, "error": error}, dict(headers or {}))
            self._faults.setdefault(method, []).extend([reply] * times)

    # -- reading what happened --------------------------------------------------------------------
    def channel_named(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = next((c for c in self.channels.values() if c.name == name.lstrip("#")), None)
            return None if found is None else {**found.public(), "members": sorted(found.members)}

    def posted(self, method: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if method is None or r.method == method]

    def history(self, channel: str, thread_ts: str | None = None) -> list[Message]:
        """Top-level messages of a channel (id or name), or the replies in one thread."""
        with self.lock:
            try:
                cid = self._resolve(channel)
            except SlackError:
                return []
            if thread_ts is None:
                return [m for m in self.messages if m.channel == cid and m.thread_ts is None]
            return [m for m in self.messages if m.channel == cid and m.thread_ts == thread_ts]

    # -- the API ----------------------------------------------------------------------------------
    def take_fault(self, method: str) -> Reply | None:
        """The next injected answer for ``method``, if any (call with :attr:`lock` held)."""
        faults = self._faults.get(method)
        return faults.pop(0) if faults else None

    def _new_channel(self, name: str) -> Channel:
        channel = Channel(id=f"C{next(self._ids):08d}", name=name, created=self._base)
        self.channels[channel.id] = channel
        return channel

    def _resolve(self, raw: Any) -> str:
        ref = str(raw or "")
        if ref in self.channels:
            return ref
        if ref in self.users:  # a user id as channel: the app's DM with that user
            dm = f"D{ref[1:]}"
            if dm not in self.channels:
                self.channels[dm] = Channel(id=dm, name=f"dm-{ref}", created=self._base, members={BOT_USER, ref},
                                             is_im=True)  # fmt: skip
            return dm
        found = next((c.id for c in self.channels.values() if c.name == ref.lstrip("#")), None)
        if found is None:
            raise SlackError("channel_not_found")
        return found

    def _channel(self, params: dict[str, Any]) -> Channel:
        return self.channels[self._resolve(params.get("channel"))]

    def _ts(self) -> str:
        return f"{self._base}.{next(self._clock):06d}"
