"""Resources in a transitional state (case 10 and its kin), on in-process moto.

moto never leaves an endpoint ``Updating`` and does not refuse changes while it is; AWS answers
``ValidationException: Cannot update in-progress endpoint`` (SageMaker API Reference,
UpdateEndpointWeightsAndCapacities). These tests add exactly that refusal to moto's backend, put the
endpoint (or a Lambda function) in its transitional state, and let it settle after a number of
reads, a count rather than a clock, so the outcome does not depend on the machine's speed. The
state at the end is read back from moto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flows.config import AwsSettings, Settings
from flows.engine.executor import is_retryable
from flows.errors import IntegrationError
from integrations.aws.lambda_ import Throttle, ThrottleParams
from integrations.aws.sagemaker import IsolateEndpoint, IsolateEndpointParams
from integrations.aws.session import aws_errors
from tests.integrations.models.helpers import ctx_at

CASES = Path(__file__).resolve().parents[1] / "cases_data"
ACCOUNT, REGION = "123456789012", "us-east-1"


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("integrations.aws.stable.POLL_SECONDS", 0.001)


@pytest.fixture
def moto_sagemaker(fast_polls: None) -> Iterator[Any]:
    with mock_aws():
        sm = boto3.client("sagemaker", region_name=REGION)
        sm.create_model(
            ModelName="fraud-model-v3",
            ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm",
            PrimaryContainer={"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/x:1", "ModelDataUrl": "s3://m/m"},
        )
        sm.create_endpoint_config(
            EndpointConfigName="fraud-cfg",
            ProductionVariants=[
                {
                    "VariantName": "primary",
                    "ModelName": "fraud-model-v3",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "InitialVariantWeight": 1.0,
                }
            ],
        )
        sm.create_endpoint(EndpointName="fraud-detector", EndpointConfigName="fraud-cfg")
        yield sm


class Deployment:
    """An endpoint mid-update in moto's backend, refusing changes the way AWS does until it settles."""

    def __init__(self, status: str, settle_after_reads: int, refuse_first: int = 0) -> None:
        from moto.sagemaker import models as sm_models
        from moto.sagemaker.exceptions import AWSValidationException

        self.backend = sm_models.sagemaker_backends[ACCOUNT][REGION]
        self.endpoint = self.backend.endpoints["fraud-detector"]
        self.endpoint.endpoint_status = status
        self.reads, self.refused = 0, 0
        self.refuse_first = refuse_first
        describe, update = self.backend.describe_endpoint, self.backend.update_endpoint_weights_and_capacities

        def describing(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            if self.reads > settle_after_reads:
                self.endpoint.endpoint_status = "InService"
            return describe(*args, **kwargs)

        def updating(*args: Any, **kwargs: Any) -> str:
            if self.endpoint.endpoint_status != "InService" or self.refused < self.refuse_first:
                self.refused += 1
                raise AWSValidationException(f'Cannot update in-progress endpoint "{self.endpoint.arn}".')
            return str(update(*args, **kwargs))

        self.backend.describe_endpoint = describing
        self.backend.update_endpoint_weights_and_capacities = updating


def _weights(sm: Any) -> dict[str, float]:
    found = sm.describe_endpoint(EndpointName="fraud-detector")
    return {v["VariantName"]: v["CurrentWeight"] for v in found["ProductionVariants"]}


def _settings(tmp_path: Path) -> Settings:
    return Settings(runs_dir=tmp_path / "runs", home=tmp_path / "home", aws=AwsSettings(region=REGION, max_attempts=1))


def test_case_10_drain_waits_for_the_update_to_finish_then_drains(moto_sagemaker: Any, tmp_path: Path) -> None:
    from flows.engine import run_playbook

    deployment = Deployment("Updating", settle_after_reads=4)
    summary = run_playbook(
        CASES / "10-drain-endpoint.yaml", inputs={"endpoint_name": "fraud-detector"}, settings=_settings(tmp_path)
    )
    assert summary.outcome == "succeeded", {k: (v.status, v.error) for k, v in summary.steps.items()}
    assert _weights(moto_sagemaker) == {"primary": 0.0}  # read back from moto: no longer serving
    assert deployment.refused == 0  # it waited instead of being refused
    events = [json.loads(line) for line in (summary.run_dir / "events.jsonl").read_text().splitlines()]
    waits = [e for e in events if e["type"] == "resource.transitional"]
    assert waits[0]["detail"]["state"] == "Updating"


def test_case_10_a_refusal_in_a_race_is_retried_by_the_step(moto_sagemaker: Any, tmp_path: Path) -> None:
    from flows.engine import run_playbook

    # InService when read, yet the first update is refused (another deployment started in between).
    deployment = Deployment("InService", settle_after_reads=0, refuse_first=1)
    summary = run_playbook(
        CASES / "10-drain-endpoint.yaml", inputs={"endpoint_name": "fraud-detector"}, settings=_settings(tmp_path)
    )
    assert summary.outcome == "succeeded", {k: (v.status, v.error) for k, v in summary.steps.items()}
    assert deployment.refused == 1
    assert _weights(moto_sagemaker) == {"primary": 0.0}
    events = [json.loads(line) for line in (summary.run_dir / "events.jsonl").read_text().splitlines()]
    retrying = [e for e in events if e["type"] == "step.retrying"]
    assert len(retrying) == 1
    assert "in-progress endpoint" in retrying[0]["detail"]["error"]


def test_an_endpoint_that_never_settles_fails_retryably_within_the_limit(moto_sagemaker: Any, tmp_path: Path) -> None:
    from integrations.aws import stable

    Deployment("Updating", settle_after_reads=10**6)
    ctx = ctx_at(tmp_path)
    ctx.deadline = __import__("time").monotonic() + 50 * stable.POLL_SECONDS
    with pytest.raises(IntegrationError, match="still Updating") as raised:
        IsolateEndpoint().apply(IsolateEndpointParams(endpoint_name="fraud-detector"), ctx)
    assert is_retryable(raised.value)
    assert _weights(moto_sagemaker) == {"primary": 1.0}


def test_lambda_throttle_waits_for_a_pending_function(fast_polls: None, tmp_path: Path) -> None:
    with mock_aws():
        from moto.awslambda import models as lambda_models

        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        fn = boto3.client("lambda", region_name=REGION)
        fn.create_function(
            FunctionName="feature-etl", Runtime="python3.12", Role=role, Handler="h.h", Code={"ZipFile": b"PK"}
        )
        backend = lambda_models.lambda_backends[ACCOUNT][REGION]
        function = backend.get_function("feature-etl")
        function.state = "Pending"
        reads = {"n": 0}
        get = backend.get_function

        def getting(*args: Any, **kwargs: Any) -> Any:
            reads["n"] += 1
            if reads["n"] > 3:
                function.state = "Active"
            return get(*args, **kwargs)

        backend.get_function = getting
        ctx = ctx_at(tmp_path)
        Throttle().apply(ThrottleParams(function_name="feature-etl"), ctx)
        assert fn.get_function_concurrency(FunctionName="feature-etl")["ReservedConcurrentExecutions"] == 0
        assert function.state == "Active"  # it acted only once the function had settled


@pytest.mark.parametrize(
    ("code", "message", "retryable"),
    [
        ("ValidationException", 'Cannot update in-progress endpoint "arn:aws:sagemaker:..."', True),
        ("ValidationException", "Could not find endpoint", False),
        ("ResourceConflictException", "An update is in progress for resource: arn:aws:lambda:...", True),
        ("ResourceConflictException", "The operation cannot be performed at this time. The function is Pending", True),
        ("IncorrectInstanceState", "The instance 'i-1' is not in a state from which it can be modified", True),
        ("ScalingActivityInProgress", "Scaling activity is in progress", True),
        ("ConcurrentModification", "Concurrent modification of the role", True),
        ("OperationAborted", "A conflicting conditional operation is currently in progress", True),
        ("AccessDenied", "not authorized", False),
    ],
)
def test_transitional_refusals_are_retryable_and_bad_input_is_not(code: str, message: str, retryable: bool) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(IntegrationError) as raised, aws_errors("change it"):
        raise ClientError({"Error": {"Code": code, "Message": message}}, "UpdateSomething")
    assert is_retryable(raised.value) is retryable


def test_isolation_waits_for_a_pending_instance(fast_polls: None, tmp_path: Path) -> None:
    from moto.ec2 import models as ec2_models
    from moto.ec2.models.instances import InstanceState

    from integrations.aws.ec2 import IsolateInstance, IsolateParams

    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        made = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0]
        backend = ec2_models.ec2_backends[ACCOUNT][REGION]
        instance = backend.get_instance(made["InstanceId"])
        instance._state = InstanceState("pending", 0)
        reads = {"n": 0}
        by_ids = backend.get_reservations_by_instance_ids

        def reading(*args: Any, **kwargs: Any) -> Any:
            reads["n"] += 1
            if reads["n"] > 3:
                instance._state = InstanceState("running", 16)
            return by_ids(*args, **kwargs)

        backend.get_reservations_by_instance_ids = reading
        ctx = ctx_at(tmp_path, step="isolate")
        result = IsolateInstance().apply(IsolateParams(instance_id=made["InstanceId"]), ctx)
        groups = ec2.describe_instances(InstanceIds=[made["InstanceId"]])["Reservations"][0]["Instances"][0]
        assert [g["GroupId"] for g in groups["SecurityGroups"]] == [result.quarantine_group_id]
        assert reads["n"] > 3  # it read the state until the instance was running, then acted
        events = [json.loads(line) for line in (ctx.record.dir / "events.jsonl").read_text().splitlines()]
        assert [e["detail"]["state"] for e in events if e["type"] == "resource.transitional"] == ["pending"]


def test_a_drain_that_did_not_take_is_not_reported_as_done(moto_sagemaker: Any, tmp_path: Path) -> None:
    from moto.sagemaker import models as sm_models

    backend = sm_models.sagemaker_backends[ACCOUNT][REGION]
    endpoint = backend.endpoints["fraud-detector"]
    # The update is accepted, then rolled back (the weights stay): AWS's RollingBack ends here.
    backend.update_endpoint_weights_and_capacities = lambda *args, **kwargs: endpoint.arn
    with pytest.raises(IntegrationError, match="still sends traffic to primary") as raised:
        IsolateEndpoint().apply(IsolateEndpointParams(endpoint_name="fraud-detector"), ctx_at(tmp_path))
    assert is_retryable(raised.value)
    assert _weights(moto_sagemaker) == {"primary": 1.0}


class HookedLaunch:
    """An instance held by a launch lifecycle hook in moto's Auto Scaling backend, refusing a detach
    the way AWS does (``ValidationError: The instance ... is not in InService or Standby``) until it
    settles after a number of reads."""

    def __init__(self, state: str, settle_after_reads: int) -> None:
        from moto.autoscaling import models as asg_models
        from moto.autoscaling.exceptions import ValidationError

        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        self.instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0][
            "InstanceId"
        ]
        self.groups = [g["GroupId"] for g in self.described(ec2)["SecurityGroups"]]
        asg = boto3.client("autoscaling", region_name=REGION)
        asg.create_launch_configuration(LaunchConfigurationName="lc", ImageId=image, InstanceType="t3.micro")
        asg.create_auto_scaling_group(
            AutoScalingGroupName="inference",
            LaunchConfigurationName="lc",
            MinSize=0,
            MaxSize=3,
            DesiredCapacity=0,
            VPCZoneIdentifier=subnet,
        )
        asg.attach_instances(InstanceIds=[self.instance_id], AutoScalingGroupName="inference")
        backend = asg_models.autoscaling_backends[ACCOUNT][REGION]
        member = next(s for s in backend.autoscaling_groups["inference"].instance_states)
        member.lifecycle_state = state
        self.reads, self.refused = 0, 0
        describe, detach = backend.describe_auto_scaling_instances, backend.detach_instances

        def describing(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            if self.reads > settle_after_reads and member.lifecycle_state == state:
                member.lifecycle_state = "InService"
            return describe(*args, **kwargs)

        def detaching(group_name: str, instance_ids: list[str], should_decrement: bool) -> Any:
            if member.lifecycle_state not in ("InService", "Standby"):
                self.refused += 1
                raise ValidationError(f"The instance {self.instance_id} is not in InService or Standby.")
            return detach(group_name, instance_ids, should_decrement)

        backend.describe_auto_scaling_instances = describing
        backend.detach_instances = detaching

    def described(self, ec2: Any) -> dict[str, Any]:
        found: dict[str, Any] = ec2.describe_instances(InstanceIds=[self.instance_id])["Reservations"][0]["Instances"][
            0
        ]
        return found


def test_isolation_waits_for_an_instance_held_by_a_launch_hook_then_detaches(fast_polls: None, tmp_path: Path) -> None:
    from integrations.aws.ec2 import IsolateInstance, IsolateParams

    with mock_aws():
        launch = HookedLaunch("Pending:Wait", settle_after_reads=3)
        ctx = ctx_at(tmp_path, step="isolate")
        result = IsolateInstance().apply(IsolateParams(instance_id=launch.instance_id, detach_from_asg=True), ctx)
        asg = boto3.client("autoscaling", region_name=REGION)
        # Read back from moto: out of the group, on the quarantine group; never refused.
        assert asg.describe_auto_scaling_instances(InstanceIds=[launch.instance_id])["AutoScalingInstances"] == []
        assert result.asg_name == "inference"
        assert launch.refused == 0
        assert launch.reads > 3
        ec2 = boto3.client("ec2", region_name=REGION)
        assert [g["GroupId"] for g in launch.described(ec2)["SecurityGroups"]] == [result.quarantine_group_id]
        events = [json.loads(line) for line in (ctx.record.dir / "events.jsonl").read_text().splitlines()]
        waits = [e["detail"] for e in events if e["type"] == "resource.transitional"]
        assert [(w["kind"], w["state"]) for w in waits] == [("Auto Scaling instance", "Pending:Wait")]


def test_isolation_of_an_instance_the_group_is_terminating_fails_before_any_change(
    fast_polls: None, tmp_path: Path
) -> None:
    from flows.errors import ActionError
    from integrations.aws.ec2 import IsolateInstance, IsolateParams

    with mock_aws():
        launch = HookedLaunch("Terminating:Wait", settle_after_reads=10**6)
        with pytest.raises(ActionError, match="Terminating:Wait"):
            IsolateInstance().apply(
                IsolateParams(instance_id=launch.instance_id, detach_from_asg=True), ctx_at(tmp_path)
            )
        ec2 = boto3.client("ec2", region_name=REGION)
        assert [g["GroupId"] for g in launch.described(ec2)["SecurityGroups"]] == launch.groups  # untouched


def test_a_detach_refused_in_a_race_is_retryable() -> None:
    from botocore.exceptions import ClientError

    refused = ClientError(
        {"Error": {"Code": "ValidationError", "Message": "The instance i-1 is not in InService or Standby."}},
        "DetachInstances",
    )
    with pytest.raises(IntegrationError) as raised, aws_errors("detach i-1"):
        raise refused
    assert is_retryable(raised.value)
    bad = ClientError({"Error": {"Code": "ValidationError", "Message": "Group x not found"}}, "DetachInstances")
    with pytest.raises(IntegrationError) as raised, aws_errors("detach i-1"):
        raise bad
    assert not is_retryable(raised.value)
