"""Sending one page to its recipients in the run's mode, and recording what happened.

Live: each recipient goes to the notifier of its kind; a person goes to the ``person`` notifier
(Slack) when one is loaded and the person has a Slack id, else by e-mail. Dry-run: nothing is
sent, each recipient is recorded as ``would_send``. Drill: the same, unless a drill channel is
configured, in which case one ``[DRILL]`` message goes to that channel naming the ``drill_ok``
people it is meant for. Every delivery is an event: ``page.sent`` or ``page.delivery_failed``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from flows.people.notify import Delivery, Notifier, PageMessage, Recipient

Emit = Callable[[str, dict[str, Any]], None]
SecretResolver = Callable[[str], str]


@dataclass
class Sender:
    """Sends pages of one run; ``notifiers`` by recipient kind (see :func:`load_notifiers`)."""

    notifiers: dict[str, Notifier]
    mode: str
    emit: Emit
    secret: SecretResolver
    drill_channel: str | None = None

    def send_all(self, recipients: tuple[Recipient, ...] | list[Recipient], message: PageMessage,
                 **detail: Any) -> list[Delivery]:  # fmt: skip
        """Deliver ``message`` to every recipient; record each outcome; never raise for one failure."""
        if self.mode != "live":
            return self._not_live(list(recipients), message, detail)
        out: list[Delivery] = []
        for recipient in recipients:
            delivery = self._send(recipient, message)
            event = "page.sent" if delivery.ok else "page.delivery_failed"
            info = {"level": message.level, "recipient": recipient.public(), "channel": delivery.channel,
                    "ref": delivery.ref, **detail}  # fmt: skip
            if not delivery.ok:
                info["error"] = delivery.error
            self.emit(event, info)
            out.append(delivery)
        return out

    def _send(self, recipient: Recipient, message: PageMessage) -> Delivery:
        kind: str = recipient.kind
        if kind == "person" and ("person" not in self.notifiers or not recipient.slack_user_id):
            kind = "email"  # no chat notifier or no Slack id: e-mail is the way left
        if kind == "webhook" and recipient.address is None:
            try:
                recipient = replace(recipient, address=self.secret(f"secret:{recipient.id}"))
            except Exception as e:  # a missing secret is a failed delivery, recorded, not a crash
                return Delivery(False, recipient, "webhook", error=f"webhook {recipient.id}: {e}")
        notifier = self.notifiers.get(kind)
        if notifier is None:
            return Delivery(False, recipient, kind, error=f"no notifier for {kind} recipients is configured")
        try:
            return notifier.send(recipient, message)
        except Exception as e:  # a notifier bug must not silence the page: record it as a failed delivery
            return Delivery(False, recipient, kind, error=f"{type(e).__name__}: {e}")

    def _not_live(self, recipients: list[Recipient], message: PageMessage, detail: dict[str, Any]) -> list[Delivery]:
        out = [Delivery(True, r, "would_send") for r in recipients]
        for r in recipients:
            self.emit("page.sent", {"level": message.level, "recipient": r.public(), "channel": "would_send",
                                    "would_send": True, **detail})  # fmt: skip
        channel = self.notifiers.get("slack_channel")
        if self.mode == "drill" and self.drill_channel and channel is not None and recipients:
            names = ", ".join(r.display or r.id for r in recipients)
            target = Recipient("slack_channel", self.drill_channel, "drill channel", address=self.drill_channel)
            text = f"{message.text} (for: {names})"
            delivery = channel.send(target, replace(message, text=text, mode="drill"))
            event = "page.sent" if delivery.ok else "page.delivery_failed"
            self.emit(event, {"level": message.level, "recipient": target.public(), "channel": "drill",
                              "ref": delivery.ref, "error": delivery.error, **detail})  # fmt: skip
            out.append(delivery)
        return out
