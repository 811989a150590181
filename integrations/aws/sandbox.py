"""A small ML platform on a local moto server, for demos, drills and end-to-end tests.

:data:`SEEDERS` is a list of functions, each creating one part of the platform through boto3 and
noting what it made in :class:`World`; other parts of fireline append their own (the model
registry adds good, unattested and tampered versions). :func:`seed` runs them in order. The demo
runner lives in :mod:`flows.sandbox`, so nothing here knows about playbooks or the engine.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ML_PROD = {"env": "ml-prod", "team": "ml-platform"}
AMI = "ami-12c6146b"  # one of moto's built-in images


@dataclass
class World:
    """What the seeders created: ids and names, by seeder-chosen keys."""

    endpoint_url: str | None
    region: str = "us-east-1"
    data: dict[str, Any] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> Any:
        """A client for the sandbox, made once per service (client classes are costly to build)."""
        from integrations.aws.session import shared_botocore_session

        if service not in self._clients:
            self._clients[service] = shared_botocore_session().create_client(
                service,
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._clients[service]


Seeder = Callable[[World], None]


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def seed_network(world: World) -> None:
    ec2 = world.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    web = ec2.create_security_group(GroupName="inference-https", Description="HTTPS from the VPC", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}],
    )
    ssh = ec2.create_security_group(GroupName="bastion-ssh", Description="SSH from the bastion", VpcId=vpc)["GroupId"]
    world.data.update(vpc_id=vpc, subnet_id=subnet, security_groups=[web, ssh])


def run_instance(world: World, name: str, tags: dict[str, str], *, volumes: int = 1) -> str:
    """Launch one instance in the sandbox subnet with a root volume and ``volumes - 1`` data volumes."""
    ec2 = world.client("ec2")
    mappings = [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 20}}]
    mappings += [{"DeviceName": f"/dev/sd{chr(ord('f') + i)}", "Ebs": {"VolumeSize": 100}} for i in range(volumes - 1)]
    return str(
        ec2.run_instances(
            ImageId=AMI,
            MinCount=1,
            MaxCount=1,
            InstanceType="g5.xlarge",
            SubnetId=world.data["subnet_id"],
            SecurityGroupIds=world.data["security_groups"],
            BlockDeviceMappings=mappings,
            TagSpecifications=[{"ResourceType": "instance", "Tags": _tags({"Name": name, **tags})}],
        )["Instances"][0]["InstanceId"]
    )


def seed_inference_hosts(world: World) -> None:
    hosts = [run_instance(world, f"inference-{i}", {**ML_PROD, "role": "inference"}, volumes=2) for i in (1, 2)]
    protected = run_instance(world, "inference-canary", {**ML_PROD, "fireline/protected": "true"})
    staging = run_instance(world, "inference-staging", {"env": "ml-staging"})
    world.data.update(inference_instances=hosts, protected_instance=protected, staging_instance=staging)


def seed_iam(world: World) -> None:
    iam = world.client("iam")
    keys: dict[str, list[str]] = {}
    for user, count in (("ml-pipeline", 2), ("data-scientist", 1), ("no-keys-user", 0)):
        iam.create_user(UserName=user, Tags=_tags(ML_PROD))
        keys[user] = [iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"] for _ in range(count)]
    iam.put_user_policy(
        UserName="ml-pipeline",
        PolicyName="training-data-read",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::ml-training-data/*"}
                ],
            }
        ),
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["ec2.amazonaws.com", "sagemaker.amazonaws.com", "lambda.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName="inference-role", AssumeRolePolicyDocument=json.dumps(trust), Tags=_tags(ML_PROD))
    world.data.update(access_keys=keys, role_arn=role["Role"]["Arn"], role_name="inference-role")


def seed_buckets(world: World) -> None:
    s3 = world.client("s3")
    s3.create_bucket(Bucket="ml-training-data")
    s3.put_bucket_versioning(Bucket="ml-training-data", VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_tagging(Bucket="ml-training-data", Tagging={"TagSet": _tags(ML_PROD)})
    objects = {
        "datasets/fraud/train.csv": [b"id,amount,label\n1,10.0,0\n", b"id,amount,label\n1,10.0,0\n2,99.0,1\n"],
        "datasets/fraud/labels.json": [b'{"0": "legit", "1": "fraud"}'],
    }
    for key, versions in objects.items():
        for body in versions:
            s3.put_object(Bucket="ml-training-data", Key=key, Body=body)
    s3.create_bucket(Bucket="ml-evidence", ObjectLockEnabledForBucket=True)
    s3.create_bucket(Bucket="scratch-no-lock")
    world.data.update(
        training_bucket="ml-training-data",
        evidence_bucket="ml-evidence",
        unlocked_bucket="scratch-no-lock",
        training_objects=sorted(objects),
    )


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", source)
    return buffer.getvalue()


def seed_lambda(world: World) -> None:
    fn = world.client("lambda")
    fn.create_function(
        FunctionName="feature-transform",
        Runtime="python3.12",
        Role=world.data["role_arn"],
        Handler="handler.main",
        Code={"ZipFile": _zip("def main(event, context):\n    return event\n")},
        Tags=ML_PROD,
    )
    fn.put_function_concurrency(FunctionName="feature-transform", ReservedConcurrentExecutions=5)
    world.data.update(function_name="feature-transform")


def seed_sagemaker(world: World) -> None:
    sm = world.client("sagemaker")
    s3 = world.client("s3")
    s3.create_bucket(Bucket="ml-models")
    s3.put_object(Bucket="ml-models", Key="fraud/v3/model.tar.gz", Body=b"model-v3-weights")
    sm.create_model(
        ModelName="fraud-model-v3",
        ExecutionRoleArn=world.data["role_arn"],
        PrimaryContainer={
            "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud:3",
            "ModelDataUrl": "s3://ml-models/fraud/v3/model.tar.gz",
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName="fraud-detector-config",
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
    sm.create_endpoint(EndpointName="fraud-detector", EndpointConfigName="fraud-detector-config", Tags=_tags(ML_PROD))
    logs = world.client("logs")
    group = "/aws/sagemaker/Endpoints/fraud-detector"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="primary/i-0001")
    import time

    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName="primary/i-0001",
        logEvents=[
            {"timestamp": now - 60_000 + i, "message": message}
            for i, message in enumerate(
                [
                    "model loaded",
                    "POST /invocations 200",
                    "outbound connection to 203.0.113.7:4444",
                    "POST /invocations 200",
                ]
            )
        ],
    )
    world.data.update(endpoint_name="fraud-detector", log_group=group)


SEEDERS: list[Seeder] = [seed_network, seed_inference_hosts, seed_iam, seed_buckets, seed_lambda, seed_sagemaker]


def seed(endpoint_url: str | None, *, region: str = "us-east-1", seeders: list[Seeder] | None = None) -> World:
    """Create the sandbox platform on the server at ``endpoint_url``; return what was made."""
    world = World(endpoint_url=endpoint_url, region=region)
    for seeder in SEEDERS if seeders is None else seeders:
        seeder(world)
    return world


def sandbox_env(endpoint_url: str, region: str = "us-east-1") -> dict[str, str]:
    """The environment variables that point fireline and the AWS CLI at the sandbox."""
    return {
        "FIRELINE_AWS_ENDPOINT_URL": endpoint_url,
        "FIRELINE_AWS_REGION": region,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
    }

from integrations.models.seed import MODEL_SEEDERS  # noqa: E402 - the model registry's seeders, after the platform's

SEEDERS += MODEL_SEEDERS
