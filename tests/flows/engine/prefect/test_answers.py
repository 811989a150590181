"""Approvals answered through Prefect: flow run input (API) and a Prefect Variable (what the UI can edit)."""

from __future__ import annotations

import contextvars
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flows.engine.prefect_answers import approval_key_prefix, approval_variable_name, send_answer
from tests.fixtures.prefect import PrefectSession

pytestmark = pytest.mark.prefect

TWO_APPROVALS = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: approve-via-prefect, version: 1, title: Approvals through Prefect}
steps:
  - id: approve
    action: approval
    with: {approvers: ["user:alice"], timeout: 30s}
  - id: second_gate
    action: approval
    with: {approvers: ["user:bob"], timeout: 30s}
  - id: after
    action: log
    with: {message: approved twice}
"""


def test_keys_and_variable_names_are_valid_for_prefect() -> None:
    assert approval_key_prefix("second_gate").startswith("fireline-approval-second-gate-")
    assert approval_key_prefix("a_b") != approval_key_prefix("a-b")
    assert (
        approval_variable_name("20261127T0100Z-x-ab12", "second_gate")
        == "fireline_approve_20261127t0100z_x_ab12_second_gate"
    )


def _flow_run_id(run_id: str, timeout: float = 20.0) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"run:{run_id}"])))
            if runs:
                return str(runs[0].id)
            time.sleep(0.1)
    raise AssertionError("the flow run did not appear")


def _waiting_for(events: Path, step: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events.exists():
            for line in events.read_text(encoding="utf-8").splitlines():
                event = json.loads(line)
                if event["type"] == "approval.requested" and event["step"] == step:
                    return
        time.sleep(0.1)
    raise AssertionError(f"{step} never asked for approval")


def test_answers_sent_to_the_flow_run_and_set_as_variable_are_taken(
    prefect_session: PrefectSession, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import VariableCreate

    from flows.engine.prefect_flow import run_respond

    playbook = tmp_path / "approve.yaml"
    playbook.write_text(TWO_APPROVALS, encoding="utf-8")
    settings = prefect_session.settings_for(tmp_path)
    run_id = "approve-via-prefect-1"
    box: dict[str, Any] = {}

    def drive() -> None:
        box["state"], box["summary"] = run_respond(str(playbook), run_id=run_id, settings=settings)

    runner = threading.Thread(target=contextvars.copy_context().run, args=(drive,), daemon=True)
    runner.start()
    events = settings.runs_dir / run_id / "events.jsonl"
    flow_run_id = _flow_run_id(run_id)
    _waiting_for(events, "approve")
    send_answer(flow_run_id, "approve", by="alice", decision="approve", reason="checked the blast radius")
    _waiting_for(events, "second_gate")
    with get_client(sync_client=True) as client:
        name = approval_variable_name(run_id, "second_gate")
        client.create_variable(VariableCreate(name=name, value={"by": "bob", "decision": "approve", "reason": "ok"}))
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert box["summary"].outcome == "succeeded"
    granted = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    granted = [e for e in granted if e["type"] == "approval.granted"]
    assert [(e["step"], e["detail"]["by"]) for e in granted] == [("approve", ["alice"]), ("second_gate", ["bob"])]
    assert all(a["how"] == "prefect" for e in granted for a in e["detail"]["answers"])
