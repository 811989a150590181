"""pipeline.trigger through a real Prefect server: a deployment's flow run, once per incident and step.

No worker runs here: the flow run stays scheduled, which is all the trigger needs to record; the
wait is shown by moving the run to a terminal state through the API, as a worker would.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from flows.errors import ActionError
from integrations.data.pipeline import PipelineTrigger, TriggerParams
from tests.fixtures.prefect import PrefectSession
from tests.fixtures.prefect import prefect_session as prefect_session  # a session fixture
from tests.integrations.data.helpers import context

pytestmark = pytest.mark.prefect


def deployment(session: PrefectSession) -> str:
    from prefect.client.orchestration import SyncPrefectClient

    flow_name = f"reprocess-{uuid.uuid4().hex[:6]}"
    with SyncPrefectClient(session.api_url) as prefect:
        flow_id = prefect.create_flow_from_name(flow_name)
        prefect.create_deployment(flow_id=flow_id, name="clean-data")
    return f"{flow_name}/clean-data"


def params(session: PrefectSession, name: str, **extra: Any) -> TriggerParams:
    return TriggerParams.model_validate(
        {"engine": "prefect", "deployment": name, "api_url": session.api_url, "parameters": {"exclude": ["s3://d/x/"]}}
        | extra
    )


def test_one_flow_run_per_incident_and_step(prefect_session: PrefectSession, tmp_path: Path) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    name = deployment(prefect_session)
    ctx = context(tmp_path, step="reprocess")
    first = PipelineTrigger().apply(params(prefect_session, name), ctx)
    again = PipelineTrigger().apply(params(prefect_session, name), ctx)

    assert (again.run_id, again.reused, first.reused) == (first.run_id, True, False)
    with SyncPrefectClient(prefect_session.api_url) as prefect:
        run = prefect.read_flow_run(uuid.UUID(first.run_id))
        deployment_id = prefect.read_deployment_by_name(name).id
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

        runs = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]))
        )
    assert [str(r.id) for r in runs] == [first.run_id]  # read back from the server: one run, not two
    assert run.parameters == {"exclude": ["s3://d/x/"]}
    assert run.idempotency_key == "inc-7/reprocess"


def test_wait_reports_a_failed_run(prefect_session: PrefectSession, tmp_path: Path) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.states import Failed

    name = deployment(prefect_session)
    ctx = context(tmp_path, step="reprocess")
    started = PipelineTrigger().apply(params(prefect_session, name), ctx)
    with SyncPrefectClient(prefect_session.api_url) as prefect:
        prefect.set_flow_run_state(uuid.UUID(started.run_id), Failed(message="shard 3 unreadable"), force=True)
    with pytest.raises(ActionError, match="the run ended FAILED: shard 3 unreadable"):
        PipelineTrigger().apply(params(prefect_session, name, wait=True, poll_interval="1s"), ctx)


def test_a_deployment_that_does_not_exist(prefect_session: PrefectSession, tmp_path: Path) -> None:
    with pytest.raises(ActionError, match=r"^prefect deployment nope/nothing does not exist$"):
        PipelineTrigger().apply(params(prefect_session, "nope/nothing"), context(tmp_path))
