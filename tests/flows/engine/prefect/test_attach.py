"""Containment first: a run handed to serve starts before its flow run, which attaches and tells the truth.

Read at the Prefect server: the task runs of the steps that ran before the flow run existed (with
their real times and states), the step lines in the flow run's log, and the flow run's final state;
and in the run record: ``prefect.attached`` and ``trigger.flow_run_id``.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from flows.engine.serve_runs import RunManager, RunRequest
from tests.fixtures.prefect import PrefectSession

pytestmark = pytest.mark.prefect

BOOK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {{name: {name}, version: 1, title: Containment first}}
steps:
  - id: contain
    action: log
    with: {{message: "contained"}}
  - id: after
    action: {second}
    needs: [contain]
    with: {with_}
"""


def _run(
    prefect_session: PrefectSession, tmp_path: Path, name: str, second: str, with_: str, book: str = BOOK
) -> tuple[Any, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    path = tmp_path / f"{name}.yaml"
    path.write_text(book.format(name=name, second=second, with_=with_))
    manager = RunManager(prefect_session.settings_for(tmp_path))
    slot = manager.start(RunRequest(playbook=str(path), mode="live"))
    assert slot.wait(300)  # a guard against a hang only
    manager.shutdown(0.0, threading.Event())
    with get_client(sync_client=True) as client:
        flt = FlowRunFilter(tags=FlowRunFilterTags(all_=[f"run:{slot.run_id}"]))
        (flow_run,) = client.read_flow_runs(flow_run_filter=flt, limit=5)
    return slot, flow_run


def _task_runs(flow_run_id: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name: r for r in runs}


def _log_lines(flow_run_id: Any) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def test_the_first_step_runs_before_the_flow_run_and_is_recorded_after(
    prefect_session: PrefectSession, tmp_path: Path
) -> None:
    slot, flow_run = _run(prefect_session, tmp_path, "first-contain", "log", '{message: "after"}')
    assert (slot.status, slot.outcome) == ("finished", "succeeded"), slot.error
    assert flow_run.state.is_completed()
    events = [json.loads(line) for line in (slot.run_dir / "events.jsonl").read_text().splitlines()]
    contained = next(e for e in events if e["type"] == "step.succeeded" and e["step"] == "contain")
    attached = next(e for e in events if e["type"] == "prefect.attached")
    assert attached["detail"]["flow_run_id"] == str(flow_run.id)
    assert events.index(contained) < events.index(attached)  # containment did not wait for Prefect
    doc = json.loads((slot.run_dir / "run.json").read_text())
    assert doc["trigger"]["flow_run_id"] == str(flow_run.id)

    tasks = _task_runs(flow_run.id)
    assert set(tasks) == {"contain", "after"}
    assert all(t.state.is_completed() for t in tasks.values())
    early = tasks["contain"]
    message = early.state.message or ""
    assert message.endswith("UTC, before this flow run was created")
    started, ended = (datetime.strptime(t, "%H:%M:%S.%f").time() for t in message.split()[1].split("-"))
    succeeded = datetime.fromisoformat(contained["at"].replace("Z", "+00:00"))
    day = succeeded.date()
    ran_from = datetime.combine(day, started, tzinfo=succeeded.tzinfo)
    ran_to = datetime.combine(day, ended, tzinfo=succeeded.tzinfo)
    assert ran_from <= ran_to <= succeeded  # its real times (the server stamps states with its own clock)
    assert (succeeded - ran_from).total_seconds() < 60
    lines = _log_lines(flow_run.id)
    assert "contain succeeded" in lines
    assert "after succeeded" in lines


def test_a_failure_before_the_flow_run_is_a_failed_task_run_and_a_failed_flow_run(
    prefect_session: PrefectSession, tmp_path: Path
) -> None:
    # The first step fails; its flow run is created only after that (the head start), so its task
    # run is recorded after the fact, Failed, with the error.
    book = BOOK.replace(
        'action: log\n    with: {{message: "contained"}}', 'action: fail\n    with: {{message: "door stuck"}}'
    )
    assert "door stuck" in book
    slot, flow_run = _run(prefect_session, tmp_path, "first-fails", "log", '{message: "after"}', book=book)
    assert slot.status == "finished"
    assert slot.outcome == "failed"
    assert flow_run.state.is_failed()
    tasks = _task_runs(flow_run.id)
    assert set(tasks) == {"contain"}  # the step after it never ran
    assert tasks["contain"].state.is_failed()  # the action failed: the task run is Failed, with the error
    assert "door stuck" in (tasks["contain"].state.message or "")
    assert any(line.startswith("contain failed") and "door stuck" in line for line in _log_lines(flow_run.id))
