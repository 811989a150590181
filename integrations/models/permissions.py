"""The IAM permissions of the model actions, per registry (MLflow needs none)."""

from __future__ import annotations

from typing import Any

from flows.actions.registry import Target
from integrations.aws.session import known
from integrations.models.base import TargetParams

SAGEMAKER_READ = (
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:DescribeModel",
    "sagemaker:DescribeModelPackage",
    "sagemaker:ListModelPackages",
    "s3:GetObject",
)
SAGEMAKER_WRITE_READS = ("sagemaker:ListModels", "sagemaker:ListEndpointConfigs", "sagemaker:AddTags")
SAGEMAKER_WRITE = (
    "sagemaker:CreateModel",
    "sagemaker:CreateEndpointConfig",
    "sagemaker:UpdateEndpoint",
    "sagemaker:UpdateEndpointWeightsAndCapacities",
    "sagemaker:UpdateModelPackage",
    "iam:PassRole",
)
S3_PERMISSIONS = (
    "s3:ListBucketVersions",
    "s3:GetObjectVersion",
    "s3:GetObjectVersionTagging",
    "s3:PutObjectVersionTagging",
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:DeleteObject",
    "s3:DeleteObjectVersionTagging",
    "s3:GetObject",
)
S3_TAG_WRITE = ("s3:PutObjectVersionTagging", "s3:DeleteObjectVersionTagging")
S3_READ = ("s3:ListBucketVersions", "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectVersionTagging")


def statements(by_registry: dict[str, tuple[str, ...]], params: Any) -> list[dict[str, Any]]:
    """IAM statements for the step's registry; every registry's when it is a template (MLflow needs none)."""
    registry = known(params, "registry")
    wanted = [by_registry.get(registry, ())] if registry else list(by_registry.values())
    actions = sorted({perm for perms in wanted for perm in perms})
    return [{"Effect": "Allow", "Action": actions, "Resource": "*"}] if actions else []


def target_of(params: TargetParams) -> Target:
    """The resource an action on ``params`` reads or changes, for guards and the report."""
    kind = {"sagemaker": "model:sagemaker:endpoint", "mlflow": "model:mlflow:alias", "s3": "model:s3:object"}[
        params.registry
    ]
    if params.registry == "sagemaker":
        ident = params.endpoint or f"group/{params.model_package_group}"
    elif params.registry == "mlflow":
        ident = f"{params.model_name}@{params.alias}"
    else:
        ident = f"{params.bucket}/{params.key}"
    return Target(type=kind, id=str(ident))
