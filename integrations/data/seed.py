"""Sandbox seeding for a training-data poisoning incident, and its demo step.

The ``ml-training-data`` bucket gains daily shards under ``datasets/fraud/shards/``; the one of
2026-11-02 is poisoned (label-flipped rows). The ``credit-risk-models`` model package group holds:

- v1: attested, trained on ``datasets/fraud/curated/``;
- v2: attested, trained on the clean shard of 2026-11-01; it still sits on the endpoint's ``stable``
  variant (weight 0);
- v3: the newest attested version, trained on the whole ``shards/`` prefix, so on the poisoned
  shard; it serves on the ``canary`` variant (weight 1);
- v4: registered by a training job that read the poisoned shard (known only from SageMaker's
  lineage: ``MetadataProperties.GeneratedBy``), not attested and not serving.

The ``training-data-poisoning`` playbook must find v3 and v4, and roll the endpoint back past v3 to
v2 (a weight shift, which moto implements). ``fraud-reprocess`` is the SageMaker pipeline it starts.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from integrations.data.lineage import encode_training_data
from integrations.data.lineage_registries import listing_digest
from integrations.models.base import attestation, encode_tag_value

if TYPE_CHECKING:
    from integrations.aws.sandbox import World

DATA_BUCKET = "ml-training-data"
MODEL_BUCKET = "ml-model-registry"
GROUP = "credit-risk-models"
ENDPOINT = "credit-risk"
PIPELINE = "fraud-reprocess"
TRAINING_ROLE = "sagemaker-training"
SHARDS = "datasets/fraud/shards/"
POISONED_PREFIX = f"{SHARDS}2026-11-02/"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/credit-risk:1"


def _prefix_digest(world: World, prefix: str) -> str:
    listing = world.client("s3").list_object_versions(Bucket=DATA_BUCKET, Prefix=prefix).get("Versions", [])
    return listing_digest(listing)[0]


def _register(world: World, name: str, trained_on: list[str] | None, generated_by: str | None = None) -> str:
    s3, sm = world.client("s3"), world.client("sagemaker")
    key = f"{GROUP}/{name}/model.tar.gz"
    data = f"credit-risk weights {name}".encode()
    s3.put_object(Bucket=MODEL_BUCKET, Key=key, Body=data)
    extra: dict[str, Any] = {}
    if trained_on is not None:
        keys = attestation(hashlib.sha256(data).hexdigest(), "ci:train-pipeline", {"auc": 0.9})
        datasets = {f"s3://{DATA_BUCKET}/{p}": _prefix_digest(world, p) for p in trained_on}
        keys.update(encode_training_data(datasets))
        extra["CustomerMetadataProperties"] = {k: encode_tag_value(k, v) for k, v in keys.items()}
    if generated_by:
        extra["MetadataProperties"] = {"GeneratedBy": generated_by}
    arn: str = sm.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelPackageDescription=name,
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{MODEL_BUCKET}/{key}"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus="Approved",
        **extra,
    )["ModelPackageArn"]
    return arn


def _training_job(world: World, name: str, role: str, uri: str) -> str:
    world.client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn=role,
        InputDataConfig=[
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{MODEL_BUCKET}/{GROUP}/jobs/"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    return f"arn:aws:sagemaker:{world.region}:123456789012:training-job/{name}"


def _seed_data(world: World) -> None:
    s3 = world.client("s3")
    if DATA_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=DATA_BUCKET)
        s3.put_bucket_versioning(Bucket=DATA_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_tagging(Bucket=DATA_BUCKET, Tagging={"TagSet": [{"Key": "env", "Value": "ml-prod"}]})
    shards = {
        "datasets/fraud/curated/2026-10/part-0.csv": b"id,amount,label\n1,10.0,0\n2,950.0,1\n",
        f"{SHARDS}2026-11-01/part-0.csv": b"id,amount,label\n3,12.5,0\n4,870.0,1\n",
        f"{POISONED_PREFIX}part-0.csv": b"id,amount,label\n5,9900.0,0\n6,9800.0,0\n",  # fraud labelled legit
        f"{POISONED_PREFIX}part-1.csv": b"id,amount,label\n7,9700.0,0\n",
    }
    for key, body in shards.items():
        s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)


def seed_training_data(world: World) -> None:
    """Create the shards, the credit-risk registry and endpoint, the training role and the pipeline."""
    s3, sm, iam = world.client("s3"), world.client("sagemaker"), world.client("iam")
    _seed_data(world)
    if MODEL_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=MODEL_BUCKET)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName=TRAINING_ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    sm.create_model_package_group(ModelPackageGroupName=GROUP, ModelPackageGroupDescription="credit risk")
    v1 = _register(world, "v1", ["datasets/fraud/curated/"])
    v2 = _register(world, "v2", [f"{SHARDS}2026-11-01/"])
    v3 = _register(world, "v3", [SHARDS])
    job = _training_job(world, "credit-risk-retrain-1102", role, f"s3://{DATA_BUCKET}/{POISONED_PREFIX}")
    v4 = _register(world, "v4", None, generated_by=job)
    variants = []
    for variant, arn, weight in (("stable", v2, 0.0), ("canary", v3, 1.0)):
        sm.create_model(
            ModelName=f"credit-risk-{variant}", ExecutionRoleArn=role, PrimaryContainer={"ModelPackageName": arn}
        )
        variants.append(
            {
                "VariantName": variant,
                "ModelName": f"credit-risk-{variant}",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": weight,
            }
        )
    sm.create_endpoint_config(EndpointConfigName="credit-risk-config", ProductionVariants=variants)
    sm.create_endpoint(
        EndpointName=ENDPOINT,
        EndpointConfigName="credit-risk-config",
        Tags=[{"Key": "env", "Value": "ml-prod"}, {"Key": "team", "Value": "ml-platform"}],
    )
    definition = {"Version": "2020-12-01", "Parameters": [{"Name": "ExcludePrefix"}, {"Name": "Incident"}], "Steps": []}
    sm.create_pipeline(PipelineName=PIPELINE, RoleArn=role, PipelineDefinition=json.dumps(definition))
    world.data.update(
        training_role_arn=role,
        poisoned_uri=f"s3://{DATA_BUCKET}/{POISONED_PREFIX}",
        credit_risk_versions={"v1": v1, "v2": v2, "v3": v3, "v4": v4},
        reprocess_pipeline=PIPELINE,
    )


def poisoning_alert(world: World) -> dict[str, Any]:
    """The alert of the sandbox's poisoning scenario (as a data-quality monitor would send it)."""
    return {
        "source": "alertmanager",
        "status": "firing",
        "labels": {
            "alertname": "TrainingDataPoisoningSuspected",
            "severity": "critical",
            "bucket": DATA_BUCKET,
            "prefix": POISONED_PREFIX,
            "endpoint": ENDPOINT,
            "model_package_group": GROUP,
            "reprocess_pipeline": PIPELINE,
            "training_roles": world.data.get("training_role_arn", ""),
        },
        "annotations": {"summary": "label distribution of shard 2026-11-02 shifted: 0 fraud labels in 9.7k rows"},
    }


def _weights(world: World) -> dict[str, float]:
    endpoint = world.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    return {v["VariantName"]: float(v.get("CurrentWeight", 0.0)) for v in endpoint["ProductionVariants"]}


def _show(world: World, summary: Any, before: Any) -> dict[str, Any]:
    names = {arn: name for name, arn in world.data["credit_risk_versions"].items()}
    radius = summary.steps.get("radius")
    output = radius.output if radius is not None and isinstance(radius.output, dict) else {}
    lines = [
        f"trained on the poisoned shard: {names.get(m['version'], m['version'])} ({m['label']})"
        + (f", serving via {', '.join(m['serving_via'])}" if m["serving"] else "")
        for m in output.get("models", [])
    ]
    rollback = summary.steps.get("rollback")
    outputs = rollback.output if rollback is not None else None
    for out in outputs if isinstance(outputs, list) else [outputs]:
        if isinstance(out, dict) and out.get("chosen"):
            lines.append(f"rolled back to {out['chosen'].get('label')}")
            lines += [f"refused {r['label']}: {r['message']}" for r in out.get("rejections", [])]
    return {"endpoint_weights": {"before": before, "after": _weights(world)}, "lines": lines}


def data_demo_steps() -> list[dict[str, Any]]:
    """Keyword arguments of the sandbox demo's ``DemoStep`` for the training-data poisoning."""
    return [
        {
            "name": "training data poisoning",
            "playbook": "training-data-poisoning",
            "alert": poisoning_alert,
            "approvals": ("approve-containment",),
            "before": _weights,
            "show": _show,
        }
    ]
