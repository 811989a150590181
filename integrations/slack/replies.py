"""The Slack calls behind ``POST /slack/interactions``: who clicked, the reject modal, ephemeral replies.

Loaded by name from :mod:`flows.people.interactions`. A reply that cannot be delivered is dropped
silently: the answer itself is already recorded (or refused) in the run, which is the truth.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from flows.config import Settings
from integrations.slack.client import SlackCallError, connection

REJECT_CALLBACK = "fireline.reject"
REASON_BLOCK, REASON_INPUT = "reason", "reason_input"


def person_for(settings: Settings, directory: Any, slack_user_id: str) -> str | None:
    """The directory's person for a Slack user: by ``slack_user_id``, else by e-mail lookup (cached)."""
    found = directory.resolve(slack_user_id)
    if found is not None:
        return str(found.id)
    conn = connection(settings)
    for person in list(directory.people.values()):
        if person.slack_user_id or not person.email:
            continue
        if conn.user_id_for(person.email) == slack_user_id:
            directory.remember_slack_id(person.id, slack_user_id)
            return str(person.id)
    return None


def reject_modal(run: str, step: str | None, channel: str | None) -> dict[str, Any]:
    """The modal that asks for a rejection's reason (Block Kit ``input`` with a multiline text field)."""
    return {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "private_metadata": json.dumps({"run": run, "step": step, "channel": channel}),
        "title": {"type": "plain_text", "text": "Reject"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": f"Why reject {step} of run {run}?"},
                "element": {"type": "plain_text_input", "action_id": REASON_INPUT, "multiline": True},
            }
        ],
    }


def open_reject_modal(
    settings: Settings, trigger_id: str | None, run: str, step: str | None, channel: str | None
) -> None:
    """Open the reason modal for the user who pressed Reject (``views.open``)."""
    if not trigger_id:
        raise SlackCallError("views.open", "invalid_trigger_id")
    connection(settings).call("views.open", trigger_id=trigger_id, view=reject_modal(run, step, channel))


def tell(settings: Settings, channel: str, user: str, text: str) -> None:
    """An ephemeral message only ``user`` sees in ``channel`` (``chat.postEphemeral``)."""
    with contextlib.suppress(SlackCallError):
        connection(settings).call("chat.postEphemeral", channel=channel, user=user, text=text, paced=False)
