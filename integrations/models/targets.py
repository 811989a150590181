"""The resource a model action acts on, with its real tags, so guards apply to model actions too.

Guards (``protected_tags``, ``require_tags``) compare a target's tags; a target whose tags are
unknown is refused in live mode. So a plan reads them, read-only:

- sagemaker: the endpoint's tags (``ListTags`` on the endpoint ARN), or the model package group's
  when the target names only a group;
- mlflow: the registered model's tags;
- s3: the bucket's tags, with the artifact object's own tags over them.

Without credentials (or with the MLflow server unreachable) the tags stay unknown, with a warning.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlparse

from flows.actions.context import ActionContext
from flows.actions.registry import Target
from integrations.aws.common import plan_read
from integrations.aws.session import aws_errors, client, tag_dict
from integrations.models.base import TargetParams
from integrations.models.permissions import target_of


def _sagemaker_tags(ctx: ActionContext, params: TargetParams) -> tuple[str, dict[str, str]]:
    sm = client(ctx, "sagemaker")
    with aws_errors(f"read the tags of {params.label}"):
        if params.endpoint:
            resource = str(sm.describe_endpoint(EndpointName=params.endpoint)["EndpointArn"])
        else:
            group = sm.describe_model_package_group(ModelPackageGroupName=params.model_package_group)
            resource = str(group["ModelPackageGroupArn"])
        return resource, tag_dict(sm.list_tags(ResourceArn=resource).get("Tags"))


def _s3_tags(ctx: ActionContext, params: TargetParams) -> tuple[str, dict[str, str]]:
    from botocore.exceptions import ClientError

    s3 = client(ctx, "s3")
    tags: dict[str, str] = {}
    with aws_errors(f"read the tags of {params.label}"):
        try:
            tags.update(tag_dict(s3.get_bucket_tagging(Bucket=params.bucket)["TagSet"]))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "NoSuchTagSet":
                raise
        try:
            tags.update(tag_dict(s3.get_object_tagging(Bucket=params.bucket, Key=params.key)["TagSet"]))
        except ClientError as e:  # a deleted artifact (a rollback restores it): the bucket's tags decide
            if e.response.get("Error", {}).get("Code") not in ("NoSuchKey", "MethodNotAllowed", "NoSuchVersion"):
                raise
    return f"arn:aws:s3:::{params.bucket}/{params.key}", tags


def _reachable(uri: str) -> bool:
    """Whether an http(s) tracking server answers at all (its client would retry for a long time)."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return True
    try:
        with socket.create_connection((parsed.hostname or "localhost", parsed.port or 80), timeout=2.0):
            return True
    except OSError:
        return False


def _mlflow_tags(ctx: ActionContext, params: TargetParams, warnings: list[str]) -> dict[str, str] | None:
    from integrations.models.mlflow import MlflowAdapter, mlflow_errors

    adapter = MlflowAdapter(params, ctx)
    try:
        uri = adapter.uri
    except Exception as e:  # no tracking URI configured: the plan says so, apply fails clearly
        warnings.append(f"the tags of {params.label} are unknown: {e}")
        return None
    if not _reachable(uri):
        warnings.append(f"the tags of {params.label} are unknown: the MLflow server at {uri} does not answer")
        return None
    try:
        with mlflow_errors(f"read registered model {params.model_name}"):
            model: Any = adapter.client.get_registered_model(params.model_name)
    except Exception as e:  # the plan stays usable; the guard refuses unknown tags in live mode
        warnings.append(f"the tags of {params.label} are unknown: {e}")
        return None
    return {str(k): str(v) for k, v in (model.tags or {}).items()}


def read_target(params: TargetParams, ctx: ActionContext, warnings: list[str]) -> Target:
    """:func:`target_of` with the resource's real tags (None, with a warning, when they cannot be read)."""
    base = target_of(params)
    if params.registry == "mlflow":
        return base.model_copy(update={"tags": _mlflow_tags(ctx, params, warnings)})
    read = _sagemaker_tags if params.registry == "sagemaker" else _s3_tags
    found = plan_read(ctx, f"read the tags of {params.label}", lambda: read(ctx, params), warnings)
    if found is None:
        return base
    return base.model_copy(update={"arn": found[0], "tags": found[1]})
