"""The session layer: the dry-run write guard on every client, error translation, client reuse."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from flows.errors import DryRunRefusal, IntegrationError
from integrations.aws.session import aws_errors, client, is_read_only
from tests.fixtures.moto import AwsEnv

# One mutating call per service fireline uses; none of them may leave the process in dry-run.
MUTATING: dict[str, tuple[str, dict[str, Any]]] = {
    "ec2": ("create_vpc", {"CidrBlock": "10.9.0.0/16"}),
    "iam": ("create_user", {"UserName": "u1"}),
    "s3": ("create_bucket", {"Bucket": "guarded-bucket"}),
    "logs": ("create_log_group", {"logGroupName": "/guarded"}),
    "lambda": ("put_function_concurrency", {"FunctionName": "f", "ReservedConcurrentExecutions": 0}),
    "sagemaker": ("delete_endpoint", {"EndpointName": "e"}),
    "cloudtrail": ("create_trail", {"Name": "t", "S3BucketName": "b"}),
    "autoscaling": ("detach_instances", {"AutoScalingGroupName": "g", "ShouldDecrementDesiredCapacity": False}),
    "elbv2": (
        "deregister_targets",
        {"TargetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1", "Targets": [{"Id": "i-1"}]},
    ),
}


@pytest.mark.moto_server
@pytest.mark.parametrize("mode", ["dry-run", "drill"])
def test_mutating_calls_never_reach_the_server_outside_live_mode(aws: AwsEnv, mode: str) -> None:
    ctx = aws.context(mode=mode)  # type: ignore[arg-type]
    aws.server.start_recording()
    try:
        for service, (operation, params) in MUTATING.items():
            with pytest.raises(DryRunRefusal, match=f"{service}:"):
                getattr(client(ctx, service), operation)(**params)
        client(ctx, "ec2").describe_vpcs()  # reads still go through
    finally:
        aws.server.stop_recording()
    assert aws.server.mutating_requests() == []
    assert len(aws.server.recorded()) == 1  # only the DescribeVpcs read
    assert len(ctx.services.refused_calls) == len(MUTATING)
    assert "logs:CreateLogGroup" in ctx.services.refused_calls  # hooks register on the service id, not the name
    refused = [e for e in ctx.record.events.path.read_text().splitlines() if '"dryrun.refused"' in e]
    assert len(refused) == len(MUTATING)


@pytest.mark.moto_server
def test_live_clients_are_not_guarded_and_are_reused(aws: AwsEnv) -> None:
    ctx = aws.context()
    ec2 = client(ctx, "ec2")
    assert client(ctx, "ec2") is ec2
    assert client(ctx.for_step("other"), "ec2") is ec2  # one client per run, shared by steps
    ec2.create_vpc(CidrBlock="10.8.0.0/16")
    assert ctx.services.refused_calls == []


@pytest.mark.parametrize(
    ("operation", "read_only"),
    [
        ("DescribeInstances", True),
        ("GetObject", True),
        ("HeadObject", True),
        ("LookupEvents", True),
        ("FilterLogEvents", True),
        ("CreateSnapshot", False),
        ("PutObject", False),
        ("UpdateAccessKey", False),
        ("ModifyNetworkInterfaceAttribute", False),
        ("DeleteEndpoint", False),
        ("AssumeRole", True),
    ],
)
def test_read_only_classification(operation: str, read_only: bool) -> None:
    assert is_read_only(operation) is read_only


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "DescribeInstances")


def test_aws_errors_keep_the_code_and_mark_throttling_retryable() -> None:
    with pytest.raises(IntegrationError) as caught, aws_errors("describe i-1"):
        raise _client_error("RequestLimitExceeded")
    assert caught.value.retryable
    assert caught.value.details["code"] == "RequestLimitExceeded"
    assert str(caught.value).startswith("describe i-1: RequestLimitExceeded")
    with pytest.raises(IntegrationError) as caught, aws_errors("describe i-1"):
        raise _client_error("InvalidInstanceID.NotFound")
    assert not caught.value.retryable


def test_aws_errors_retry_network_trouble_but_not_missing_credentials() -> None:
    with pytest.raises(IntegrationError) as caught, aws_errors("x"):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert caught.value.retryable
    with pytest.raises(IntegrationError) as caught, aws_errors("x"):
        raise NoCredentialsError()
    assert not caught.value.retryable
