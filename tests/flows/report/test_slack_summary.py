"""The report's summary and path reach the run's Slack thread (the loopback Slack the real WebClient talks to)."""

from __future__ import annotations

from pathlib import Path

from flows.engine import run_playbook
from flows.report import build
from tests.fixtures.slack_fake import SlackEnv
from tests.flows.engine.engine_helpers import write_playbook
from tests.flows.report.records import registry


def test_the_thread_carries_the_post_mortem_path_and_summary(slack: SlackEnv, tmp_path: Path) -> None:
    steps = [
        {"id": "open-channel", "action": "slack.open_incident_channel", "with": {"name": "inc-report"}},
        {"id": "iso", "action": "reporttest.isolate", "for_each": "{{ ['i-0aaa', 'i-0bbb'] }}",
         "with": {"instance_id": "{{ item }}", "tags": {}}},
    ]  # fmt: skip
    reg = registry()
    reg.register_module("integrations.slack.actions")
    book = write_playbook(tmp_path, steps, name="slacked", report={"formats": ["md", "html"]})
    summary = run_playbook(book, settings=slack.settings(tmp_path), run_id="slacked-1", registry=reg)
    assert summary.outcome == "succeeded"
    [root] = slack.workspace.history("inc-report")
    thread = "\n".join(m.text for m in slack.workspace.history("inc-report", root.ts))
    line = next(x for x in thread.splitlines() if "report.written" in x)
    assert f"post-mortem {summary.run_dir / 'report.md'}" in line
    facts = build(summary.run_dir)["summary"]
    assert "iso: i-0aaa, i-0bbb" in facts  # the summary the thread must carry, computed from the same record
    assert line.endswith(f"{summary.run_dir / 'report.md'}: {'; '.join(facts)}"), line
