"""Pages through the Slack notifier, checked at the loopback Slack."""

from __future__ import annotations

import json
from pathlib import Path

from flows.people.notify import INCIDENT_CHANNEL, NOTIFIER_MODULES, PageMessage, Recipient, load_notifiers
from integrations.slack.notifier import SlackNotifier
from integrations.slack.state import update_state
from tests.fixtures.slack_fake import SlackEnv


def _page(mode: str = "live", **kw: object) -> PageMessage:
    values: dict[str, object] = {"run_id": "run-1", "incident_id": "INC-1", "step": "page", "level": 0,
                                 "text": "Isolating 2 hosts", "severity": "critical", "mode": mode, **kw}  # fmt: skip
    return PageMessage(**values)  # type: ignore[arg-type]


def test_the_slack_notifier_is_loaded_by_module_name(slack: SlackEnv, tmp_path: Path) -> None:
    assert "integrations.slack.notifier" in NOTIFIER_MODULES
    found = load_notifiers(slack.settings(tmp_path))
    assert {type(found[k]).__name__ for k in ("person", "slack_channel", "slack_usergroup")} == {"SlackNotifier"}


def test_a_person_gets_a_dm_with_an_ack_button_found_by_email_once(slack: SlackEnv, tmp_path: Path) -> None:
    notifier = SlackNotifier(slack.settings(tmp_path))
    bob = Recipient("person", "bob", "Bob", email="bob@example.com")
    first = notifier.send(bob, _page())
    second = notifier.send(bob, _page(level=1))
    assert (first.ok, first.channel, second.ok) == (True, "slack", True)
    dms = slack.workspace.history("U0BOB")
    assert len(dms) == 2
    button = dms[0].blocks[-1]["elements"][0]
    assert button["action_id"] == "fireline.ack"
    assert json.loads(button["value"]) == {"run": "run-1", "step": "page"}
    assert len(slack.workspace.posted("users.lookupByEmail")) == 1  # cached


def test_an_unknown_person_is_a_failed_delivery_not_an_exception(slack: SlackEnv, tmp_path: Path) -> None:
    delivery = SlackNotifier(slack.settings(tmp_path)).send(
        Recipient("person", "zed", email="zed@example.com"), _page()
    )
    assert not delivery.ok
    assert "no Slack account for zed@example.com" in (delivery.error or "")


def test_approval_pages_carry_the_plan_and_both_buttons(slack: SlackEnv, tmp_path: Path) -> None:
    page = _page(buttons=("approve", "reject"), plan_summary="aws:ec2:instance i-0abc: quarantine security group")
    SlackNotifier(slack.settings(tmp_path)).send(Recipient("person", "alice", slack_user_id="U0ALICE"), page)
    blocks = slack.workspace.history("U0ALICE")[0].blocks
    assert "i-0abc: quarantine security group" in json.dumps(blocks)
    assert [e["action_id"] for e in blocks[-1]["elements"]] == ["fireline.approve", "fireline.reject"]


def test_usergroup_is_mentioned_in_the_incident_channel_and_here_becomes_a_mention(
    slack: SlackEnv, tmp_path: Path
) -> None:
    settings = slack.settings(tmp_path)
    notifier = SlackNotifier(settings)
    group = Recipient("slack_usergroup", "S0SEC")
    assert not notifier.send(group, _page()).ok  # no incident channel yet, no [slack] channel
    cid = slack.workspace.add_channel("inc-1")
    update_state(settings.runs_dir / "run-1", incident_channel={"id": cid, "name": "inc-1"})
    assert notifier.send(group, _page()).ok
    assert notifier.send(Recipient("slack_channel", INCIDENT_CHANNEL), _page(text="@here nobody acked")).ok
    texts = [m.text for m in slack.workspace.history(cid)]
    assert texts[0].startswith("<!subteam^S0SEC> [CRITICAL] Isolating")
    assert "<!here> nobody acked" in texts[1]


def test_dry_run_sends_nothing_and_drill_goes_only_to_the_drill_channel(slack: SlackEnv, tmp_path: Path) -> None:
    alice = Recipient("person", "alice", "Alice", slack_user_id="U0ALICE")
    dry = SlackNotifier(slack.settings(tmp_path, drill_channel="C0DRILL")).send(alice, _page("dry-run"))
    assert (dry.ok, dry.channel) == (True, "would_send")
    no_drill_channel = SlackNotifier(slack.settings(tmp_path)).send(alice, _page("drill"))
    assert no_drill_channel.channel == "would_send"
    assert slack.workspace.requests == []
    drill = slack.workspace.add_channel("drills")
    delivery = SlackNotifier(slack.settings(tmp_path, drill_channel=drill)).send(alice, _page("drill"))
    assert (delivery.ok, delivery.channel) == (True, "drill")
    assert slack.workspace.history("U0ALICE") == []
    [message] = slack.workspace.history(drill)
    assert message.text.startswith("[DRILL] [CRITICAL]")
    assert "(would page person Alice)" in message.text


def test_the_incident_channel_falls_back_to_the_configured_channel(slack: SlackEnv, tmp_path: Path) -> None:
    incident = Recipient("slack_channel", INCIDENT_CHANNEL)
    failed = SlackNotifier(slack.settings(tmp_path)).send(incident, _page(text="@here nobody acked"))
    assert not failed.ok
    assert "no [slack] channel" in (failed.error or "")
    cid = slack.workspace.add_channel("incidents")
    assert SlackNotifier(slack.settings(tmp_path, channel=cid)).send(incident, _page(text="@here nobody acked")).ok
    assert "<!here> nobody acked" in slack.workspace.history(cid)[0].text
