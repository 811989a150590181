"""Read a SageMaker endpoint with everything behind it, as one JSON document."""

from __future__ import annotations

from typing import Any

from flows.actions.context import ActionContext
from integrations.aws.common import live_read, strip_metadata
from integrations.aws.session import aws_errors, client

CAPTURE_PERMISSIONS = (
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:DescribeModel",
    "sagemaker:DescribeModelPackage",
    "sagemaker:ListTags",
)


def capture_endpoint(ctx: ActionContext, name: str, region: str | None) -> dict[str, Any]:
    """The endpoint, its configuration, each variant's model and (when registered) its model package."""
    sm = client(ctx, "sagemaker", region)
    endpoint = strip_metadata(live_read(f"describe endpoint {name}", lambda: sm.describe_endpoint(EndpointName=name)))
    doc: dict[str, Any] = {"endpoint": endpoint, "models": {}, "model_packages": {}}
    with aws_errors(f"capture endpoint {name}"):
        doc["tags"] = sm.list_tags(ResourceArn=endpoint["EndpointArn"]).get("Tags", [])
        config = strip_metadata(sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"]))
        doc["endpoint_config"] = config
        for variant in config.get("ProductionVariants", []):
            model_name = variant["ModelName"]
            model = strip_metadata(sm.describe_model(ModelName=model_name))
            doc["models"][model_name] = model
            containers = [model.get("PrimaryContainer") or {}, *model.get("Containers", [])]
            for container in containers:
                package = container.get("ModelPackageName")
                if package and package not in doc["model_packages"]:
                    doc["model_packages"][package] = strip_metadata(sm.describe_model_package(ModelPackageName=package))
    return doc
