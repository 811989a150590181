"""Blast radius and taint-aware rollback over SageMaker model packages, on in-process moto.

One version's training data is known only from SageMaker's own lineage: its model package names
the training job that produced it (``MetadataProperties.GeneratedBy``), whose input channel reads
the tainted prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from integrations.data.radius import BlastRadiusParams, DataBlastRadius
from integrations.models.actions import ModelRollback, RollbackParams
from integrations.models.attest import attest
from integrations.models.base import KEY_QUARANTINED, TargetParams
from tests.integrations.data.helpers import DATA, POISONED, context, seed_data

GROUP, ENDPOINT, MODELS = "fraud-scoring-models", "fraud-scoring", "ml-model-registry"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
TARGET = {"registry": "sagemaker", "endpoint": ENDPOINT, "model_package_group": GROUP}


def register(sm: Any, s3: Any, name: str, generated_by: str | None = None) -> str:
    s3.put_object(Bucket=MODELS, Key=f"{name}/model.tar.gz", Body=f"weights {name}".encode())
    extra = {"MetadataProperties": {"GeneratedBy": generated_by}} if generated_by else {}
    return str(
        sm.create_model_package(
            ModelPackageGroupName=GROUP,
            InferenceSpecification={
                "Containers": [{"Image": "img", "ModelDataUrl": f"s3://{MODELS}/{name}/model.tar.gz"}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus="Approved",
            **extra,
        )["ModelPackageArn"]
    )


def training_job(sm: Any, name: str, uri: str) -> str:
    sm.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
        RoleArn=ROLE,
        InputDataConfig=[
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{MODELS}/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
    )
    return f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}"


@pytest.fixture
def aws_clients() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1"), boto3.client("sagemaker", region_name="us-east-1")


@pytest.fixture
def history(aws_clients: tuple[Any, Any], tmp_path: Path) -> dict[str, str]:
    s3, sm = aws_clients
    seed_data(s3)
    s3.create_bucket(Bucket=MODELS)
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    admin = context(tmp_path, "attest", step="attest")
    target = TargetParams(registry="sagemaker", model_package_group=GROUP)
    clean = register(sm, s3, "v1")
    attest(admin, target, clean, by="ci:train", training_data=[f"s3://{DATA}/curated/"])
    lineage_only = register(sm, s3, "v2", generated_by=training_job(sm, "train-v2", f"s3://{DATA}/shards/"))
    attest(admin, target, lineage_only, by="ci:train")  # no --training-data: only SageMaker knows
    poisoned = register(sm, s3, "v3")
    attest(admin, target, poisoned, by="ci:train", training_data=[f"s3://{DATA}/shards/"])
    variants = []
    for variant, arn, weight in (("stable", clean, 0.0), ("canary", poisoned, 1.0)):
        sm.create_model(ModelName=f"m-{variant}", ExecutionRoleArn=ROLE, PrimaryContainer={"ModelPackageName": arn})
        variants.append(
            {
                "VariantName": variant,
                "ModelName": f"m-{variant}",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
                "InitialVariantWeight": weight,
            }
        )
    sm.create_endpoint_config(EndpointConfigName="cfg", ProductionVariants=variants)
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="cfg")
    return {"clean": clean, "lineage_only": lineage_only, "poisoned": poisoned}


def test_blast_radius_finds_attested_and_lineage_only_versions_with_serving_status(
    history: dict[str, str], tmp_path: Path
) -> None:
    params = BlastRadiusParams.model_validate({"datasets": [POISONED], "registries": [TARGET]})
    found = DataBlastRadius().apply(params, context(tmp_path, "radius", step="radius"))

    by_version = {m["version"]: m for m in found.models}
    assert set(by_version) == {history["poisoned"], history["lineage_only"]}
    assert by_version[history["poisoned"]]["serving_via"] == [f"endpoint {ENDPOINT} variant canary (weight 1)"]
    assert by_version[history["lineage_only"]]["serving"] is False
    assert by_version[history["lineage_only"]]["trained_on"][0]["source"] == "sagemaker_training_job:train-v2/train"
    assert found.serving_targets[0]["versions"] == [history["poisoned"]]


def test_rollback_shifts_traffic_to_the_clean_version(
    aws_clients: tuple[Any, Any], history: dict[str, str], tmp_path: Path
) -> None:
    _, sm = aws_clients
    params = RollbackParams.model_validate({**TARGET, "known_good": {"exclude_training_data": [POISONED]}})

    result = ModelRollback().apply(params, context(tmp_path, "rollback", step="rollback"))

    assert result.chosen["id"] == history["clean"]
    weights = {
        v["VariantName"]: v["CurrentWeight"] for v in sm.describe_endpoint(EndpointName=ENDPOINT)["ProductionVariants"]
    }
    assert weights == {"stable": 1.0, "canary": 0.0}
    reasons = {r.version: r.message for r in result.rejections}
    assert reasons[history["poisoned"]].endswith(f"(attestation), inside the tainted dataset {POISONED}")
    assert reasons[history["lineage_only"]].endswith(f"(sagemaker_training_job), inside the tainted dataset {POISONED}")
    metadata = sm.describe_model_package(ModelPackageName=history["poisoned"])["CustomerMetadataProperties"]
    assert metadata[KEY_QUARANTINED].startswith("inc-7")


def test_dry_run_plan_previews_the_clean_choice_and_changes_nothing(
    aws_clients: tuple[Any, Any], history: dict[str, str], tmp_path: Path
) -> None:
    _, sm = aws_clients
    params = RollbackParams.model_validate({**TARGET, "known_good": {"exclude_training_data": [POISONED]}})
    plan = ModelRollback().plan(params, context(tmp_path, "plan", mode="dry-run", step="rollback"))
    assert any("fraud-scoring-models v1 would be chosen" in line for line in plan.reads), plan.reads
    assert (
        KEY_QUARANTINED
        not in sm.describe_model_package(ModelPackageName=history["poisoned"])["CustomerMetadataProperties"]
    )


def test_rollback_reads_the_lineage_with_exactly_the_emitted_policy(
    history: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under moto's IAM enforcement, the policy ``fireline iam-policy`` emits lets the lineage be read.

    Without ``sagemaker:DescribeTrainingJob`` the version known only from its training job would be
    rejected as unreadable rather than as trained on the tainted dataset.
    """
    import json

    import moto.settings

    from flows.actions.iam_policy import playbook_policy
    from flows.actions.registry import default_registry
    from flows.language.spec import Playbook

    step = {**TARGET, "known_good": {"exclude_training_data": [POISONED]}}
    book = Playbook.model_validate(
        {
            "apiVersion": "fireline/v1",
            "kind": "Playbook",
            "metadata": {"name": "p", "version": 1, "title": "t"},
            "steps": [{"id": "rollback", "action": "model.rollback", "with": step}],
        }
    )
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="runner")
    policy = json.dumps(playbook_policy(book, default_registry()))
    iam.put_user_policy(UserName="runner", PolicyName="fireline", PolicyDocument=policy)
    key = iam.create_access_key(UserName="runner")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)

    result = ModelRollback().apply(RollbackParams.model_validate(step), context(tmp_path, "rollback", step="rollback"))

    assert result.chosen["id"] == history["clean"]
    reasons = {r.version: r.reason for r in result.rejections}
    assert reasons[history["lineage_only"]] == "tainted_training_data"


def test_a_version_whose_training_job_is_gone_is_rejected_alone(
    aws_clients: tuple[Any, Any], history: dict[str, str], tmp_path: Path
) -> None:
    s3, sm = aws_clients
    gone = register(sm, s3, "v4", generated_by="arn:aws:sagemaker:us-east-1:123456789012:training-job/deleted-job")
    attest(
        context(tmp_path, "attest", step="attest"),
        TargetParams(registry="sagemaker", model_package_group=GROUP),
        gone,
        by="ci:train",
    )
    params = RollbackParams.model_validate({**TARGET, "known_good": {"exclude_training_data": [POISONED]}})

    result = ModelRollback().apply(params, context(tmp_path, "rollback", step="rollback"))

    assert result.chosen["id"] == history["clean"]
    rejected = {r.version: (r.reason, r.message) for r in result.rejections}
    assert rejected[gone][0] == "training_data_unreadable"
    assert "training job deleted-job" in rejected[gone][1]
