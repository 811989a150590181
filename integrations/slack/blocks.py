"""Block Kit for fireline's Slack messages: pages, approval requests, the run's root message, timeline lines.

Buttons carry ``action_id`` ``fireline.ack|approve|reject`` and a compact JSON ``value``
(``{"run": run id, "step": step id}``) that ``POST /slack/interactions`` reads back. Slack limits
(Block Kit reference): 50 blocks a message, 3,000 characters a section text, 2,000 a button value.
"""

from __future__ import annotations

import json
from typing import Any

ACTION_IDS = {"ack": "fireline.ack", "approve": "fireline.approve", "reject": "fireline.reject"}
SECTION_LIMIT = 3000
MAX_BLOCKS = 50
_STYLE = {"approve": "primary", "reject": "danger"}
_LABEL = {"ack": "Ack", "approve": "Approve", "reject": "Reject"}
_STATUS_ICON = {
    "running": ":hourglass_flowing_sand:",
    "waiting": ":raised_hand:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "rejected": ":no_entry:",
    "skipped": ":fast_forward:",
    "timed_out": ":alarm_clock:",
}


def mark(mode: str) -> str:
    """The prefix every message of a non-live run carries."""
    return {"drill": "[DRILL] ", "dry-run": "[DRY-RUN] "}.get(mode, "")


def clip(text: str, limit: int = SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def button_value(run_id: str, step: str | None) -> str:
    return json.dumps({"run": run_id, "step": step}, separators=(",", ":"))


def buttons(run_id: str, step: str | None, kinds: tuple[str, ...]) -> dict[str, Any]:
    """An ``actions`` block with one button per kind (ack, approve, reject)."""
    elements = []
    for kind in kinds:
        element: dict[str, Any] = {
            "type": "button",
            "action_id": ACTION_IDS[kind],
            "text": {"type": "plain_text", "text": _LABEL[kind]},
            "value": button_value(run_id, step),
        }
        if kind in _STYLE:
            element["style"] = _STYLE[kind]
        elements.append(element)
    return {"type": "actions", "block_id": f"fireline:{step or 'run'}", "elements": elements}


def page_blocks(
    *, text: str, mode: str, severity: str, run_id: str, incident_id: str, step: str,
    kinds: tuple[str, ...], plan_summary: str | None = None, mention: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
    """A page or an approval request: (fallback text, blocks)."""
    head = f"{mark(mode)}*[{severity.upper()}]* {text}"
    if mention:
        head = f"{mention} {head}"
    blocks = [section(head), _context(f"incident `{incident_id}` · run `{run_id}` · step `{step}`")]
    if plan_summary:
        blocks.append(section(f"*What approving lets the run do*\n```{clip(plan_summary, SECTION_LIMIT - 40)}```"))
    if kinds:
        blocks.append(buttons(run_id, step, kinds))
    fallback = f"{mention + ' ' if mention else ''}{mark(mode)}[{severity.upper()}] {text}"
    return fallback, blocks


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text)}]}


def root_blocks(view: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The run's root message from a view ``{run_id, mode, title, playbook, severity, status,
    outcome, steps: {id: status}, waiting: [{step, summary}], acks: [step]}``: (fallback text, blocks)."""
    mode = str(view.get("mode", "live"))
    outcome = view.get("outcome")
    state = f"finished: *{outcome}*" if outcome else f"*{view.get('status', 'running')}*"
    title = view.get("title") or view.get("playbook", "")
    head = f"{mark(mode)}:rotating_light: *{title}* ({view.get('severity', '?')}) · {state}"
    blocks: list[dict[str, Any]] = [
        section(head),
        _context(f"playbook `{view.get('playbook')}` · run `{view.get('run_id')}` · mode {mode}"),
    ]
    steps = view.get("steps") or {}
    if steps:
        lines = [f"{_STATUS_ICON.get(status, ':white_circle:')} `{sid}` {status}" for sid, status in steps.items()]
        blocks.append(section("\n".join(lines)))
    for wait in view.get("waiting") or []:
        if len(blocks) >= MAX_BLOCKS - 2:
            break
        blocks.append(section(f":raised_hand: approval `{wait['step']}` is waiting. {wait.get('summary', '')}"))
        if not outcome:
            blocks.append(buttons(str(view.get("run_id")), str(wait["step"]), ("approve", "reject")))
    for step in view.get("acks") or []:
        if len(blocks) >= MAX_BLOCKS - 2 or outcome:
            break
        blocks.append(section(f":bell: page `{step}` is waiting for an ack."))
        blocks.append(buttons(str(view.get("run_id")), str(step), ("ack",)))
    fallback = f"{mark(mode)}{title}: {outcome or view.get('status', 'running')}"
    return fallback, blocks


def event_line(event: dict[str, Any]) -> str:
    """One timeline line for an event of the run record: ``#<seq> <HH:MM:SS> <type> `step` ...``."""
    detail = event.get("detail") or {}
    at = str(event.get("at", ""))[11:19]
    step = f" `{event['step']}`" if event.get("step") else ""
    item = f" [{event['item']}]" if event.get("item") not in (None, "") else ""
    extra = ""
    recipient = detail.get("recipient")
    if isinstance(recipient, dict):  # pages: who, and how it went
        extra = f" to {recipient.get('display') or recipient.get('id')} via {detail.get('channel', '?')}"
    for key in () if extra else ("message", "error", "outcome", "by", "reason", "summary", "level"):
        if detail.get(key) not in (None, "", [], {}):
            extra = f" {key}: {detail[key]}"
            break
    return clip(f"#{event.get('seq')} {at} {event.get('type')}{step}{item}{extra}", 400)
