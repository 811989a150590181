"""Pages through Slack: a DM to a person, a message in a channel, a user group mentioned in the incident channel.

Loaded by name through ``flows.people.notify.NOTIFIER_MODULES``; :func:`notifiers` returns one
:class:`SlackNotifier` for the recipient kinds ``person``, ``slack_channel`` and ``slack_usergroup``.

- ``person``: a direct message from the app. ``chat.postMessage`` with the user id as ``channel``
  opens the app's DM with that user (Slack API reference, ``chat.postMessage``, "Channels: post to
  a DM by passing a user ID"). A person without ``slack_user_id`` is looked up by e-mail
  (``users.lookupByEmail``) once per process.
- ``slack_channel``: the channel itself; the id ``incident`` is the run's incident channel (from
  ``<run dir>/slack.json``, written by ``slack.open_incident_channel``), else ``[slack] channel``.
- ``slack_usergroup``: ``<!subteam^ID>`` mentioned in the incident channel (else ``[slack] channel``),
  which notifies every member of the group.

Messages are Block Kit with the buttons the page asks for (Ack; Approve and Reject with the step's
plan for approvals). ``@here`` in a page's text becomes Slack's ``<!here>`` mention. Dry-run pages
are never sent (``would_send``); drill pages go only to the drill channel, marked ``[DRILL]``,
naming who would have been paged. A failed delivery is a :class:`Delivery` with ``ok=False``, never
an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.config import Settings
from flows.errors import FirelineError
from flows.people.notify import INCIDENT_CHANNEL, Delivery, PageMessage, Recipient
from integrations.slack.blocks import page_blocks
from integrations.slack.client import configured, connection
from integrations.slack.state import read_state
from integrations.slack.timeline import drill_channel


def _incident_channel(settings: Settings, run_id: str) -> str | None:
    found = read_state(Path(settings.runs_dir) / run_id).get("incident_channel")
    return str(found["id"]) if found else None


@dataclass
class SlackNotifier:
    """Sends pages to Slack users, channels and user groups (see the module docstring)."""

    settings: Settings
    kinds: frozenset[str] = field(default=frozenset({"person", "slack_channel", "slack_usergroup"}))

    def send(self, recipient: Recipient, message: PageMessage) -> Delivery:
        if message.mode == "dry-run":
            return Delivery(True, recipient, "would_send")
        if not configured(self.settings):
            return Delivery(False, recipient, "slack", error="slack.token is not set: no Slack page can be sent")
        try:
            if message.mode != "live":
                return self._drill(recipient, message)
            channel, mention = self._where(recipient, message)
            return Delivery(True, recipient, "slack", ref=self._post(channel, message, mention))
        except FirelineError as e:
            return Delivery(False, recipient, "slack", error=f"slack {recipient.kind}:{recipient.id}: {e}")

    def _where(self, recipient: Recipient, message: PageMessage) -> tuple[str, str | None]:
        """The channel to post to, and a mention to put first."""
        if recipient.kind == "person":
            uid = recipient.slack_user_id
            if not uid and recipient.email:
                uid = connection(self.settings).user_id_for(recipient.email)
            if not uid:
                raise FirelineError(f"no Slack account for {recipient.email or recipient.id} (users.lookupByEmail)")
            return uid, None
        if recipient.kind == "slack_channel":
            if recipient.id != INCIDENT_CHANNEL:
                return recipient.address or recipient.id, None
            found = _incident_channel(self.settings, message.run_id) or self.settings.slack.channel
            if found is None:
                raise FirelineError("the run opened no incident channel and no [slack] channel is set")
            return found, None
        target = _incident_channel(self.settings, message.run_id) or self.settings.slack.channel
        if target is None:
            raise FirelineError("no incident channel and no [slack] channel to mention the user group in")
        return target, f"<!subteam^{recipient.address or recipient.id}>"

    def _post(self, channel: str, message: PageMessage, mention: str | None, *, extra: str = "") -> str:
        text, blocks = page_blocks(
            text=message.text.replace("@here", "<!here>") + extra, mode=message.mode, severity=message.severity,
            run_id=message.run_id, incident_id=message.incident_id, step=message.step,
            kinds=tuple(message.buttons), plan_summary=message.plan_summary, mention=mention,
        )  # fmt: skip
        answer: dict[str, Any] = connection(self.settings).call(
            "chat.postMessage", channel=channel, text=text, blocks=blocks
        )
        return str(answer["ts"])

    def _drill(self, recipient: Recipient, message: PageMessage) -> Delivery:
        channel = drill_channel(self.settings)
        if not channel:
            return Delivery(True, recipient, "would_send")
        who = f" (would page {recipient.kind} {recipient.display or recipient.id})"
        return Delivery(True, recipient, "drill", ref=self._post(channel, message, None, extra=who))


def notifiers(settings: Any) -> list[SlackNotifier]:
    """The Slack notifier (``NOTIFIER_MODULES`` entry point)."""
    return [SlackNotifier(settings)]
