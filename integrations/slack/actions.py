"""Slack actions: ``slack.open_incident_channel`` and ``slack.post`` (kind notify).

``slack.open_incident_channel`` creates a public channel for the incident, marks it as this
incident's in its purpose (``fireline incident <id>``), invites the responders and sets the topic.
It is idempotent: a re-run or a resume finds the channel by that marker. On ``name_taken``
(Slack API reference, ``conversations.create``) the existing channel is reused when its purpose
carries this incident's marker, else the name gets a suffix (``-2``, ``-3``, ...). The channel is
recorded in ``<run dir>/slack.json`` for pages to the incident channel and for the run's timeline.

Neither action sends anything in dry-run or drill: the engine calls only ``plan()``, which has no
side effects and reports the messages as ``would_send``. Where no Slack token is configured, both
are skipped before planning with reason ``not_configured``, in every mode alike, so a shipped
playbook runs unchanged on an installation without Slack and its record says what was left out.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Target, action
from flows.errors import ActionError
from integrations.slack.blocks import clip, mark
from integrations.slack.client import SlackCallError, SlackConnection, configured, connection
from integrations.slack.state import read_state, record_post, update_state

MAX_SUFFIX = 20
_NOT_NAME = re.compile(r"[^a-z0-9_-]+")


def marker(incident_id: str) -> str:
    """The purpose text that says a channel belongs to an incident."""
    return f"fireline incident {incident_id}"


def channel_name(raw: str) -> str:
    """A valid Slack channel name: lower case, ``[a-z0-9_-]``, at most 80 characters (suffix room kept)."""
    name = _NOT_NAME.sub("-", raw.lower().lstrip("#")).strip("-")
    return name[:72] or "incident"


class OpenChannelParams(ActionParams):
    name: str | None = Field(default=None, max_length=80, description="Channel name; default inc-<incident id>.")
    topic: str | None = Field(default=None, max_length=250, description="Default: severity, title and run id.")
    invite: list[str] = Field(
        default_factory=list,
        description="Responders: person:ID or group:NAME from the people directory, Slack user ids (U...), e-mails.",
    )


class OpenChannelResult(ActionResult):
    channel_id: str
    name: str
    reused: bool = False
    invited: list[str] = Field(default_factory=list)
    unknown: list[str] = Field(default_factory=list, description="Responders with no Slack account.")


def _wanted_name(params: OpenChannelParams, ctx: ActionContext) -> str:
    return channel_name(params.name or f"inc-{ctx.incident.id}")


def _topic(params: OpenChannelParams, ctx: ActionContext) -> str:
    if params.topic:
        return params.topic
    title = ctx.incident.title or ctx.playbook
    return clip(f"{mark(ctx.mode)}[{ctx.incident.severity.upper()}] {title} · run {ctx.run_id}", 250)


def _find(conn: SlackConnection, name: str) -> dict[str, Any] | None:
    """The channel called ``name`` (``conversations.list``, paginated), or None."""
    cursor = ""
    while True:
        page = conn.call("conversations.list", types="public_channel,private_channel", limit=200, cursor=cursor)
        for channel in page.get("channels", []):
            if channel.get("name") == name:
                return dict(channel)
        cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            return None


def _create_or_reuse(conn: SlackConnection, base: str, incident_id: str) -> tuple[dict[str, Any], bool]:
    """Create ``base`` (or ``base-N``); reuse the first one whose purpose marks it as this incident's."""
    for n in range(1, MAX_SUFFIX + 1):
        name = base if n == 1 else f"{base}-{n}"
        try:
            created = conn.call("conversations.create", name=name)["channel"]
        except SlackCallError as e:
            if e.slack_code != "name_taken":
                raise
            existing = _find(conn, name)
            purpose = str(((existing or {}).get("purpose") or {}).get("value", ""))
            if existing is not None and purpose == marker(incident_id):
                if not existing.get("is_member"):
                    conn.call("conversations.join", channel=existing["id"], paced=False)
                return existing, True
            continue
        conn.call("conversations.setPurpose", channel=created["id"], purpose=marker(incident_id), paced=False)
        return dict(created), False
    raise ActionError(f"slack: {base} and {MAX_SUFFIX - 1} suffixed names are all taken by other channels")


def _responders(invite: list[str], ctx: ActionContext) -> list[str]:
    """``person:`` and ``group:`` entries expanded through the run's directory snapshot (Slack id, else e-mail)."""
    if not any(w.startswith(("person:", "group:")) for w in invite):
        return invite
    from flows.people.snapshot import run_directory

    directory = run_directory(ctx.record.dir, ctx.settings)
    out: list[str] = []
    for who in invite:
        kind, _, name = who.partition(":")
        ids = sorted(directory.members(name)) if kind == "group" else [name] if kind == "person" else []
        if kind not in ("person", "group"):
            out.append(who)
            continue
        for pid in ids:
            person = directory.people.get(pid)
            if person is None:
                raise ActionError(f"slack.open_incident_channel: {who} is not in the directory {directory.name!r}")
            out.append(person.slack_user_id or person.email or f"person:{pid}")
    return list(dict.fromkeys(out))


def _user_ids(conn: SlackConnection, invite: list[str]) -> tuple[list[str], list[str]]:
    found: list[str] = []
    unknown: list[str] = []
    for who in invite:
        if "@" in who:
            uid = conn.user_id_for(who)
            (found if uid else unknown).append(uid or who)
        elif who.startswith("person:"):  # in the directory, with neither a Slack id nor an e-mail
            unknown.append(who)
        else:
            found.append(who)
    return found, unknown


NOT_CONFIGURED = "Slack is not configured ([slack] token in fireline.toml, or FIRELINE_SLACK_TOKEN)"


def _unavailable(ctx: ActionContext) -> str | None:
    """Without a token nothing can reach Slack: the step is skipped (``not_configured``), in every mode."""
    return None if configured(ctx.settings) else NOT_CONFIGURED


@action("slack.open_incident_channel", kind=ActionKind.NOTIFY, params=OpenChannelParams, result=OpenChannelResult)
class OpenIncidentChannel(Action[OpenChannelParams, OpenChannelResult]):
    """Open (or find again) the incident's Slack channel, invite the responders and set the topic."""

    def unavailable(self, ctx: ActionContext) -> str | None:
        return _unavailable(ctx)

    def plan(self, params: OpenChannelParams, ctx: ActionContext) -> Plan:
        name = _wanted_name(params, ctx)
        changes = [f"would_send: create #{name} (or reuse it if it is marked {marker(ctx.incident.id)!r})"]
        if params.invite:
            changes.append(f"would_send: invite {', '.join(params.invite)}")
        changes.append(f"would_send: set the topic to {_topic(params, ctx)!r}")
        return Plan(
            action=self.name,
            summary=f"open Slack channel #{name}",
            targets=[Target(type="slack:channel", id=name)],
            changes=changes,
            mutating=False,
        )

    def apply(self, params: OpenChannelParams, ctx: ActionContext) -> OpenChannelResult:
        responders = _responders(params.invite, ctx)  # an unknown person fails before anything is created
        conn = connection(ctx.settings)
        known = read_state(ctx.record.dir).get("incident_channel")
        if known:
            channel, reused = conn.call("conversations.info", channel=known["id"])["channel"], True
        else:
            channel, reused = _create_or_reuse(conn, _wanted_name(params, ctx), ctx.incident.id)
        cid = str(channel["id"])
        update_state(ctx.record.dir, incident_channel={"id": cid, "name": channel["name"]})
        ctx.emit("slack.channel_opened", {"channel": cid, "name": channel["name"], "reused": reused})
        users, unknown = _user_ids(conn, responders)
        if users:
            try:
                conn.call("conversations.invite", channel=cid, users=",".join(users), paced=False)
            except SlackCallError as e:
                if e.slack_code != "already_in_channel":  # a re-run: they are in already
                    raise
        topic = _topic(params, ctx)
        if str((channel.get("topic") or {}).get("value", "")) != topic:
            conn.call("conversations.setTopic", channel=cid, topic=topic, paced=False)
        return OpenChannelResult(
            summary=f"#{channel['name']} ({cid}){' reused' if reused else ''}, {len(users)} invited",
            changed=not reused,
            channel_id=cid,
            name=str(channel["name"]),
            reused=reused,
            invited=users,
            unknown=unknown,
        )


class PostParams(ActionParams):
    channel: str = Field(min_length=1, description="A channel id, #name, or 'incident' for the incident channel.")
    text: str = Field(min_length=1, max_length=40_000)
    thread: bool = Field(default=False, description="Post in the run's timeline thread instead of the channel.")


class PostResult(ActionResult):
    channel: str
    ts: str


def _target_channel(channel: str, ctx: ActionContext) -> str:
    if channel != "incident":
        return channel
    known = read_state(ctx.record.dir).get("incident_channel")
    if not known:
        raise ActionError("slack.post to 'incident': this run opened no incident channel (slack.open_incident_channel)")
    return str(known["id"])


@action("slack.post", kind=ActionKind.NOTIFY, params=PostParams, result=PostResult)
class Post(Action[PostParams, PostResult]):
    """Post a message to a Slack channel (once per run, step and item, even across a resume)."""

    def unavailable(self, ctx: ActionContext) -> str | None:
        return _unavailable(ctx)

    def plan(self, params: PostParams, ctx: ActionContext) -> Plan:
        return Plan(
            action=self.name,
            summary=f"post to {params.channel}",
            targets=[Target(type="slack:channel", id=params.channel)],
            changes=[f"would_send: {clip(mark(ctx.mode) + params.text, 200)}"],
            mutating=False,
        )

    def apply(self, params: PostParams, ctx: ActionContext) -> PostResult:
        state = read_state(ctx.record.dir)
        sent = (state.get("posts") or {}).get(ctx.idempotency_key)
        if sent:  # posted before a crash, recorded, but the step result was not: never post twice
            return PostResult(
                changed=False, summary=f"already posted ({sent['ts']})", channel=sent["channel"], ts=sent["ts"]
            )
        conn = connection(ctx.settings)
        channel = _target_channel(params.channel, ctx)
        extra: dict[str, Any] = {}
        root = state.get("root")
        if params.thread and root:
            channel, extra = root["channel"], {"thread_ts": root["ts"]}
        try:
            answer = conn.call("chat.postMessage", channel=channel, text=params.text, **extra)
        except SlackCallError as e:
            if e.slack_code != "not_in_channel":
                raise
            conn.call("conversations.join", channel=channel, paced=False)
            answer = conn.call("chat.postMessage", channel=channel, text=params.text, **extra)
        posted = {"channel": str(answer["channel"]), "ts": str(answer["ts"])}
        record_post(ctx.record.dir, ctx.idempotency_key, posted)
        return PostResult(summary=f"posted to {channel} ({posted['ts']})", channel=posted["channel"], ts=posted["ts"])
