"""The sandbox's Slack: a loopback Slack Web API, so ``fireline sandbox demo`` shows channels offline.

:func:`attach` starts the loopback for the demo's duration, creates ``#incidents`` (where run root
messages go when a playbook opens no incident channel of its own), adds the people of the directory
as Slack users, and returns settings pointing ``[slack]`` at it. :func:`show` reads back, from the
loopback, what a run put in Slack: its root message, its timeline thread and the incident channel.
Messages are paced at 0.2 s a channel here, not Slack's 1 s: the loopback has no rate limit, and the
demo should not wait.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from flows.config import Settings, SlackSettings
from integrations.slack.loopback import TOKEN, SlackLoopback, SlackWorkspace
from integrations.slack.state import read_state

SANDBOX_INTERVAL = 0.2
SHOWN_LINES = 8


def _seed_people(workspace: SlackWorkspace, settings: Settings) -> None:
    try:
        from flows.people.directory import load_directory

        directory = load_directory(settings)
    except Exception:  # no directory, or one the sandbox cannot read: the demo still runs
        return
    for n, person in enumerate(directory.people.values()):
        uid = person.slack_user_id or f"U0SANDBOX{n:03d}"
        workspace.add_user(uid, person.id, person.email or f"{person.id}@sandbox.invalid")


@dataclass
class SandboxSlack:
    """The demo's loopback Slack: ``settings`` point at it, :meth:`show` reads a run's messages back."""

    settings: Settings
    workspace: SlackWorkspace

    def show(self, run_dir: Path) -> list[str]:
        return show(run_dir, self.workspace)


def attach(stack: ExitStack, settings: Settings) -> SandboxSlack:
    """Start the loopback Slack until ``stack`` closes; its settings are ``settings`` pointing at it."""
    workspace = SlackWorkspace()
    server = stack.enter_context(SlackLoopback(workspace))
    workspace.add_channel("incidents")
    _seed_people(workspace, settings)
    slack = SlackSettings(base_url=server.base_url, token=TOKEN, channel="incidents", min_interval=SANDBOX_INTERVAL)
    return SandboxSlack(settings.model_copy(update={"slack": slack}), workspace)


def show(run_dir: Path, workspace: SlackWorkspace) -> list[str]:
    """What the run put in Slack, as lines for the demo's output (empty when it sent nothing)."""
    state = read_state(run_dir)
    if not state:
        return []
    lines: list[str] = []
    incident = state.get("incident_channel")
    if incident:
        channel = workspace.channel_named(incident["name"]) or {}
        lines.append(f"slack: incident channel #{incident['name']} ({incident['id']}), "
                     f"topic {(channel.get('topic') or {}).get('value', '')!r}")  # fmt: skip
        lines += [f"  #{incident['name']}: {m.text.splitlines()[0][:100]}" for m in workspace.history(incident["id"])]
    lines += _pages(run_dir.name, workspace)
    root = state.get("root")
    if root:
        message = next((m for m in workspace.history(root["channel"]) if m.ts == root["ts"]), None)
        name = workspace.channels[root["channel"]].name if root["channel"] in workspace.channels else root["channel"]
        if message is not None:
            lines.append(f"slack: root message in #{name} (updated {message.edits}x): {message.text}")
        entries = [line for m in workspace.history(root["channel"], root["ts"]) for line in m.text.splitlines()]
        replies = len(workspace.history(root["channel"], root["ts"]))
        lines.append(f"slack: timeline thread: {len(entries)} entries in {replies} messages")
        lines += [f"  {line}" for line in entries[:SHOWN_LINES]]
        if len(entries) > SHOWN_LINES:
            lines.append(f"  ... {len(entries) - SHOWN_LINES} more")
    return lines


def _pages(run_id: str, workspace: SlackWorkspace) -> list[str]:
    """The pages of this run delivered as DMs (their context block names the run)."""
    lines = []
    for message in workspace.messages:
        channel = workspace.channels.get(message.channel)
        if channel is None or not channel.is_im or f"run `{run_id}`" not in str(message.blocks):
            continue
        who = workspace.users.get(channel.name.removeprefix("dm-"), {}).get("name", channel.name)
        buttons = [e["text"]["text"] for b in message.blocks if b.get("type") == "actions" for e in b["elements"]]
        lines.append(f"slack: page to @{who} (DM, buttons {', '.join(buttons) or 'none'}): {message.text[:90]}")
    return lines
