"""Sandbox seeding for the model registry: good, unattested and tampered versions behind an endpoint.

The ``fraud-scoring`` endpoint has two production variants: ``canary`` (weight 1) serves a version
an attacker registered without an attestation, ``stable`` (weight 0) still holds the last version
the release pipeline attested. Between them in the registry sits a version whose attestation is
genuine but whose artifact was overwritten afterwards. The poisoning playbook must reject the
tampered and the unattested versions (recording the tampering) and shift traffic to ``stable``;
since moto lacks ``UpdateEndpoint``, the sandbox keeps the known-good version on a variant so the
rollback is a weight shift, which moto implements.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from integrations.models.base import attestation, encode_tag_value

if TYPE_CHECKING:
    from integrations.aws.sandbox import World

GROUP = "fraud-scoring-models"
ENDPOINT = "fraud-scoring"
BUCKET = "ml-model-registry"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-scoring:2"


def _register(world: World, name: str, data: bytes, *, attest: bool) -> str:
    s3, sm = world.client("s3"), world.client("sagemaker")
    key = f"{GROUP}/{name}/model.tar.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    extra: dict[str, Any] = {}
    if attest:
        keys = attestation(hashlib.sha256(data).hexdigest(), "ci:train-pipeline", {"auc": 0.94})
        extra["CustomerMetadataProperties"] = {k: encode_tag_value(k, v) for k, v in keys.items()}
    arn: str = sm.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelPackageDescription=name,
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{key}"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus="Approved",
        **extra,
    )["ModelPackageArn"]
    return arn


def seed_model_registry(world: World) -> None:
    """Create the model package group, its four versions and the two-variant endpoint."""
    s3, sm = world.client("s3"), world.client("sagemaker")
    s3.create_bucket(Bucket=BUCKET)
    sm.create_model_package_group(ModelPackageGroupName=GROUP, ModelPackageGroupDescription="fraud scoring")
    v1 = _register(world, "v1", b"fraud-scoring weights v1", attest=True)
    v2 = _register(world, "v2", b"fraud-scoring weights v2", attest=True)
    poisoned = _register(world, "v3", b"fraud-scoring weights v3 (poisoned)", attest=False)
    tampered = _register(world, "v4", b"fraud-scoring weights v4", attest=True)
    s3.put_object(Bucket=BUCKET, Key=f"{GROUP}/v4/model.tar.gz", Body=b"fraud-scoring weights v4 (backdoored)")
    role = world.data.get("role_arn", "arn:aws:iam::123456789012:role/sagemaker-execution")
    variants = []
    for variant, arn, weight in (("stable", v2, 0.0), ("canary", poisoned, 1.0)):
        sm.create_model(
            ModelName=f"fraud-scoring-{variant}", ExecutionRoleArn=role, PrimaryContainer={"ModelPackageName": arn}
        )
        variants.append(
            {
                "VariantName": variant,
                "ModelName": f"fraud-scoring-{variant}",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": weight,
            }
        )
    sm.create_endpoint_config(EndpointConfigName="fraud-scoring-config", ProductionVariants=variants)
    sm.create_endpoint(
        EndpointName=ENDPOINT,
        EndpointConfigName="fraud-scoring-config",
        Tags=[{"Key": "env", "Value": "ml-prod"}, {"Key": "team", "Value": "ml-platform"}],
    )
    world.data.update(
        model_endpoint=ENDPOINT,
        model_package_group=GROUP,
        model_versions={"good_old": v1, "known_good": v2, "poisoned": poisoned, "tampered": tampered},
    )


ARTIFACT_BUCKET = "ml-models"
ARTIFACT_KEY = "fraud-detector/model.tar.gz"


def seed_model_artifact(world: World) -> None:
    """An S3-served model artifact: an attested, approved version, then bytes written over it.

    The artifact-tampering playbook quarantines the latest (tampered) version and copies the
    attested one back as the latest; its digest verifies because its bytes are unchanged.
    """
    from integrations.models.base import KEY_APPROVED

    s3 = world.client("s3")
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    s3.put_bucket_versioning(Bucket=ARTIFACT_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    good_bytes = b"fraud-detector weights (release 7)"
    good = s3.put_object(Bucket=ARTIFACT_BUCKET, Key=ARTIFACT_KEY, Body=good_bytes)["VersionId"]
    keys = {**attestation(hashlib.sha256(good_bytes).hexdigest(), "ci:train-pipeline", {"auc": 0.93}),
            KEY_APPROVED: "true"}  # fmt: skip
    tags = [{"Key": k, "Value": encode_tag_value(k, v)} for k, v in keys.items()]
    s3.put_object_tagging(Bucket=ARTIFACT_BUCKET, Key=ARTIFACT_KEY, VersionId=good, Tagging={"TagSet": tags})
    tampered = s3.put_object(Bucket=ARTIFACT_BUCKET, Key=ARTIFACT_KEY, Body=b"fraud-detector weights (backdoored)")
    # S3 lists whole seconds, so a version created in the incident's first second is not provably
    # before it: the compromise is dated one second after the attested version's listed time.
    created = s3.head_object(Bucket=ARTIFACT_BUCKET, Key=ARTIFACT_KEY, VersionId=good)["LastModified"]
    world.data.update(
        artifact_bucket=ARTIFACT_BUCKET,
        artifact_key=ARTIFACT_KEY,
        artifact_compromised_since=(created + timedelta(seconds=1)).isoformat(),
        artifact_versions={"known_good": good, "tampered": tampered["VersionId"]},
    )


def _seed_training_data(world: World) -> None:
    from integrations.data.seed import seed_training_data  # the training-data poisoning scenario

    seed_training_data(world)


MODEL_SEEDERS = [seed_model_registry, seed_model_artifact, _seed_training_data]


def endpoint_weights(world: World) -> dict[str, float]:
    endpoint = world.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    return {v["VariantName"]: float(v.get("CurrentWeight", 0.0)) for v in endpoint["ProductionVariants"]}


def _show(world: World, summary: Any, before: Any) -> dict[str, Any]:
    sm = world.client("sagemaker")
    versions: dict[str, str] = world.data["model_versions"]
    quarantined = {
        role: sm.describe_model_package(ModelPackageName=arn)
        .get("CustomerMetadataProperties", {})
        .get("fireline.quarantined")
        for role, arn in versions.items()
    }
    return {
        "endpoint_weights": {"before": before, "after": endpoint_weights(world)},
        "quarantined": {role: mark for role, mark in quarantined.items() if mark},
        "lines": _rollback_lines(summary),
    }


def _rollback_lines(summary: Any) -> list[str]:
    """Which version the rollback chose, and why every newer one was refused."""
    step = summary.steps.get("rollback")
    output = step.output if step is not None else None
    if not isinstance(output, dict) or not output.get("chosen"):
        return []
    chosen = output["chosen"]
    lines = [f"rolled back to {chosen.get('label')} (sha256 {str(output.get('sha256'))[:12]}… re-verified now)"]
    lines += [f"refused {r.get('label')}: {r.get('message')}" for r in output.get("rejections", [])]
    lines += [f"quarantined {version}" for version in output.get("quarantined", [])]
    return lines


def model_demo_steps() -> list[dict[str, Any]]:
    """Keyword arguments of the sandbox demo's ``DemoStep`` for the model rollback."""
    return [
        {
            "name": "model poisoning rollback",
            "playbook": "model-poisoning-rollback",
            "alert": lambda world: {
                "source": "alertmanager",
                "status": "firing",
                "labels": {
                    "alertname": "ModelPoisoningSuspected",
                    "severity": "critical",
                    "endpoint": ENDPOINT,
                    "model_package_group": GROUP,
                },
                "annotations": {"summary": "fraud-scoring approves 4x more transactions from new accounts"},
            },
            "approvals": ("approve-rollback",),
            "before": endpoint_weights,
            "show": _show,
        }
    ]
