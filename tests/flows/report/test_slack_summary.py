"""The report's summary and path reach the run's Slack thread (the loopback Slack the real WebClient talks to)."""

from __future__ import annotations

from pathlib import Path

from flows.engine import run_playbook
from tests.fixtures.slack_fake import SlackEnv
from tests.flows.engine.engine_helpers import write_playbook


def test_the_thread_carries_the_post_mortem_path_and_summary(slack: SlackEnv, tmp_path: Path) -> None:
    steps = [
        {"id": "open-channel", "action": "slack.open_incident_channel", "with": {"name": "inc-report"}},
        {"id": "note", "action": "log", "with": {"message": "looked"}},
    ]
    book = write_playbook(tmp_path, steps, name="slacked", report={"formats": ["md", "html"]})
    summary = run_playbook(book, settings=slack.settings(tmp_path), run_id="slacked-1")
    assert summary.outcome == "succeeded"
    [root] = slack.workspace.history("inc-report")
    thread = "\n".join(m.text for m in slack.workspace.history("inc-report", root.ts))
    line = next(x for x in thread.splitlines() if "report.written" in x)
    assert f"post-mortem {summary.run_dir / 'report.md'}" in line
