"""The shipped model playbooks, run live end to end by the engine on in-process moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from flows.config import Settings
from flows.engine.approvals import Answer, Responders
from flows.engine.runner import run_playbook
from flows.engine.undo import undo_run
from flows.record.store import read_events
from integrations.models.base import KEY_QUARANTINED
from tests.integrations.models.helpers import attest_s3, ctx_at, cutoff_now, put_version

REPO = Path(__file__).resolve().parents[3]


def settings(tmp_path: Path) -> Settings:
    approvers = tmp_path / "approvers.yaml"
    approvers.write_text(yaml.safe_dump({"groups": {"ml-security": ["alice"], "ml-platform-oncall": ["bob"]}}))
    return Settings(
        home=tmp_path / "home", runs_dir=tmp_path / "runs", playbooks_dir=REPO / "playbooks", approvers_file=approvers
    )


def alert(name: str, **labels: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((REPO / "playbooks" / "alerts" / f"{name}.json").read_text())
    doc["labels"].update(labels)
    return doc


def step_events(run_dir: Path) -> dict[str, str]:
    """The last status of every step."""
    status: dict[str, str] = {}
    for event in read_events(run_dir / "events.jsonl"):
        if event["type"].startswith("step.") and event["step"]:
            status[event["step"]] = event["type"].removeprefix("step.")
    return status


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        yield {
            "s3": boto3.client("s3", region_name="us-east-1"),
            "sm": boto3.client("sagemaker", region_name="us-east-1"),
        }


def test_artifact_tampering_playbook_restores_attested_bytes(aws: dict[str, Any], tmp_path: Path) -> None:
    s3 = aws["s3"]
    s3.create_bucket(Bucket="ml-models")
    s3.put_bucket_versioning(Bucket="ml-models", VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket="fireline-evidence", ObjectLockEnabledForBucket=True)
    key = "fraud-detector/model.tar.gz"
    good = put_version(s3, "ml-models", key, b"attested weights")
    attest_s3(ctx_at(tmp_path, name="attest", step="attest"), "ml-models", key, good)
    bad = put_version(s3, "ml-models", key, b"backdoored weights")
    # S3 stamps whole seconds: a version from the incident's own second is (rightly) not trusted.
    since = cutoff_now(whole_seconds=True).isoformat()

    summary = run_playbook(
        REPO / "playbooks" / "model-artifact-tampering.yaml",
        alert=alert("model-artifact-tampering"),
        inputs={"compromised_since": since},
        settings=settings(tmp_path),
        responders=Responders(
            approvals={"approve-restore": [Answer(by="alice", decision="approve", reason="confirmed")]},
            acks={"page-on-call": [("bob", 0.0)]},
        ),
    )

    assert summary.outcome == "succeeded", step_events(summary.run_dir)
    assert s3.get_object(Bucket="ml-models", Key=key)["Body"].read() == b"attested weights"
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket="ml-models", Key=key, VersionId=bad)["TagSet"]}
    assert tags[KEY_QUARANTINED].endswith("written outside the release pipeline")
    assert step_events(summary.run_dir)["verify"] == "succeeded"
    manifest = json.loads((summary.run_dir / "evidence" / "manifest.json").read_text())
    names = {item["name"] for item in manifest["items"]}
    assert {"registry-s3.json", "known-good-selection.json", "verify-report.json"} <= names

    # fireline undo RUN rollback, then RUN quarantine-serving: the results come back from the run record.
    [rolled_forward] = undo_run(summary.run_dir, "rollback", settings=settings(tmp_path))
    assert rolled_forward.status == "undone", rolled_forward
    assert s3.get_object(Bucket="ml-models", Key=key)["Body"].read() == b"backdoored weights"
    [lifted] = undo_run(summary.run_dir, "quarantine-serving", settings=settings(tmp_path))
    assert lifted.status == "undone", lifted
    left = {t["Key"] for t in s3.get_object_tagging(Bucket="ml-models", Key=key, VersionId=bad)["TagSet"]}
    assert KEY_QUARANTINED not in left


def test_poisoning_playbook_shifts_endpoint_to_known_good(aws: dict[str, Any], tmp_path: Path) -> None:
    s3, sm = aws["s3"], aws["sm"]
    s3.create_bucket(Bucket="ml-artifacts")
    sm.create_model_package_group(ModelPackageGroupName="fraud-detector")
    arns = []
    for name, data in (("good", b"good"), ("poisoned", b"poisoned")):
        s3.put_object(Bucket="ml-artifacts", Key=f"{name}.tar.gz", Body=data)
        arns.append(
            sm.create_model_package(
                ModelPackageGroupName="fraud-detector",
                InferenceSpecification={
                    "Containers": [{"Image": "img", "ModelDataUrl": f"s3://ml-artifacts/{name}.tar.gz"}],
                    "SupportedContentTypes": ["application/json"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
                ModelApprovalStatus="Approved",
            )["ModelPackageArn"]
        )
    from integrations.models.attest import attest
    from integrations.models.base import TargetParams

    attest(
        ctx_at(tmp_path, name="attest", step="attest"),
        TargetParams(registry="sagemaker", model_package_group="fraud-detector"),
        arns[0],
        by="ci:train-pipeline",
    )
    variants = []
    for variant, arn, weight in (("stable", arns[0], 0.0), ("canary", arns[1], 1.0)):
        sm.create_model(
            ModelName=f"fraud-{variant}",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
            PrimaryContainer={"ModelPackageName": arn},
        )
        variants.append(
            {
                "VariantName": variant,
                "ModelName": f"fraud-{variant}",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
                "InitialVariantWeight": weight,
            }
        )
    sm.create_endpoint_config(EndpointConfigName="fraud-cfg", ProductionVariants=variants)
    sm.create_endpoint(EndpointName="fraud-detector", EndpointConfigName="fraud-cfg")

    summary = run_playbook(
        REPO / "playbooks" / "model-poisoning-rollback.yaml",
        alert=alert("model-poisoning-rollback"),
        settings=settings(tmp_path),
        responders=Responders(
            approvals={"approve-rollback": [Answer(by="bob", decision="approve")]},
            acks={"page-on-call": [("alice", 0.0)]},
        ),
    )

    assert summary.outcome == "succeeded", step_events(summary.run_dir)
    weights = {
        v["VariantName"]: v["CurrentWeight"]
        for v in sm.describe_endpoint(EndpointName="fraud-detector")["ProductionVariants"]
    }
    assert weights == {"stable": 1.0, "canary": 0.0}
    # The poisoned version was not attested: rejected, then quarantined as the one replaced.
    assert KEY_QUARANTINED in sm.describe_model_package(ModelPackageName=arns[1])["CustomerMetadataProperties"]
