"""model.capture_registry keeps the versions listed before a page that fails, and records the gap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from flows.errors import ActionError
from integrations.aws.session import client
from integrations.models.registry_actions import CaptureParams, ModelCaptureRegistry
from tests.integrations.models.helpers import ctx_at

GROUP = "fraud-detector"


def _packages(count: int) -> None:
    """A group of ``count`` packages, the first served by an endpoint."""
    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    arns = []
    for i in range(count):
        arn = sm.create_model_package(
            ModelPackageGroupName=GROUP,
            InferenceSpecification={
                "Containers": [
                    {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/f:1", "ModelDataUrl": f"s3://b/{i}"}
                ],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )["ModelPackageArn"]
        arns.append(arn)
    role = "arn:aws:iam::123456789012:role/sm"
    sm.create_model(ModelName="m", ExecutionRoleArn=role, PrimaryContainer={"ModelPackageName": arns[0]})
    variant = {"VariantName": "a", "ModelName": "m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=GROUP, EndpointConfigName="c")


def _throttle_second_page(ctx: Any) -> None:
    sm = client(ctx, "sagemaker")
    calls = {"n": 0}

    def small(params: dict[str, Any], **_: Any) -> None:
        params["MaxResults"] = 1

    def fail(**_: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "ListModelPackages"
            )

    sm.meta.events.register("provide-client-params.sagemaker.ListModelPackages", small)
    sm.meta.events.register("before-call.sagemaker.ListModelPackages", fail)


@pytest.mark.parametrize("on_gap", ["fail", "warn"])
def test_a_failed_listing_page_keeps_the_versions_read(tmp_path: Path, on_gap: str) -> None:
    with mock_aws():
        _packages(3)
        ctx = ctx_at(tmp_path, step="capture")
        _throttle_second_page(ctx)
        params = CaptureParams(registry="sagemaker", endpoint=GROUP, model_package_group=GROUP, on_gap=on_gap)  # type: ignore[arg-type]
        if on_gap == "fail":
            with pytest.raises(ActionError, match="incomplete"):
                ModelCaptureRegistry().apply(params, ctx)
        else:
            result = ModelCaptureRegistry().apply(params, ctx)
            assert result.gap is not None
            assert result.versions == 1
        item = next(i for i in ctx.record.evidence.items if "partial-attempt-1" in i.name)
        doc = json.loads((ctx.record.dir / item.location).read_text())
        assert len(doc["newest_versions"]) == 1
        assert doc["gap"]["after_version"] == doc["newest_versions"][0]["id"]
        assert "ThrottlingException" in doc["gap"]["error"]
