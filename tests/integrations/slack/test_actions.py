"""slack.open_incident_channel and slack.post against the loopback Slack Web API."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.actions.context import ActionContext, make_context
from flows.actions.registry import default_registry
from flows.errors import ActionError
from integrations.slack.actions import OpenChannelParams, OpenIncidentChannel, Post, PostParams, marker
from integrations.slack.state import read_state
from tests.fixtures.slack_fake import SlackEnv


def _ctx(slack: SlackEnv, tmp_path: Path, mode: str = "live", **kw: object) -> ActionContext:
    settings = slack.settings(tmp_path)
    return make_context(settings.runs_dir / "run-1", mode=mode, settings=settings, incident_id="INC-42", **kw)  # type: ignore[arg-type]


def test_both_actions_are_registered() -> None:
    registry = default_registry()
    assert registry.get("slack.post").kind == "notify"
    assert registry.get("slack.open_incident_channel").kind == "notify"


def test_open_creates_marks_invites_and_sets_the_topic(slack: SlackEnv, tmp_path: Path) -> None:
    ctx = _ctx(slack, tmp_path)
    result = OpenIncidentChannel().apply(OpenChannelParams(invite=["U0ALICE", "bob@example.com", "x@example.com"]), ctx)
    channel = slack.workspace.channel_named("inc-inc-42")
    assert channel is not None
    assert channel["id"] == result.channel_id
    assert channel["purpose"]["value"] == marker("INC-42")
    assert {"U0ALICE", "U0BOB"} <= set(channel["members"])
    assert "run run-1" in channel["topic"]["value"]
    assert result.unknown == ["x@example.com"]
    assert read_state(ctx.record.dir)["incident_channel"] == {"id": result.channel_id, "name": "inc-inc-42"}


def test_open_twice_reuses_the_channel(slack: SlackEnv, tmp_path: Path) -> None:
    ctx = _ctx(slack, tmp_path)
    first = OpenIncidentChannel().apply(OpenChannelParams(name="inc-42", invite=["U0ALICE"]), ctx)
    (ctx.record.dir / "slack.json").unlink()  # a crash before the state was written: Slack is the truth
    again = OpenIncidentChannel().apply(OpenChannelParams(name="inc-42", invite=["U0ALICE"]), ctx)
    assert again.channel_id == first.channel_id
    assert again.reused
    assert not again.changed
    assert len([c for c in slack.workspace.channels.values() if c.name.startswith("inc-42")]) == 1


def test_name_taken_by_another_channel_gets_a_suffix(slack: SlackEnv, tmp_path: Path) -> None:
    slack.workspace.add_channel("inc-42", purpose="fireline incident INC-7")  # another incident's
    slack.workspace.add_channel("inc-42-2", purpose="team chat")
    result = OpenIncidentChannel().apply(OpenChannelParams(name="inc-42"), _ctx(slack, tmp_path))
    assert result.name == "inc-42-3"
    assert not result.reused
    assert [r.error for r in slack.workspace.posted("conversations.create")] == ["name_taken", "name_taken", None]


def test_plan_has_no_side_effect_and_says_would_send(slack: SlackEnv, tmp_path: Path) -> None:
    ctx = _ctx(slack, tmp_path, mode="dry-run")
    plan = OpenIncidentChannel().plan(OpenChannelParams(name="inc-42", invite=["U0ALICE"]), ctx)
    post_plan = Post().plan(PostParams(channel="#general", text="hi"), ctx)
    assert all(c.startswith("would_send:") for c in plan.changes + post_plan.changes)
    assert "[DRY-RUN] hi" in post_plan.changes[0]
    assert slack.workspace.requests == []


def test_post_joins_when_not_in_channel_and_posts_once_per_key(slack: SlackEnv, tmp_path: Path) -> None:
    cid = slack.workspace.add_channel("ops", member=False)
    ctx = _ctx(slack, tmp_path)
    first = Post().apply(PostParams(channel="#ops", text="containment done"), ctx)
    again = Post().apply(PostParams(channel="#ops", text="containment done"), ctx)
    assert [m.text for m in slack.workspace.history(cid)] == ["containment done"]
    assert first.ts == again.ts
    assert not again.changed
    assert [r.method for r in slack.workspace.posted()].count("conversations.join") == 1


def test_post_to_the_incident_channel_needs_one(slack: SlackEnv, tmp_path: Path) -> None:
    ctx = _ctx(slack, tmp_path)
    with pytest.raises(ActionError, match="opened no incident channel"):
        Post().apply(PostParams(channel="incident", text="x"), ctx)
    OpenIncidentChannel().apply(OpenChannelParams(name="inc-42"), ctx)
    Post().apply(PostParams(channel="incident", text="x"), ctx.for_step("post-2"))
    assert [m.text for m in slack.workspace.history("inc-42")] == ["x"]


def test_responders_from_the_directory_are_invited(slack: SlackEnv, tmp_path: Path) -> None:
    import yaml

    people = {"apiVersion": "fireline/v1", "kind": "Directory", "metadata": {"name": "p", "version": 1},
              "people": [{"id": "alice", "name": "A", "slack_user_id": "U0ALICE", "groups": ["sec"]},
                         {"id": "bob", "name": "B", "email": "bob@example.com", "groups": ["sec"]},
                         {"id": "carol", "name": "C", "email": "carol@example.com"}]}  # fmt: skip
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "people.yaml").write_text(yaml.safe_dump(people))
    settings = slack.settings(tmp_path).model_copy(update={"playbooks_dir": tmp_path / "playbooks"})
    ctx = make_context(settings.runs_dir / "run-1", settings=settings, incident_id="INC-9")
    result = OpenIncidentChannel().apply(OpenChannelParams(name="inc-9", invite=["group:sec", "person:carol"]), ctx)
    assert sorted(result.invited) == ["U0ALICE", "U0BOB", "U0CAROL"]
    channel = slack.workspace.channel_named("inc-9")
    assert channel is not None
    assert {"U0ALICE", "U0BOB", "U0CAROL"} <= set(channel["members"])
    with pytest.raises(ActionError, match="person:zed is not in the directory"):
        OpenIncidentChannel().apply(OpenChannelParams(name="inc-9", invite=["person:zed"]), ctx)


NOTIFY_BOOK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: notify-check, version: 1, title: Notify check, severity: high}
steps:
  - id: open-channel
    action: slack.open_incident_channel
    needs: []
    continue_on_error: true
  - id: summary
    action: slack.post
    needs: [open-channel]
    continue_on_error: true
    with: {channel: incident, text: contained}
  - id: after
    action: log
    needs: [summary]
    with: {message: goes on}
"""


@pytest.mark.parametrize("mode", ["live", "dry-run", "drill"])
def test_without_a_token_both_actions_are_skipped_and_say_why(slack: SlackEnv, tmp_path: Path, mode: str) -> None:
    from flows.engine import run_playbook
    from flows.record.store import read_events

    book = tmp_path / "notify-check.yaml"
    book.write_text(NOTIFY_BOOK, encoding="utf-8")
    settings = slack.settings(tmp_path).model_copy(update={"slack": slack.slack_settings(token=None)})
    summary = run_playbook(book, settings=settings, mode=mode)  # type: ignore[arg-type]
    assert summary.outcome == "succeeded"
    for step in ("open-channel", "summary"):
        outcome = summary.steps[step]
        assert (outcome.status, outcome.reason) == ("skipped", "not_configured")
        assert "FIRELINE_SLACK_TOKEN" in str(outcome.error)
    assert summary.steps["after"].status == "succeeded"
    skipped = [e for e in read_events(summary.run_dir / "events.jsonl") if e["type"] == "step.skipped"]
    assert [(e["step"], e["detail"]["reason"]) for e in skipped] == [
        ("open-channel", "not_configured"),
        ("summary", "not_configured"),
    ]
    assert slack.workspace.posted() == []  # nothing reached Slack
