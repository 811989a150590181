"""The sandbox's loopback Slack: a run's root message, thread and incident channel, as the demo prints them."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import yaml

from flows.config import Settings
from flows.engine import run_playbook
from flows.people.notify import PageMessage, Recipient
from flows.plugins import load
from integrations.slack.notifier import SlackNotifier


def test_the_demo_shows_the_incident_channel_and_the_thread(tmp_path: Path) -> None:
    steps = [
        {"id": "open", "action": "slack.open_incident_channel", "with": {"name": "inc-demo"}},
        {"id": "tell", "action": "slack.post", "with": {"channel": "incident", "text": "hosts isolated"}},
    ]
    metadata = {"name": "demo-slack", "version": 1, "title": "Demo", "severity": "high"}
    book = {"apiVersion": "fireline/v1", "kind": "Playbook", "metadata": metadata, "steps": steps}
    (tmp_path / "playbooks").mkdir()
    path = tmp_path / "playbooks" / "demo-slack.yaml"
    path.write_text(yaml.safe_dump(book))
    base = Settings(runs_dir=tmp_path / "runs", home=tmp_path / "home", playbooks_dir=tmp_path / "playbooks")
    with ExitStack() as stack:
        slack = load("sandbox.slack").attach(stack, base)
        summary = run_playbook(path, settings=slack.settings)
        slack.workspace.add_user("U0ALICE", "alice", "alice@example.com")
        page = PageMessage(run_id=summary.run_id, incident_id="i", step="page", level=0, text="wake up")
        assert SlackNotifier(slack.settings).send(Recipient("person", "alice", slack_user_id="U0ALICE"), page).ok
        lines = slack.show(summary.run_dir)
    assert summary.outcome == "succeeded"
    text = "\n".join(lines)
    assert "slack: incident channel #inc-demo" in text
    assert "#inc-demo: hosts isolated" in text
    assert "slack: root message in #incidents" in text  # [slack] channel: the root goes there at once
    assert "Demo: succeeded" in text
    assert "slack: timeline thread:" in text
    assert "run.finished" in text or "more" in text
    assert "slack: page to @alice (DM, buttons Ack): [MEDIUM] wake up" in text
