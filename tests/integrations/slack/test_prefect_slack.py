"""Slack buttons reach a run that goes on as a Prefect flow run, and its timeline follows it."""

from __future__ import annotations

import contextvars
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.prefect import PrefectSession, prefect_session
from tests.fixtures.slack_fake import SlackEnv, button_payload, interaction_body, signed_headers
from tests.integrations.slack.test_interactions import LiveRun, _playbook, post

pytestmark = pytest.mark.prefect
__all__ = ["prefect_session"]


def test_slack_approvals_reach_a_prefect_flow_run(
    prefect_session: PrefectSession, slack: SlackEnv, tmp_path: Path
) -> None:
    from flows.engine.prefect_flow import run_respond
    from flows.people.interactions import SlackInteractions

    settings = prefect_session.settings_for(
        tmp_path, slack=slack.slack_settings(), playbooks_dir=tmp_path / "playbooks"
    )
    path = _playbook(settings.playbooks_dir, 2)
    box: dict[str, Any] = {}

    def drive() -> None:
        box["state"], box["summary"] = run_respond(str(path), run_id="prefect-slack-1", settings=settings)

    runner = threading.Thread(target=contextvars.copy_context().run, args=(drive,), daemon=True)
    runner.start()
    endpoint = SlackInteractions(settings)
    try:
        live = LiveRun(slack, endpoint, runner, box, settings.runs_dir / "prefect-slack-1")
        for user in ("U0ALICE", "U0BOB"):
            body = interaction_body(
                button_payload(user, "fireline.approve", live.root_button("fireline.approve", timeout=60))
            )
            assert post(endpoint, body, signed_headers(body)).status_code == 200
        endpoint.wait_idle()
        runner.join(60)
    finally:
        endpoint.close()
    assert not runner.is_alive()
    assert box["summary"].outcome == "succeeded"
    assert box["state"].is_completed()
    assert sorted(live.events("approval.granted")[0]["detail"]["by"]) == ["alice", "bob"]
    assert "succeeded" in slack.workspace.history("inc-slack")[0].text
