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


@pytest.mark.parametrize("live_run", [(1, "user:Alice")], indirect=True)
def test_self_approval_is_refused_by_slack_id(live_run: LiveRun) -> None:
    live_run.click("U0ALICE", "fireline.approve")  # Alice triggered the run as "Alice"
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
    for body in (b"payload=not-json", b"nothing=here", interaction_body(no_run)):
        answer = post(endpoint, body, signed_headers(body))
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("interaction payload: ")
        assert "\n" not in answer.json()["error"]
    assert slack.workspace.requests == []
    endpoint.close()
