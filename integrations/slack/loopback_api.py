"""The Slack Web API methods of the loopback, with Slack's documented answers and error codes.

Each method takes the workspace and the request's parameters and returns the answer's fields
(``ok: true`` is added by the caller) or raises :class:`SlackError` with Slack's error code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from integrations.slack.loopback_workspace import (
    BOT_USER,
    CHANNEL_NAME,
    Message,
    Reply,
    Request,
    SlackError,
    SlackWorkspace,
)


def _create(ws: SlackWorkspace, p: dict[str, Any]) -> dict[str, Any]:
    name = str(p.get("name", ""))
    if not CHANNEL_NAME.match(name):
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


METHODS: dict[str, Callable[[SlackWorkspace, dict[str, Any]], dict[str, Any]]] = {
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


def handle(ws: SlackWorkspace, method: str, params: dict[str, Any], auth: str | None) -> Reply:
    """Answer one Web API call: an injected fault, an auth error, or the method's answer; record it."""
    with ws.lock:
        entry = Request(method, params, time.monotonic())
        ws.requests.append(entry)
        reply = ws.take_fault(method)
        if reply is None and auth != f"Bearer {ws.token}":
            reply = (200, {"ok": False, "error": "not_authed" if not auth else "invalid_auth"}, {})
        if reply is None:
            handler = METHODS.get(method)
            try:
                if handler is None:
                    raise SlackError("unknown_method")
                reply = (200, {"ok": True, **handler(ws, params)}, {})
            except SlackError as e:
                reply = (200, {"ok": False, "error": e.code}, {})
        entry.status = reply[0]
        entry.error = reply[1].get("error")
        return reply
