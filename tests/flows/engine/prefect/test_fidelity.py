"""What Prefect shows is what happened: logs, failures before a task run, typed parameters, warm-up, resume."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.prefect import PrefectSession
from tests.flows.engine.prefect.test_flow import _task_runs

pytestmark = pytest.mark.prefect

FAILS_BEFORE_TASK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: fails-early, version: 1, title: A step fails while it is planned}
steps:
  - id: fine
    action: log
    with: {message: "fine"}
  - id: bad
    action: log
    with: {message: "{{ alert.labels.nowhere }}"}
"""

FAILS_IN_APPLY = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: fails-in-apply, version: 1, title: A step's action fails}
steps:
  - id: fine
    action: log
    with: {message: "fine"}
  - id: stuck
    action: fail
    needs: [fine]
    with: {message: "door stuck"}
"""

NEEDS_ALERT = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: needs-alert, version: 1, title: Needs an alert}
inputs:
  endpoint_name: {type: string, default: "{{ alert.labels.endpoint }}"}
steps:
  - id: note
    action: log
    with: {message: "{{ inputs.endpoint_name }}"}
"""


def _logs(flow_run_id: Any, wanted: str, timeout: float = 20.0) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            messages = [log.message for log in logs]
            if any(wanted in m for m in messages) or time.monotonic() > deadline:
                return messages
            time.sleep(0.2)


def _failed_run(prefect_session: PrefectSession, tmp_path: Path, text: str, mode: str) -> tuple[Any, dict[str, Any]]:
    """Run a playbook that fails as a flow run; return the flow run id and its task runs by name."""
    from flows.engine.prefect_flow import run_respond

    book = tmp_path / "fails.yaml"
    book.write_text(text)
    state, summary = run_respond(str(book), mode=mode, settings=prefect_session.settings_for(tmp_path))
    assert state.is_failed()
    assert summary is not None
    assert summary.outcome == "failed"
    flow_run_id = state.state_details.flow_run_id
    return flow_run_id, {r.name: r for r in _task_runs(flow_run_id, expected=2)}


def test_logs_reach_prefect_and_an_early_failure_is_a_failed_task_run(
    prefect_session: PrefectSession, tmp_path: Path
) -> None:
    flow_run_id, runs = _failed_run(prefect_session, tmp_path, FAILS_BEFORE_TASK, "dry-run")
    assert runs["fine"].state.is_completed()
    assert runs["bad:plan"].state.is_failed()  # the UI shows which step failed
    messages = _logs(flow_run_id, "bad failed")
    assert any(m.startswith("fine succeeded") for m in messages)
    assert any(m.startswith("bad failed") for m in messages)


def test_a_step_whose_action_fails_is_a_failed_task_run(prefect_session: PrefectSession, tmp_path: Path) -> None:
    _, runs = _failed_run(prefect_session, tmp_path, FAILS_IN_APPLY, "live")
    assert runs["fine"].state.is_completed()
    assert runs["stuck"].state.is_failed()  # not a green task under a red flow run
    assert "door stuck" in (runs["stuck"].state.message or "")
    assert "stuck:plan" not in runs  # it had a task run of its own


def test_mode_is_an_enum_and_a_missing_alert_is_one_line(prefect_session: PrefectSession, tmp_path: Path) -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.engine.prefect_flow import respond, run_respond

    schema = parameter_schema(respond).model_dump()
    mode = schema["properties"]["mode"]
    enum = mode.get("enum") or schema["definitions"][mode["$ref"].split("/")[-1]]["enum"] if "$ref" in mode else mode
    assert set(enum if isinstance(enum, list) else mode["enum"]) == {"live", "dry-run", "drill"}
    bad_mode: Any = "yolo"
    state = respond(playbook="x", mode=bad_mode, return_state=True)
    assert state.is_failed()
    assert "mode" in str(state.message)

    book = tmp_path / "needs-alert.yaml"
    book.write_text(NEEDS_ALERT)
    state, summary = run_respond(str(book), mode="dry-run", settings=prefect_session.settings_for(tmp_path))
    assert summary is None
    assert state.is_failed()
    assert "input 'endpoint_name'" in str(state.message)
    assert "\n" not in str(state.message)


def test_warm_up_is_named_and_not_a_fireline_run(prefect_session: PrefectSession) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterTags

    from flows.engine.serve import WARM_UP_NAME, _warm_up

    _warm_up()
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[WARM_UP_NAME])))
        assert runs
        assert all("fireline-internal" in r.tags and "fireline" not in r.tags for r in runs)
        listed = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["fireline"])))
        assert WARM_UP_NAME not in {r.name for r in listed}


def test_a_resumed_run_flow_run_ends_in_its_true_state(prefect_session: PrefectSession) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    from flows.engine.prefect_flow import respond
    from flows.engine.prefect_settle import settle_flow_runs

    with get_client(sync_client=True) as client:
        crashed = client.create_flow_run(flow=respond, tags=["fireline", "run:resumed-1"], state=Crashed())
        other = client.create_flow_run(flow=respond, tags=["fireline", "run:resumed-2"], state=Crashed())
    assert settle_flow_runs("resumed-1", "succeeded", prefect_session.api_url) == [str(crashed.id)]
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(crashed.id).state
        assert state is not None
        assert state.is_completed()
        assert "after fireline resume" in str(state.message)
        untouched = client.read_flow_run(other.id).state
        assert untouched is not None
        assert untouched.is_crashed()
    assert settle_flow_runs("resumed-2", "failed", prefect_session.api_url) == [str(other.id)]
