"""How pages reach people: recipients, messages, deliveries and the notifiers that send them.

A :class:`Notifier` sends one :class:`PageMessage` to one :class:`Recipient` and says how it went
(:class:`Delivery`); it never raises for a failed delivery. Notifiers are found by recipient kind:

- ``webhook`` and ``email`` are built in (:class:`WebhookNotifier`, :class:`EmailNotifier`);
- others come from the modules named in :data:`NOTIFIER_MODULES`, each exposing
  ``notifiers(settings) -> list[Notifier]`` and imported by name (``flows`` never imports
  ``integrations`` statically), e.g. ``integrations.slack.notifier`` for ``person`` (Slack DM),
  ``slack_channel`` and ``slack_usergroup``.

The run's incident channel is the recipient ``Recipient(kind="slack_channel", id=INCIDENT_CHANNEL)``:
the Slack notifier maps it to the channel it opened for ``message.incident_id``.

In dry-run and drill nothing is sent by the caller (:mod:`flows.people.page`): the page is recorded
as ``would_send``; with a drill channel configured, drill messages go there instead, marked
``[DRILL]``, and only to ``drill_ok`` people.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

RecipientKind = Literal["person", "group", "slack_channel", "slack_usergroup", "email", "webhook"]
Button = Literal["ack", "approve", "reject"]
PageMode = Literal["live", "dry-run", "drill"]

INCIDENT_CHANNEL = "incident"
"""Recipient id of the run's incident channel (kind ``slack_channel``)."""

NOTIFIER_MODULES: list[str] = ["integrations.slack.notifier"]
"""Modules that provide notifiers: each has ``notifiers(settings) -> list[Notifier]``."""


@dataclass(frozen=True)
class Recipient:
    """One addressee of a page, resolved from a contact tree target.

    Attributes:
        kind: ``person`` (reached by Slack DM, else e-mail), ``group`` (only before expansion),
            ``slack_channel``, ``slack_usergroup``, ``email``, ``webhook``.
        id: canonical id: a person id, a group name, a Slack channel or user group id, an e-mail
            address, or the webhook's secret name.
        display: a human name for logs and messages.
        slack_user_id: the person's Slack user id when known (directory or lookup cache).
        email: the person's (or the target's) e-mail address.
        address: a resolved webhook URL or channel id; secrets are already resolved here, so a
            Recipient is never written to the run record as is (use :meth:`public`).
    """

    kind: RecipientKind
    id: str
    display: str = ""
    slack_user_id: str | None = None
    email: str | None = None
    address: str | None = None

    def public(self) -> dict[str, str | None]:
        """The recipient for the run record: never the resolved address of a webhook."""
        return {"kind": self.kind, "id": self.id, "display": self.display or self.id}


@dataclass(frozen=True)
class PageMessage:
    """What a page says.

    Attributes:
        run_id, incident_id, step: where the page comes from.
        level: the contact tree level (0-based) that is paged; -1 for fallback targets.
        text: the message (already rendered).
        severity: the incident's severity (info|low|medium|high|critical).
        mode: ``live``, ``dry-run`` or ``drill`` (drill messages are marked ``[DRILL]``).
        ack_url_or_token: how to acknowledge (``fireline ack RUN --as PERSON`` for the CLI); None
            when no ack is asked.
        buttons: which interactive buttons a chat message carries.
        plan_summary: for approvals, the step's plan: targets, changes and guard findings.
    """

    run_id: str
    incident_id: str
    step: str
    level: int
    text: str
    severity: str = "medium"
    mode: PageMode = "live"
    ack_url_or_token: str | None = None
    buttons: tuple[Button, ...] = ("ack",)
    plan_summary: str | None = None


@dataclass(frozen=True)
class Delivery:
    """How sending one message to one recipient went.

    Attributes:
        ok: the provider accepted the message (HTTP 2xx, SMTP accepted, Slack ``ok: true``).
        recipient: who it was for.
        channel: how it went: ``webhook``, ``email``, ``slack``, ``would_send``, ``drill``.
        ref: a provider reference (Slack message ``ts``, an HTTP status, an SMTP queue id).
        error: why it failed, one line, when ``ok`` is False.
    """

    ok: bool
    recipient: Recipient
    channel: str
    ref: str | None = None
    error: str | None = None


class Notifier(Protocol):
    """Sends pages to recipients of the kinds it declares."""

    kinds: frozenset[str]

    def send(self, recipient: Recipient, message: PageMessage) -> Delivery: ...


def message_text(message: PageMessage) -> str:
    """The plain-text body of a page, marked for drills and dry-runs."""
    mark = {"drill": "[DRILL] ", "dry-run": "[DRY-RUN] "}.get(message.mode, "")
    lines = [
        f"{mark}[{message.severity.upper()}] {message.text}",
        f"incident {message.incident_id}, run {message.run_id}",
    ]
    if message.plan_summary:
        lines.append(message.plan_summary)
    if message.ack_url_or_token:
        lines.append(f"acknowledge: {message.ack_url_or_token}")
    return "\n".join(lines)


def message_json(message: PageMessage) -> dict[str, Any]:
    """The page as the JSON body a webhook receives."""
    return {
        "run_id": message.run_id,
        "incident_id": message.incident_id,
        "step": message.step,
        "level": message.level,
        "text": message.text,
        "severity": message.severity,
        "mode": message.mode,
        "ack": message.ack_url_or_token,
        "buttons": list(message.buttons),
        "plan_summary": message.plan_summary,
        "body": message_text(message),
    }


@dataclass
class WebhookNotifier:
    """POSTs the page as JSON to the recipient's resolved URL (``address``); 2xx is delivered."""

    timeout: float = 10.0
    kinds: frozenset[str] = field(default=frozenset({"webhook"}))

    def send(self, recipient: Recipient, message: PageMessage) -> Delivery:
        import httpx

        if not recipient.address:
            return Delivery(False, recipient, "webhook", error=f"webhook {recipient.id}: no URL resolved")
        try:
            response = httpx.post(recipient.address, json=message_json(message), timeout=self.timeout)
        except httpx.HTTPError as e:
            return Delivery(False, recipient, "webhook", error=f"webhook {recipient.id}: {type(e).__name__}: {e}")
        if response.is_success:
            return Delivery(True, recipient, "webhook", ref=str(response.status_code))
        return Delivery(False, recipient, "webhook", ref=str(response.status_code),
                        error=f"webhook {recipient.id}: HTTP {response.status_code}")  # fmt: skip


@dataclass
class EmailNotifier:
    """Sends the page as a plain-text e-mail through the configured SMTP relay.

    Without ``host`` every e-mail page fails with a reason (a ``page.delivery_failed`` event): an
    unconfigured relay must never look like a delivered page.
    """

    host: str | None = None
    port: int = 25
    sender: str = "fireline@localhost"
    timeout: float = 10.0
    kinds: frozenset[str] = field(default=frozenset({"email"}))

    def send(self, recipient: Recipient, message: PageMessage) -> Delivery:
        if not self.host:
            return Delivery(False, recipient, "email", error="no SMTP relay configured ([people] smtp_host)")
        if not recipient.email:
            return Delivery(False, recipient, "email", error=f"{recipient.id}: no e-mail address")
        import smtplib  # lazily: smtplib pulls in ssl, which `fireline validate` never needs
        from email.message import EmailMessage

        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = recipient.email
        mark = "[DRILL] " if message.mode == "drill" else ""
        mail["Subject"] = f"{mark}[{message.severity}] {message.text[:120]}"
        mail.set_content(message_text(message))
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                refused = smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as e:
            return Delivery(False, recipient, "email", error=f"SMTP {self.host}:{self.port}: {type(e).__name__}: {e}")
        if refused:
            return Delivery(False, recipient, "email", error=f"SMTP refused {sorted(refused)}")
        return Delivery(True, recipient, "email", ref=recipient.email)


def builtin_notifiers(settings: Any) -> list[Notifier]:
    """The webhook and e-mail notifiers configured from ``settings.people``."""
    from flows.people.settings import people_settings

    section = people_settings(settings)
    return [
        WebhookNotifier(timeout=section.webhook_timeout),
        EmailNotifier(host=section.smtp_host, port=section.smtp_port, sender=section.smtp_from),
    ]


def load_notifiers(settings: Any, modules: list[str] | None = None) -> dict[str, Notifier]:
    """Every available notifier by recipient kind; later modules override the built-ins.

    A module in :data:`NOTIFIER_MODULES` that is not installed is skipped (its recipient kinds then
    fail delivery with "no notifier for ..."); one that fails to import for another reason raises.
    """
    by_kind: dict[str, Notifier] = {}
    for notifier in builtin_notifiers(settings):
        for kind in notifier.kinds:
            by_kind[kind] = notifier
    for name in NOTIFIER_MODULES if modules is None else modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is not None and name.startswith(e.name):
                continue
            raise
        for notifier in module.notifiers(settings):
            for kind in notifier.kinds:
                by_kind[kind] = notifier
    return by_kind
