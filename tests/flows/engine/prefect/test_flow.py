"""A playbook as a real Prefect flow run: task runs per step item, parallel branches, the report artifact."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.prefect import PrefectSession

pytestmark = pytest.mark.prefect


def _task_runs(flow_run_id: Any, expected: int, timeout: float = 10.0) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    # The server records task runs from events in batches: poll until all arrived and finished.
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            done = [r for r in runs if r.state is not None and r.state.is_final()]
            if len(done) >= expected or time.monotonic() > deadline:
                return done
            time.sleep(0.2)


def test_playbook_runs_as_flow_run_with_a_task_run_per_step_item(
    prefect_session: PrefectSession, parallel_playbook: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    from flows.engine.prefect_flow import run_respond

    settings = prefect_session.settings_for(tmp_path)
    state, summary = run_respond(str(parallel_playbook), mode="live", settings=settings)
    assert state.is_completed(), state.message
    assert summary is not None
    assert summary.outcome == "succeeded"
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        assert flow_run.name == f"prefect-check/{summary.run_id}"
        assert {"fireline", f"run:{summary.run_id}", "playbook:prefect-check", "mode:live"} <= set(flow_run.tags)
        artifacts = client.read_artifacts()
        assert any(a.key and summary.run_id.lower().replace("_", "-") in a.key for a in artifacts)
        kinds = {a.key.split("-")[1]: a for a in artifacts if a.key and summary.run_id.lower() in a.key}
        assert kinds["report"].type == "markdown"
        assert "## Timeline" in str(kinds["report"].data)
        assert kinds["timeline"].type == "table"
        assert '"step": "left"' in str(kinds["timeline"].data)

    runs = _task_runs(flow_run_id, expected=4)
    assert all(r.state is not None and r.state.is_completed() for r in runs)
    # One task run per step item; planning a step (guards, plan()) is not a task run of its own.
    policy = " (retries 2, timeout 30s)"
    assert sorted(r.name for r in runs) == sorted(["left", "right", f"each[a]{policy}", f"each[b]{policy}"])
    assert all(r.tags == [] for r in runs)  # any tag costs an API call per task run
    left, right = (_longest(runs, name) for name in ("left", "right"))
    # Independent steps overlap in time: each started before the other ended.
    assert left[0] < right[1]
    assert right[0] < left[1]


def _longest(runs: list[Any], name: str) -> tuple[Any, Any]:
    spans = [(r.start_time, r.end_time) for r in runs if r.name == name and r.start_time and r.end_time]
    return max(spans, key=lambda span: span[1] - span[0])


def test_failed_run_fails_the_flow_run(prefect_session: PrefectSession, tmp_path: Path) -> None:
    from flows.engine.prefect_flow import run_respond

    path = tmp_path / "fails.yaml"
    path.write_text(
        "apiVersion: fireline/v1\nkind: Playbook\nmetadata: {name: fails, version: 1, title: Fails}\n"
        "steps:\n  - {id: boom, action: fail, with: {message: on purpose}}\n",
        encoding="utf-8",
    )
    state, summary = run_respond(str(path), settings=prefect_session.settings_for(tmp_path))
    assert summary is not None
    assert summary.outcome == "failed"
    assert state.is_failed()
    assert summary.run_id in (state.message or "")
