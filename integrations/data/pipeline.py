"""``pipeline.trigger``: start reprocessing or retraining on clean data, once per incident and step.

Two engines:

- ``prefect`` (:mod:`integrations.data.pipeline_prefect`): a flow run of a deployment created with Prefect's
  idempotency key set to the step's (incident, step, item): Prefect returns the existing flow run
  for a key it has seen, so a retried or resumed step never starts a second run. The API is
  ``api_url`` when given, else ``prefect.api_url`` in the settings, else Prefect's own settings.
- ``sagemaker``: a pipeline execution (``StartPipelineExecution``) whose ``ClientRequestToken`` and
  display name derive from the same key; before starting, executions created since the incident
  began are searched for that display name (moto ignores ``ClientRequestToken``; AWS honours it).

With ``wait: true`` the step polls until the run reaches a terminal state, and fails when it
failed, crashed or was stopped; the step's timeout ends the wait. Dry-run and drills only plan
(for SageMaker, the plan reads the pipeline so a missing one is named before anything runs).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, Plan, Target, action
from flows.errors import ActionError, IntegrationError
from integrations.aws.common import plan_read
from integrations.aws.session import aws_errors, client, known, tag_dict
from integrations.data.pipeline_params import TriggerParams, TriggerResult, wait_terminal

SAGEMAKER_TERMINAL = {"Succeeded": True, "Failed": False, "Stopped": False}
PERMISSIONS = (
    "sagemaker:DescribePipeline",
    "sagemaker:ListTags",
    "sagemaker:StartPipelineExecution",
    "sagemaker:ListPipelineExecutions",
    "sagemaker:DescribePipelineExecution",
)


def _display_name(ctx: ActionContext) -> str:
    return f"fireline-{ctx.short_token[:24]}"


def _sagemaker_find(sm: Any, ctx: ActionContext, pipeline: str) -> str | None:
    """The execution this step already started (same display name, created since the incident began)."""
    since = ctx.incident.started_at - timedelta(minutes=5)
    pages = sm.get_paginator("list_pipeline_executions").paginate(
        PipelineName=pipeline, CreatedAfter=since, SortBy="CreationTime", SortOrder="Descending"
    )
    for page in pages:
        for summary in page.get("PipelineExecutionSummaries", []):
            arn = str(summary["PipelineExecutionArn"])
            described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
            if described.get("PipelineExecutionDisplayName") == _display_name(ctx):
                return arn
    return None


def _sagemaker(params: TriggerParams, ctx: ActionContext) -> TriggerResult:
    sm = client(ctx, "sagemaker", params.region)
    pipeline = str(params.pipeline)
    try:
        with aws_errors(f"look up executions of sagemaker pipeline {pipeline}"):
            found = _sagemaker_find(sm, ctx, pipeline)
            arn = found or str(
                sm.start_pipeline_execution(
                    PipelineName=pipeline,
                    PipelineExecutionDisplayName=_display_name(ctx),
                    PipelineExecutionDescription=f"fireline {ctx.idempotency_key}"[:3072],
                    PipelineParameters=[{"Name": k, "Value": _text(v)} for k, v in params.parameters.items()],
                    ClientRequestToken=ctx.short_token,
                )["PipelineExecutionArn"]
            )
    except IntegrationError as e:
        if _missing_pipeline(e):
            raise ActionError(f"sagemaker pipeline {pipeline} does not exist", details=e.details) from e
        raise

    def read() -> tuple[str, str]:
        with aws_errors(f"describe pipeline execution {arn}"):
            d = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        return str(d.get("PipelineExecutionStatus")), str(d.get("FailureReason") or "")

    state = read()[0]
    if params.wait:
        state = wait_terminal(ctx, read, SAGEMAKER_TERMINAL.get, params.poll_interval)
    return TriggerResult(
        engine="sagemaker",
        target=params.label,
        run_id=arn,
        state=state,
        reused=found is not None,
        parameters=params.parameters,
        changed=found is None,
        summary=f"{'found' if found else 'started'} execution {arn.rsplit('/', 1)[-1]} of {pipeline} ({state})",
    )


def _missing_pipeline(error: IntegrationError) -> bool:
    # AWS answers ResourceNotFound; moto a ValidationException "Could not find pipeline ...".
    return "Could not find pipeline" in str(error) or "NotFound" in str(error.details.get("code", ""))


def _describe_pipeline(params: TriggerParams, ctx: ActionContext) -> dict[str, Any]:
    """The pipeline, read for a plan; a pipeline that does not exist is bad input, named at once."""
    sm = client(ctx, "sagemaker", params.region)
    try:
        with aws_errors(f"describe sagemaker pipeline {params.pipeline}"):
            found: dict[str, Any] = sm.describe_pipeline(PipelineName=params.pipeline)
    except IntegrationError as e:
        if _missing_pipeline(e):
            raise ActionError(f"sagemaker pipeline {params.pipeline} does not exist", details=e.details) from e
        raise
    return found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


@action(
    "pipeline.trigger",
    kind=ActionKind.RECOVERY,
    params=TriggerParams,
    result=TriggerResult,
    permissions=PERMISSIONS,
)
class PipelineTrigger(Action[TriggerParams, TriggerResult]):
    """Start a reprocessing or retraining run (Prefect deployment or SageMaker pipeline), once."""

    def plan(self, params: TriggerParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        reads: list[str] = []
        if params.engine == "sagemaker":
            found = plan_read(
                ctx, f"describe sagemaker pipeline {params.pipeline}", lambda: _describe_pipeline(params, ctx), warnings
            )
            target = Target(type="aws:sagemaker:pipeline", id=str(params.pipeline), region=params.region)
            if found is not None:
                reads.append(f"sagemaker pipeline {params.pipeline} exists ({found.get('PipelineStatus')})")
                sm = client(ctx, "sagemaker", params.region)
                arn = str(found["PipelineArn"])
                # Guards need the pipeline's tags (a protected pipeline is never started).
                tags = plan_read(ctx, f"list the tags of {arn}", lambda: sm.list_tags(ResourceArn=arn), warnings)
                if tags is not None:
                    target = target.model_copy(update={"arn": arn, "tags": tag_dict(tags.get("Tags"))})
        else:
            from integrations.data.pipeline_prefect import prefect_tags

            target = Target(
                type="prefect:deployment", id=str(params.deployment), tags=prefect_tags(params, ctx, warnings)
            )
        shown = json.dumps(params.parameters, sort_keys=True, default=str)
        changes = [f"start a run of {params.label} with parameters {shown} (idempotency key {ctx.idempotency_key})"]
        if params.wait:
            changes.append("wait for it to finish, within the step's timeout; fail if it fails")
        return Plan(
            action=self.name,
            summary=f"trigger {params.label}",
            targets=[target],
            changes=changes,
            reads=reads,
            warnings=warnings,
        )

    def apply(self, params: TriggerParams, ctx: ActionContext) -> TriggerResult:
        ctx.require_live("pipeline.trigger")
        if params.engine == "sagemaker":
            result = _sagemaker(params, ctx)
        else:
            from integrations.data.pipeline_prefect import prefect_run

            result = prefect_run(params, ctx)
        ctx.emit(
            "pipeline.triggered",
            {"engine": result.engine, "target": result.target, "run_id": result.run_id, "state": result.state},
        )
        return result

    def policy_statements(self, params: TriggerParams | None) -> list[dict[str, Any]]:
        if known(params, "engine") == "prefect":
            return []  # Prefect's API is not AWS
        name = known(params, "pipeline")
        resource = f"arn:aws:sagemaker:*:*:pipeline/{name.lower()}" if isinstance(name, str) else "*"
        return [
            {
                "Effect": "Allow",
                "Action": list(PERMISSIONS),
                "Resource": [resource, f"{resource}/execution/*"] if resource != "*" else "*",
            }
        ]
