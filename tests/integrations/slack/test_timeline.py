"""The run's root message and timeline thread, counted at the loopback Slack."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import yaml

from flows.engine import run_playbook
from flows.record.store import RunRecord, read_events
from integrations.slack.state import read_state, update_state
from integrations.slack.timeline import timeline_sink
from tests.fixtures.slack_fake import SlackEnv

INTERVAL = 0.2


def _playbook(folder: Path, logs: int) -> Path:
    steps: list[dict[str, Any]] = [
        {"id": "open-channel", "action": "slack.open_incident_channel", "with": {"name": "inc-storm"}}
    ]
    steps += [{"id": f"log-{n}", "action": "log", "with": {"message": f"entry {n}"}, "needs": ["open-channel"]}
              for n in range(logs)]  # fmt: skip
    metadata = {"name": "storm", "version": 1, "title": "Storm", "severity": "high"}
    doc = {"apiVersion": "fireline/v1", "kind": "Playbook", "metadata": metadata, "steps": steps}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "storm.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _thread_seqs(slack: SlackEnv, channel: str) -> list[int]:
    [root] = slack.workspace.history(channel)
    lines = [line for m in slack.workspace.history(channel, root.ts) for line in m.text.splitlines()]
    return [int(re.match(r"#(\d+) ", line).group(1)) for line in lines]  # type: ignore[union-attr]


def test_every_event_reaches_the_thread_once_despite_429s_and_pacing_holds(slack: SlackEnv, tmp_path: Path) -> None:
    settings = slack.settings(tmp_path, min_interval=INTERVAL)
    slack.workspace.rate_limit("chat.postMessage", times=3, retry_after=0)
    slack.workspace.rate_limit("chat.update", times=1, retry_after=0)
    summary = run_playbook(_playbook(tmp_path / "playbooks", 30), settings=settings, run_id="storm-1")
    assert summary.outcome == "succeeded"
    recorded = [e["seq"] for e in read_events(summary.run_dir / "events.jsonl")]
    assert _thread_seqs(slack, "inc-storm") == recorded  # none lost, none repeated, in order
    [root] = slack.workspace.history("inc-storm")
    assert "succeeded" in root.text
    assert root.edits >= 1
    channel = slack.workspace.channel_named("inc-storm")
    assert channel is not None
    sent = [r for r in slack.workspace.posted() if r.params.get("channel") == channel["id"] and r.status == 200
            and r.method in ("chat.postMessage", "chat.update")]  # fmt: skip
    gaps = [b.at - a.at for a, b in itertools.pairwise(sent)]
    # Paced at the sender; loopback transit jitter can shorten one arrival gap, never halve it.
    assert min(gaps) >= INTERVAL * 0.5, gaps
    assert len(sent) < len(recorded) / 2  # bursts were batched
    assert read_state(summary.run_dir)["posted_seq"] == recorded[-1]


def test_a_resumed_sink_continues_the_same_thread_without_repeats(slack: SlackEnv, tmp_path: Path) -> None:
    settings = slack.settings(tmp_path)
    cid = slack.workspace.add_channel("inc-resume")
    record = RunRecord(tmp_path / "runs" / "run-r")
    record.emit("run.started", detail={"playbook": "p@1", "incident": {"title": "T", "severity": "low"}})
    update_state(record.dir, incident_channel={"id": cid, "name": "inc-resume"})
    first = timeline_sink(record, settings=settings, run_id="run-r", mode="live")
    assert first is not None
    record.emit("step.started", step="a")
    assert first.close(30)
    for _ in range(3):  # the process died here; these events were never posted
        record.emit("step.succeeded", step="a")
    again = timeline_sink(record, settings=settings, run_id="run-r", mode="live")
    assert again is not None
    record.emit("run.finished", detail={"outcome": "succeeded"})
    assert again.close(30)
    assert _thread_seqs(slack, cid) == [0, 1, 2, 3, 4, 5]
    [root] = slack.workspace.history(cid)
    assert "succeeded" in root.text


def test_dry_run_without_a_drill_channel_has_no_slack_side(slack: SlackEnv, tmp_path: Path) -> None:
    record = RunRecord(tmp_path / "runs" / "run-d")
    assert timeline_sink(record, settings=slack.settings(tmp_path), run_id="run-d", mode="dry-run") is None
    drill = slack.workspace.add_channel("drills")
    with_drill_channel = slack.settings(tmp_path, drill_channel=drill)
    assert timeline_sink(record, settings=with_drill_channel, run_id="run-d", mode="dry-run") is None
    sink = timeline_sink(record, settings=slack.settings(tmp_path, drill_channel=drill), run_id="run-d", mode="drill")
    assert sink is not None
    record.emit("run.started", detail={"playbook": "p@1"})
    record.emit("slack.channel_opened", detail={"channel": "C-elsewhere"})  # a drill never follows it
    assert sink.close(30)
    [root] = slack.workspace.history(drill)
    assert root.text.startswith("[DRILL] ")
    assert all(m.text.startswith("[DRILL] ") for m in slack.workspace.history(drill, root.ts))


def test_an_unreachable_slack_never_fails_or_holds_the_run(tmp_path: Path) -> None:
    from flows.config import Settings, SlackSettings
    from integrations.aws.moto_server import free_port

    slack = SlackSettings(base_url=f"http://127.0.0.1:{free_port()}/api/", token="xoxb-x", channel="C0DOWN")
    settings = Settings(runs_dir=tmp_path / "runs", home=tmp_path / "home", playbooks_dir=tmp_path, slack=slack)
    book = tmp_path / "quiet.yaml"
    book.write_text(yaml.safe_dump({"apiVersion": "fireline/v1", "kind": "Playbook",
                                    "metadata": {"name": "quiet", "version": 1, "title": "Quiet"},
                                    "steps": [{"id": "a", "action": "log", "with": {"message": "x"}}]}))  # fmt: skip
    summary = run_playbook(book, settings=settings)
    assert summary.outcome == "succeeded"
    events = [e["type"] for e in read_events(summary.run_dir / "events.jsonl")]
    assert events[0] == "run.started"
    assert read_state(summary.run_dir)["undelivered"] == len(events)  # said, not silently dropped


def test_a_deleted_root_is_posted_again_and_a_channel_the_app_is_not_in_is_joined(
    slack: SlackEnv, tmp_path: Path
) -> None:
    cid = slack.workspace.add_channel("incidents", member=False)
    record = RunRecord(tmp_path / "runs" / "run-x")
    sink = timeline_sink(record, settings=slack.settings(tmp_path, channel=cid), run_id="run-x", mode="live")
    assert sink is not None
    record.emit("run.started", detail={"playbook": "p@1", "incident": {"title": "T", "severity": "low"}})
    # A long burst: messages stay under Slack's advised 4,000 characters.
    for n in range(60):
        record.emit("log", step="s", detail={"message": "x" * 150 + str(n)})
    slack.workspace.fail("chat.update", error="message_not_found")  # someone deleted the root message
    record.emit("run.finished", detail={"outcome": "succeeded"})
    assert sink.close(30)
    roots = slack.workspace.history(cid)
    assert len(roots) == 2  # the first, then a new one when the update found it gone
    assert "succeeded" in roots[-1].text
    lines = [line for root in roots for m in slack.workspace.history(cid, root.ts) for line in m.text.splitlines()]
    assert len(lines) == 62  # every entry, in one thread or the other
    assert all(len(m.text) <= 4000 for root in roots for m in slack.workspace.history(cid, root.ts))
    assert [r.method for r in slack.workspace.posted()].count("conversations.join") == 1


def test_the_root_message_offers_ack_while_a_page_waits_and_approve_while_an_approval_waits() -> None:
    from integrations.slack.blocks import root_blocks
    from integrations.slack.timeline import RunView

    view = RunView("run-1", "live")

    def buttons() -> list[tuple[str, str]]:
        _, blocks = root_blocks(view.data)
        return [(e["action_id"], e["value"]) for b in blocks if b["type"] == "actions" for e in b["elements"]]

    view.fold({"type": "page.sent", "step": "page", "detail": {}})
    view.fold({"type": "approval.requested", "step": "approve", "detail": {"plan": "isolate i-0abc"}})
    assert buttons() == [
        ("fireline.approve", '{"run":"run-1","step":"approve"}'),
        ("fireline.reject", '{"run":"run-1","step":"approve"}'),
        ("fireline.ack", '{"run":"run-1","step":"page"}'),
    ]
    assert "isolate i-0abc" in str(root_blocks(view.data)[1])
    view.fold({"type": "page.acked", "step": "page", "detail": {"by": "alice"}})
    view.fold({"type": "approval.granted", "step": "approve", "detail": {}})
    assert buttons() == []
