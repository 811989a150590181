"""Acks and approvals from Slack: signed interaction payloads against the app, a real run waiting, the fake Slack.

The button a test "clicks" is read from the run's root message as the loopback Slack received it,
so the test covers the whole path: Block Kit out, signed payload in, authorisation, the run.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flows.engine import run_playbook
from flows.engine.outcomes import RunSummary
from flows.people.interactions import SlackInteractions
from flows.record.store import read_events
from tests.fixtures.slack_fake import SlackEnv, button_payload, interaction_body, signed_headers

PEOPLE = {
    "apiVersion": "fireline/v1",
    "kind": "Directory",
    "metadata": {"name": "test-people", "version": 1},
    "people": [
        {
            "id": "alice",
            "name": "Alice",
            "email": "alice@example.com",
            "slack_user_id": "U0ALICE",
            "groups": ["ml-security"],
        },
        {
            "id": "bob",
            "name": "Bob",
            "email": "bob@example.com",
            "groups": ["ml-security"],
        },  # Slack id by e-mail lookup
        {"id": "carol", "name": "Carol", "email": "carol@example.com", "slack_user_id": "U0CAROL"},
    ],
}


def _playbook(folder: Path, min_approvals: int) -> Path:
    doc = {
        "apiVersion": "fireline/v1",
        "kind": "Playbook",
        "metadata": {"name": "slack-approval", "version": 1, "title": "Slack approval", "severity": "high"},
        "steps": [
            {"id": "open-channel", "action": "slack.open_incident_channel",
             "with": {"name": "inc-slack", "invite": ["U0ALICE"]}},
            {"id": "approve", "action": "approval",
             "with": {"approvers": ["group:ml-security"], "min_approvals": min_approvals, "timeout": "10m"}},
            {"id": "after", "action": "log", "with": {"message": "approved"}},
        ],
    }  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "people.yaml").write_text(yaml.safe_dump(PEOPLE, sort_keys=False))
    path = folder / "slack-approval.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass
class LiveRun:
    slack: SlackEnv
    endpoint: SlackInteractions
    thread: threading.Thread
    result: dict[str, Any]
    run_dir: Path

    def root_button(self, action_id: str, step: str = "approve", timeout: float = 30.0) -> str:
        """The value of a button of the root message, once the fake Slack shows it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.slack.workspace.history("inc-slack"):
                for block in message.blocks:
                    for element in block.get("elements", []) if block.get("type") == "actions" else []:
                        if element["action_id"] == action_id and json.loads(element["value"])["step"] == step:
                            return str(element["value"])
            time.sleep(0.02)
        raise AssertionError(f"no {action_id} button for {step} in the root message")

    def click(self, user: str, action_id: str, **sign: Any) -> httpx.Response:
        body = interaction_body(button_payload(user, action_id, self.root_button(action_id), channel="inc-slack"))
        return post(self.endpoint, body, signed_headers(body, **sign))

    def finish(self) -> RunSummary:
        self.endpoint.wait_idle()
        self.thread.join(60)
        assert not self.thread.is_alive()
        summary: RunSummary = self.result["summary"]
        return summary

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in read_events(self.run_dir / "events.jsonl") if e["type"] == type_]


def post(endpoint: SlackInteractions, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=endpoint.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            return await client.post("/interactions", content=body, headers=headers)

    return asyncio.run(send())


@pytest.fixture
def live_run(slack: SlackEnv, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveRun]:
    """A live run waiting at ``approve`` (2 approvals from group ml-security unless parametrised)."""
    min_approvals, trigger = getattr(request, "param", (2, "user:carol"))
    settings = slack.settings(tmp_path).model_copy(update={"playbooks_dir": tmp_path / "playbooks"})
    path = _playbook(settings.playbooks_dir, min_approvals)
    result: dict[str, Any] = {}
    run_id = f"run-{tmp_path.name[-12:]}"

    def go() -> None:
        result["summary"] = run_playbook(path, settings=settings, run_id=run_id, trigger={"by": trigger})

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    endpoint = SlackInteractions(settings)
    yield LiveRun(slack, endpoint, thread, result, settings.runs_dir / run_id)
    endpoint.close()


def test_two_distinct_approvers_from_slack_let_the_run_go_on(live_run: LiveRun) -> None:
    assert live_run.click("U0ALICE", "fireline.approve").status_code == 200
    assert live_run.click("U0ALICE", "fireline.approve").status_code == 200  # the same person again
    assert live_run.click("U0BOB", "fireline.approve").status_code == 200  # mapped by e-mail lookup
    summary = live_run.finish()
    assert summary.outcome == "succeeded"
    granted = live_run.events("approval.granted")
    assert sorted(granted[0]["detail"]["by"]) == ["alice", "bob"]
    root = live_run.slack.workspace.history("inc-slack")[0]
    assert "succeeded" in root.text  # the root message was updated in place with the outcome
    assert root.edits >= 1
    told = [e["text"] for e in live_run.slack.workspace.ephemeral]
    assert any("already counted" in t for t in told), told


def test_a_replayed_payload_counts_once(live_run: LiveRun) -> None:
    body = interaction_body(button_payload("U0ALICE", "fireline.approve", live_run.root_button("fireline.approve")))
    headers = signed_headers(body)
    assert post(live_run.endpoint, body, headers).status_code == 200
    assert post(live_run.endpoint, body, headers).status_code == 200
    live_run.endpoint.wait_idle()
    answers = list((live_run.run_dir / "approvals" / "approve").glob("*.json"))
    assert len(answers) == 1  # the replay wrote nothing
    live_run.click("U0BOB", "fireline.approve")
    assert live_run.finish().outcome == "succeeded"


def test_forged_and_stale_signatures_are_refused_and_change_nothing(live_run: LiveRun) -> None:
    forged = live_run.click("U0ALICE", "fireline.approve", secret="not-the-signing-secret")
    stale = live_run.click("U0ALICE", "fireline.approve", timestamp=int(time.time()) - 6 * 60)
    assert (forged.status_code, stale.status_code) == (401, 401)
    live_run.endpoint.wait_idle()
    assert not (live_run.run_dir / "approvals" / "approve").exists()
    assert live_run.slack.workspace.ephemeral == []
    live_run.click("U0ALICE", "fireline.approve")
    live_run.click("U0BOB", "fireline.approve")
    assert live_run.finish().outcome == "succeeded"


def test_an_unauthorised_approver_is_refused_and_told(live_run: LiveRun) -> None:
    live_run.click("U0CAROL", "fireline.approve")  # in the directory, not in ml-security
    live_run.endpoint.wait_idle()
    told = [e for e in live_run.slack.workspace.ephemeral if e["user"] == "U0CAROL"]
    assert told
    assert "Not counted" in told[0]["text"]
    live_run.click("U0ALICE", "fireline.reject")  # Reject asks for the reason first
    views = live_run.slack.workspace.views
    live_run.endpoint.wait_idle()
    assert [v["view"]["callback_id"] for v in views] == ["fireline.reject"]
    submission = {
        "type": "view_submission",
        "user": {"id": "U0ALICE"},
        "view": {
            "callback_id": "fireline.reject",
            "private_metadata": views[0]["view"]["private_metadata"],
            "state": {
                "values": {"reason": {"reason_input": {"type": "plain_text_input", "value": "blast radius too wide"}}}
            },
        },
    }
    body = interaction_body(submission)
    assert post(live_run.endpoint, body, signed_headers(body)).status_code == 200
    summary = live_run.finish()
    assert summary.outcome == "rejected"
    rejected = live_run.events("approval.rejected")
    assert rejected[0]["detail"]["reason"] == "blast radius too wide"
    refused = live_run.events("approval.refused")
    assert [(e["detail"]["by"], e["detail"]["how"]) for e in refused] == [("carol", "slack")], refused


@pytest.mark.parametrize(
    "live_run",
    [(1, "user:Alice"), (1, "ALICE"), (1, "alice@example.com")],
    indirect=True,
    ids=["Alice", "ALICE", "email"],
)
def test_self_approval_is_refused_by_slack_id(live_run: LiveRun) -> None:
    """Case 15 (self-approval with the name written differently), through Slack: the click is Alice's Slack id."""
    live_run.click("U0ALICE", "fireline.approve")  # Alice triggered the run under another spelling
    live_run.endpoint.wait_idle()
    told = [e["text"] for e in live_run.slack.workspace.ephemeral if e["user"] == "U0ALICE"]
    assert told
    assert "Not counted" in told[0]
    live_run.click("U0BOB", "fireline.approve")
    assert live_run.finish().outcome == "succeeded"
    assert live_run.events("approval.granted")[0]["detail"]["by"] == ["bob"]


def test_a_malformed_payload_is_a_one_line_400(slack: SlackEnv, tmp_path: Path) -> None:
    endpoint = SlackInteractions(slack.settings(tmp_path))
    no_run = {
        "type": "block_actions",
        "user": {"id": "U0ALICE"},
        "actions": [{"action_id": "fireline.approve", "value": "{}"}],
    }
    a_path = button_payload("U0ALICE", "fireline.approve", '{"run": "../../etc", "step": "approve"}')
    bad_view = {"type": "view_submission", "user": {"id": "U0ALICE"},
                "view": {"callback_id": "fireline.reject", "private_metadata": "{not json", "state": []}}  # fmt: skip
    view = {"callback_id": "fireline.reject", "private_metadata": '{"run": "r"}', "state": {"values": "x"}}
    bad_shape = {"type": "view_submission", "user": {"id": "U0ALICE"}, "view": view}
    bodies = [interaction_body(p) for p in (no_run, a_path, bad_view, bad_shape)]
    for body in (b"payload=not-json", b"nothing=here", *bodies):
        answer = post(endpoint, body, signed_headers(body))
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("interaction payload: ")
        assert "\n" not in answer.json()["error"]
    assert slack.workspace.requests == []
    endpoint.close()


def test_fireline_serve_mounts_the_endpoint_when_a_signing_secret_is_set(slack: SlackEnv, tmp_path: Path) -> None:
    from flows.engine.serve import RunManager, build_app

    app = build_app(RunManager(slack.settings(tmp_path)), "serve-token")

    async def send(body: bytes, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
            return await client.post("/slack/interactions", content=body, headers=headers)

    body = interaction_body(button_payload("U0ALICE", "fireline.ack", '{"run": "r", "step": null}'))
    assert asyncio.run(send(body, signed_headers(body, secret="forged"))).status_code == 401
    assert asyncio.run(send(b"payload=[", signed_headers(b"payload=["))).status_code == 400
    without = build_app(RunManager(slack.settings(tmp_path, signing_secret=None)), "serve-token")
    assert not any(getattr(r, "path", "") == "/slack" for r in without.routes)


def test_an_ack_from_a_slack_dm_stops_the_page(slack: SlackEnv, tmp_path: Path) -> None:
    """contacts.page DMs alice through the Slack notifier; her Ack button (read from the DM) acks the run."""
    settings = slack.settings(tmp_path).model_copy(update={"playbooks_dir": tmp_path / "playbooks"})
    folder = settings.playbooks_dir
    _playbook(folder, 1)  # writes people.yaml
    tree = {"apiVersion": "fireline/v1", "kind": "ContactTree", "metadata": {"name": "slack-tree", "version": 1},
            "levels": [{"targets": ["person:alice"], "ack_timeout": "10m"},
                       {"targets": ["person:bob"], "ack_timeout": "10m"}],
            "fallback": ["person:carol"]}  # fmt: skip
    (folder / "contact-trees").mkdir()
    (folder / "contact-trees" / "slack-tree.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    book = {"apiVersion": "fireline/v1", "kind": "Playbook", "contacts": "slack-tree",
            "metadata": {"name": "slack-page", "version": 1, "title": "Slack page", "severity": "high"},
            "steps": [{"id": "page", "action": "contacts.page", "with": {"message": "hosts isolated"}}]}  # fmt: skip
    path = folder / "slack-page.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(s=run_playbook(path, settings=settings, run_id="run-ack")))
    thread.start()
    endpoint = SlackInteractions(settings)
    try:
        deadline = time.monotonic() + 30
        while not slack.workspace.history("U0ALICE") and time.monotonic() < deadline:
            time.sleep(0.02)
        [dm] = slack.workspace.history("U0ALICE")
        ack = next(e for b in dm.blocks if b["type"] == "actions" for e in b["elements"])
        assert ack["action_id"] == "fireline.ack"
        body = interaction_body(button_payload("U0ALICE", "fireline.ack", ack["value"], channel=dm.channel))
        assert post(endpoint, body, signed_headers(body)).status_code == 200
        endpoint.wait_idle()
        thread.join(60)
    finally:
        endpoint.close()
    assert result["s"].outcome == "succeeded"
    events = list(read_events(result["s"].run_dir / "events.jsonl"))
    acked = [e for e in events if e["type"] == "page.acked"]
    assert [e["detail"].get("by") for e in acked] == ["alice"]
    assert slack.workspace.history("U0BOB") == []  # escalation stopped at level 0


def test_slack_gets_its_answer_before_the_work_is_done(live_run: LiveRun) -> None:
    """The 3-second rule: the HTTP answer does not wait for the directory, the run or Slack replies."""
    import integrations.slack.replies as real

    release = threading.Event()

    class SlowReplies:  # an injected delay in front of the real Slack calls
        tell = staticmethod(real.tell)
        open_reject_modal = staticmethod(real.open_reject_modal)

        @staticmethod
        def person_for(settings: Any, directory: Any, user: str) -> str | None:
            release.wait(30)
            return real.person_for(settings, directory, user)

    endpoint = SlackInteractions(live_run.endpoint.settings, replies=SlowReplies)
    value = live_run.root_button("fireline.approve")
    body = interaction_body(button_payload("U0ALICE", "fireline.ack", value.replace('"approve"', "null")))
    try:
        assert post(endpoint, body, signed_headers(body)).status_code == 200
        assert not (live_run.run_dir / "acks").exists()  # answered while the work still waits
        release.set()
        assert endpoint.wait_idle()
        assert len(list((live_run.run_dir / "acks").glob("*.json"))) == 1
    finally:
        release.set()
        endpoint.close()
    live_run.click("U0ALICE", "fireline.approve")
    live_run.click("U0BOB", "fireline.approve")
    assert live_run.finish().outcome == "succeeded"
