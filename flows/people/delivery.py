"""Sending one page to its recipients in the run's mode, and recording what happened.

Live: each recipient goes to the notifier of its kind; a person goes to the ``person`` notifier
(Slack) when one is loaded, else by e-mail. Dry-run: nothing is sent, each recipient is recorded as
``would_send``. Drill: only ``drill_ok`` people are paged (the tree filters the rest out), through
the chat notifier, which posts drill pages only to the drill channel, marked ``[DRILL]``; webhooks
and e-mail are never used in a drill. Every delivery is an event: ``page.sent`` or
``page.delivery_failed``.
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
        if kind == "person" and "person" not in self.notifiers:
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
        """Dry-run: nothing is sent. Drill with a drill channel: chat notifiers get the page (they post it
        only to the drill channel, marked [DRILL]); anything else is recorded as ``would_send``."""
        out: list[Delivery] = []
        for r in recipients:
            chat = self.mode == "drill" and self.drill_channel and r.kind not in ("webhook", "email")
            notifier = self.notifiers.get(r.kind) if chat else None
            try:
                delivery = notifier.send(r, message) if notifier is not None else Delivery(True, r, "would_send")
            except Exception as e:  # a notifier bug is a failed delivery, recorded
                delivery = Delivery(False, r, "drill", error=f"{type(e).__name__}: {e}")
            info = {"level": message.level, "recipient": r.public(), "channel": delivery.channel, "ref": delivery.ref,
                    "would_send": delivery.channel == "would_send", **detail}  # fmt: skip
            if not delivery.ok:
                info["error"] = delivery.error
            self.emit("page.sent" if delivery.ok else "page.delivery_failed", info)
            out.append(delivery)
        return out


def drill_channel(settings: Any) -> str | None:
    """The drill channel: ``[slack] drill_channel``, else ``[people] drill_channel``."""
    from flows.people.settings import people_settings

    slack = getattr(settings, "slack", None)
    found = getattr(slack, "drill_channel", None) or people_settings(settings).drill_channel
    return str(found) if found else None
