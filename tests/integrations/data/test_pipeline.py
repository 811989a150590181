"""pipeline.trigger: SageMaker pipeline executions on in-process moto, and the wait for a terminal state.

moto runs no pipeline step: an execution it starts is ``Succeeded`` at once, and it ignores
``ClientRequestToken``. The wait for ``Executing`` -> terminal is therefore tested with a scripted
status sequence, and idempotency is checked on what moto holds (one execution, not two).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flows.errors import ActionError, StepTimeoutError
from integrations.data.pipeline import PipelineTrigger, TriggerParams, wait_terminal
from tests.integrations.data.helpers import context

ROLE = "arn:aws:iam::123456789012:role/sagemaker-pipelines"


@pytest.fixture
def sm() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("sagemaker", region_name="us-east-1")
        client.create_pipeline(
            PipelineName="reprocess-fraud",
            RoleArn=ROLE,
            PipelineDefinition=json.dumps({"Version": "2020-12-01", "Parameters": [{"Name": "exclude"}], "Steps": []}),
        )
        yield client


def params(**extra: Any) -> TriggerParams:
    return TriggerParams.model_validate(
        {"engine": "sagemaker", "pipeline": "reprocess-fraud", "parameters": {"exclude": "s3://d/shards/"}, **extra}
    )


def test_starts_one_execution_per_incident_and_step(sm: Any, tmp_path: Path) -> None:
    ctx = context(tmp_path, step="reprocess", later=False)
    first = PipelineTrigger().apply(params(wait=True, poll_interval="1s"), ctx)
    again = PipelineTrigger().apply(params(), ctx)  # a retried or resumed step

    executions = sm.list_pipeline_executions(PipelineName="reprocess-fraud")["PipelineExecutionSummaries"]
    assert [e["PipelineExecutionArn"] for e in executions] == [first.run_id]
    assert (first.changed, again.changed, again.reused, again.run_id) == (True, False, True, first.run_id)
    assert first.state == "Succeeded"
    parameters = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=first.run_id)["PipelineParameters"]
    assert parameters == [{"Name": "exclude", "Value": "s3://d/shards/"}]
    other = PipelineTrigger().apply(params(), context(tmp_path, "other", step="reprocess-again", later=False))
    assert other.run_id != first.run_id


def test_a_pipeline_that_does_not_exist_is_named_in_plan_and_apply(sm: Any, tmp_path: Path) -> None:
    with pytest.raises(ActionError, match=r"^sagemaker pipeline nope does not exist$"):
        PipelineTrigger().plan(params(pipeline="nope"), context(tmp_path, mode="dry-run"))
    with pytest.raises(ActionError, match=r"^sagemaker pipeline nope does not exist$"):
        PipelineTrigger().apply(params(pipeline="nope"), context(tmp_path))


def test_dry_run_only_plans(sm: Any, tmp_path: Path) -> None:
    ctx = context(tmp_path, mode="dry-run", step="reprocess")
    plan = PipelineTrigger().plan(params(wait=True), ctx)
    assert plan.reads == ["sagemaker pipeline reprocess-fraud exists (Active)"]
    assert "idempotency key inc-7/reprocess" in plan.changes[0]
    with pytest.raises(ActionError, match="refused in dry-run mode"):
        PipelineTrigger().apply(params(), ctx)
    assert sm.list_pipeline_executions(PipelineName="reprocess-fraud")["PipelineExecutionSummaries"] == []


def test_wait_follows_the_status_until_terminal(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    states = iter([("Executing", ""), ("Executing", ""), ("Failed", "step Train: out of memory")])
    seen: list[str] = []

    def read() -> tuple[str, str]:
        state = next(states)
        seen.append(state[0])
        return state

    with pytest.raises(ActionError, match="the run ended Failed: step Train: out of memory"):
        wait_terminal(ctx, read, {"Succeeded": True, "Failed": False}.get, 0)
    assert seen == ["Executing", "Executing", "Failed"]


def test_the_step_timeout_ends_the_wait(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    ctx.deadline = time.monotonic() - 1  # the step's timeout has passed
    with pytest.raises(StepTimeoutError):
        wait_terminal(ctx, lambda: ("Executing", ""), {"Succeeded": True}.get, 0)


def test_params_name_what_each_engine_needs() -> None:
    with pytest.raises(ValueError, match="needs deployment: flow-name/deployment-name"):
        TriggerParams.model_validate({"engine": "prefect", "deployment": "no-slash"})
    with pytest.raises(ValueError, match="engine 'sagemaker' needs pipeline"):
        TriggerParams.model_validate({"engine": "sagemaker"})
