"""Model actions report their targets' real tags at plan time, so guards refuse protected models.

A SageMaker endpoint tagged ``fireline/protected=true`` is refused for ``model.quarantine`` and
``model.rollback`` exactly as for ``aws.sagemaker.isolate_endpoint``; an MLflow registered model
carrying the tag likewise. Tags are read from in-process moto and from the real MLflow server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flows.actions.registry import Plan
from flows.engine.guards import check_plans
from flows.language.spec import Guards
from integrations.aws.sagemaker import IsolateEndpoint, IsolateEndpointParams
from integrations.models.actions import ModelQuarantine, ModelRollback, ModelVerify, QuarantineParams, RollbackParams
from integrations.models.verify import VerifyParams
from tests.fixtures.mlflow import MlflowServer
from tests.integrations.models.helpers import ctx_at

PROTECTED = {"Key": "fireline/protected", "Value": "true"}


@pytest.fixture
def endpoints() -> Iterator[Any]:
    with mock_aws():
        sm = boto3.client("sagemaker", region_name="us-east-1")
        sm.create_model(
            ModelName="m",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
            PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"},
        )
        variant = {"VariantName": "a", "ModelName": "m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[variant])
        sm.create_endpoint(EndpointName="canary", EndpointConfigName="c", Tags=[PROTECTED])
        sm.create_endpoint(EndpointName="fraud", EndpointConfigName="c", Tags=[{"Key": "env", "Value": "ml-prod"}])
        yield sm


def _refusals(plan: Plan, guards: Guards | None = None) -> list[str]:
    return [r.guard for r in check_plans(guards or Guards(), [plan], live=True)]


def test_protected_endpoint_is_refused_for_model_actions_like_for_isolation(endpoints: Any, tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path)
    plans = {
        "aws.sagemaker.isolate_endpoint": IsolateEndpoint().plan(IsolateEndpointParams(endpoint_name="canary"), ctx),
        "model.quarantine": ModelQuarantine().plan(
            QuarantineParams(registry="sagemaker", endpoint="canary", reason="poisoned"), ctx
        ),
        "model.rollback": ModelRollback().plan(RollbackParams(registry="sagemaker", endpoint="canary"), ctx),
    }
    for name, plan in plans.items():
        assert plan.targets[0].tags == {"fireline/protected": "true"}, name
        assert _refusals(plan) == ["protected_tags"], name


def test_required_tags_are_checked_on_the_real_endpoint_tags(endpoints: Any, tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path)
    guards = Guards(require_tags={"env": "ml-prod"})
    fine = ModelRollback().plan(RollbackParams(registry="sagemaker", endpoint="fraud"), ctx)
    assert _refusals(fine, guards) == []
    verify = ModelVerify().plan(VerifyParams(registry="sagemaker", endpoint="fraud"), ctx)
    assert verify.targets[0].tags == {"env": "ml-prod"}
    lacking = ModelQuarantine().plan(QuarantineParams(registry="sagemaker", endpoint="canary", reason="x"), ctx)
    assert sorted(_refusals(lacking, guards)) == ["protected_tags", "require_tags"]


@pytest.mark.mlflow
def test_protected_mlflow_model_is_refused(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    name = f"protected-{uuid.uuid4().hex[:8]}"
    MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri).create_registered_model(
        name, tags={"fireline/protected": "true"}
    )
    plan = ModelRollback().plan(
        RollbackParams(registry="mlflow", model_name=name, tracking_uri=mlflow_server.uri), ctx_at(tmp_path)
    )
    assert plan.targets[0].tags == {"fireline/protected": "true"}
    assert _refusals(plan) == ["protected_tags"]


def test_unreachable_mlflow_leaves_tags_unknown_with_a_warning(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    params = QuarantineParams(registry="mlflow", model_name="m", tracking_uri=f"http://127.0.0.1:{port}", reason="x")
    plan = ModelQuarantine().plan(params, ctx_at(tmp_path))
    assert plan.targets[0].tags is None
    assert any("does not answer" in w for w in plan.warnings)
