"""A loopback stand-in for the Slack Web API, for the sandbox, the tests and the benchmark.

The real ``slack_sdk.WebClient`` talks to it with ``base_url=server.base_url`` (ends in ``/``). It
implements the methods fireline calls, with Slack's documented response shapes and error codes
(Slack API reference, one page per method): ``conversations.create`` (``name_taken``,
``invalid_name_specials``), ``conversations.info|list|invite|join|setTopic|setPurpose``,
``users.lookupByEmail`` (``users_not_found``), ``chat.postMessage`` (``not_in_channel``,
``channel_not_found``; a user id as the channel is the app's DM with that user), ``chat.update``
(``message_not_found``), ``chat.postEphemeral``, ``usergroups.users.list`` and ``views.open``.
Every request is recorded (method, parameters, arrival time), and :meth:`SlackWorkspace.rate_limit`
makes the next calls of a method answer HTTP 429 with ``Retry-After`` (Slack API docs, "Rate
limits": the body is ``{"ok": false, "error": "ratelimited"}``).

It is deliberately small: one workspace, one bot user (``U0FIRELINE``) that creates the channels it
is a member of, and no persistence.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

BOT_USER = "U0FIRELINE"
TOKEN = "xoxb-loopback"
_CHANNEL_NAME = re.compile(r"^[a-z0-9_-]{1,80}$")

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
class _Channel:
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
        self.channels: dict[str, _Channel] = {}
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
    def handle(self, method: str, params: dict[str, Any], auth: str | None) -> Reply:
        with self.lock:
            entry = Request(method, params, time.monotonic())
            self.requests.append(entry)
            faults = self._faults.get(method)
            if faults:
                reply = faults.pop(0)
            elif auth != f"Bearer {self.token}":
                reply = (200, {"ok": False, "error": "not_authed" if not auth else "invalid_auth"}, {})
            else:
                handler = _METHODS.get(method)
                if handler is None:
                    reply = (200, {"ok": False, "error": "unknown_method"}, {})
                else:
                    try:
                        reply = (200, {"ok": True, **handler(self, params)}, {})
                    except SlackError as e:
                        reply = (200, {"ok": False, "error": e.code}, {})
            entry.status = reply[0]
            entry.error = reply[1].get("error")
            return reply

    def _new_channel(self, name: str) -> _Channel:
        channel = _Channel(id=f"C{next(self._ids):08d}", name=name, created=self._base)
        self.channels[channel.id] = channel
        return channel

    def _resolve(self, raw: Any) -> str:
        ref = str(raw or "")
        if ref in self.channels:
            return ref
        if ref in self.users:  # a user id as channel: the app's DM with that user
            dm = f"D{ref[1:]}"
            if dm not in self.channels:
                self.channels[dm] = _Channel(id=dm, name=f"dm-{ref}", created=self._base, members={BOT_USER, ref},
                                             is_im=True)  # fmt: skip
            return dm
        found = next((c.id for c in self.channels.values() if c.name == ref.lstrip("#")), None)
        if found is None:
            raise SlackError("channel_not_found")
        return found

    def _channel(self, params: dict[str, Any]) -> _Channel:
        return self.channels[self._resolve(params.get("channel"))]

    def _ts(self) -> str:
        return f"{self._base}.{next(self._clock):06d}"


def _create(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    name = str(p.get("name", ""))
    if not _CHANNEL_NAME.match(name):
        raise SlackError("invalid_name_specials")
    if any(c.name == name for c in ws.channels.values()):
        raise SlackError("name_taken")
    return {"channel": ws._new_channel(name).public()}


def _info(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    return {"channel": ws._channel(p).public()}


def _list(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    limit = max(1, min(int(p.get("limit") or 100), 1000))
    start = int(p.get("cursor") or 0)
    every = [c for c in ws.channels.values() if not c.is_im]
    page = every[start : start + limit]
    cursor = str(start + limit) if start + limit < len(every) else ""
    return {"channels": [c.public() for c in page], "response_metadata": {"next_cursor": cursor}}


def _invite(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    channel = ws._channel(p)
    if BOT_USER not in channel.members:
        raise SlackError("not_in_channel")
    users = [u for u in str(p.get("users", "")).split(",") if u]
    if not users:
        raise SlackError("no_user")
    for user in users:
        if user not in ws.users:
            raise SlackError("user_not_found")
    if all(u in channel.members for u in users):
        raise SlackError("already_in_channel")
    channel.members.update(users)
    return {"channel": channel.public()}


def _join(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    channel = ws._channel(p)
    channel.members.add(BOT_USER)
    return {"channel": channel.public()}


def _set_topic(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    channel = ws._channel(p)
    if BOT_USER not in channel.members:
        raise SlackError("not_in_channel")
    channel.topic = str(p.get("topic", ""))[:250]
    return {"channel": channel.public()}


def _set_purpose(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    channel = ws._channel(p)
    if BOT_USER not in channel.members:
        raise SlackError("not_in_channel")
    channel.purpose = str(p.get("purpose", ""))[:250]
    return {"channel": channel.public()}


def _lookup(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    email = str(p.get("email", "")).lower()
    for uid, user in ws.users.items():
        if user["email"].lower() == email:
            return {"user": {"id": uid, "name": user["name"], "profile": {"email": user["email"]}}}
    raise SlackError("users_not_found")


def _blocks(p: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = p.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if not isinstance(blocks, list) or len(blocks) > 50:
        raise SlackError("invalid_blocks")
    return blocks


def _post(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    channel = ws._channel(p)
    if BOT_USER not in channel.members:
        raise SlackError("not_in_channel")
    text, blocks = str(p.get("text") or ""), _blocks(p)
    if not text and not blocks:
        raise SlackError("no_text")
    if len(text) > 40_000:
        raise SlackError("msg_too_long")
    thread = p.get("thread_ts") or None
    if thread is not None and not any(m.ts == thread and m.channel == channel.id for m in ws.messages):
        raise SlackError("thread_not_found")
    message = Message(channel.id, ws._ts(), text, blocks, thread)
    ws.messages.append(message)
    return {"channel": channel.id, "ts": message.ts, "message": {"text": text, "ts": message.ts, "user": BOT_USER}}


def _update(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    cid = ws._resolve(p.get("channel"))
    found = next((m for m in ws.messages if m.channel == cid and m.ts == p.get("ts")), None)
    if found is None:
        raise SlackError("message_not_found")
    found.text = str(p.get("text") or found.text)
    found.blocks = _blocks(p) or found.blocks
    found.edits += 1
    return {"channel": cid, "ts": found.ts, "text": found.text}


def _ephemeral(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    cid = ws._resolve(p.get("channel"))
    if p.get("user") not in ws.users:
        raise SlackError("user_not_in_channel")
    ws.ephemeral.append({"channel": cid, "user": p.get("user"), "text": p.get("text", "")})
    return {"message_ts": ws._ts()}


def _group_users(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    group = ws.usergroups.get(str(p.get("usergroup")))
    if group is None:
        raise SlackError("no_such_subteam")
    return {"users": list(group["users"])}


def _views_open(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    if not p.get("trigger_id"):
        raise SlackError("invalid_trigger_id")
    view = p.get("view")
    view = json.loads(view) if isinstance(view, str) else view
    ws.views.append({"trigger_id": p["trigger_id"], "view": view})
    return {"view": {"id": f"V{next(ws._ids):08d}", **(view or {})}}


_METHODS: dict[str, Callable[[SlackWorkspace, dict[str, Any]], dict[str, Any]]] = {
    "conversations.create": _create,
    "conversations.info": _info,
    "conversations.list": _list,
    "conversations.invite": _invite,
    "conversations.join": _join,
    "conversations.setTopic": _set_topic,
    "conversations.setPurpose": _set_purpose,
    "users.lookupByEmail": _lookup,
    "chat.postMessage": _post,
    "chat.update": _update,
    "chat.postEphemeral": _ephemeral,
    "usergroups.users.list": _group_users,
    "views.open": _views_open,
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and the demo read the record
        return

    def _params(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        query = self.path.partition("?")[2]
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query).items()}
        if "json" in (self.headers.get("Content-Type") or ""):
            params.update(json.loads(body or "{}"))
        else:
            params.update({k: v[-1] for k, v in parse_qs(body).items()})
        return params

    def _answer(self) -> None:
        method = self.path.split("?")[0].removeprefix("/api/").strip("/")
        try:
            params = self._params()
        except (ValueError, UnicodeDecodeError):
            status, body, headers = 200, {"ok": False, "error": "invalid_json"}, dict[str, str]()
        else:
            status, body, headers = self.server.workspace.handle(method, params, self.headers.get("Authorization"))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer
    do_POST = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    workspace: SlackWorkspace


class SlackLoopback:
    """The loopback server: ``start()``, ``base_url``, ``workspace``, ``stop()`` (also a context manager)."""

    def __init__(self, workspace: SlackWorkspace | None = None) -> None:
        self.workspace = workspace or SlackWorkspace()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Slack loopback is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def use(self, workspace: SlackWorkspace) -> SlackWorkspace:
        """Serve a fresh workspace from now on (tests reset state without restarting the server)."""
        self.workspace = workspace
        if self._server is not None:
            self._server.workspace = workspace
        return workspace

    def start(self) -> SlackLoopback:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.workspace = self.workspace
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="slack-loopback", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SlackLoopback:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
