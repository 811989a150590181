"""EC2 isolation and snapshots against the moto server."""

from __future__ import annotations

import json

import pytest

from flows.errors import ActionError
from integrations.aws.ec2 import IsolateInstance, IsolateParams
from integrations.aws.ec2_snapshot import SnapshotParams, SnapshotVolumes
from integrations.aws.sandbox import World, run_instance, seed_inference_hosts, seed_network
from tests.fixtures.moto import AwsEnv

pytestmark = pytest.mark.moto_server


def _instance(aws: AwsEnv, instance_id: str) -> dict:  # type: ignore[type-arg]
    found = aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return found  # type: ignore[no-any-return]


def _groups(aws: AwsEnv, instance_id: str) -> list[str]:
    return sorted(g["GroupId"] for g in _instance(aws, instance_id)["SecurityGroups"])


def test_isolate_moves_every_interface_onto_a_rule_less_group_and_protects_the_instance(aws: AwsEnv) -> None:
    world = aws.seed(seed_network, seed_inference_hosts)
    host = world.data["inference_instances"][0]
    ctx = aws.context()
    result = IsolateInstance().apply(IsolateParams(instance_id=host), ctx)
    ec2 = aws.client("ec2")
    assert result.changed
    assert _groups(aws, host) == [result.quarantine_group_id]
    group = ec2.describe_security_groups(GroupIds=[result.quarantine_group_id])["SecurityGroups"][0]
    assert group["GroupName"] == "fireline-quarantine"
    assert group["IpPermissions"] == []
    assert group["IpPermissionsEgress"] == []
    assert [sorted(g) for g in result.previous_groups.values()] == [sorted(world.data["security_groups"])]
    tags = {t["Key"]: t["Value"] for t in _instance(aws, host)["Tags"]}
    assert tags["fireline:isolated-by"] == ctx.incident.id
    protection = ec2.describe_instance_attribute(InstanceId=host, Attribute="disableApiTermination")
    assert protection["DisableApiTermination"]["Value"] is True


def test_second_isolate_is_a_recorded_no_op_and_undo_restores(aws: AwsEnv) -> None:
    world = aws.seed(seed_network, seed_inference_hosts)
    host = world.data["inference_instances"][0]
    before = _groups(aws, host)
    action, params = IsolateInstance(), IsolateParams(instance_id=host)
    first = action.apply(params, aws.context())
    # A fresh run (another process, no cached group id) must still see that the work is done.
    second = action.apply(params, aws.context("run-2"))
    assert not second.changed
    assert "already isolated" in second.summary
    assert second.previous_groups == first.previous_groups  # remembered through the interface tag
    action.undo(first, aws.context())
    assert _groups(aws, host) == before
    protection = aws.client("ec2").describe_instance_attribute(InstanceId=host, Attribute="disableApiTermination")
    assert protection["DisableApiTermination"]["Value"] is False


def test_one_quarantine_group_per_vpc_even_when_isolating_in_parallel(aws: AwsEnv) -> None:
    from concurrent.futures import ThreadPoolExecutor

    world = aws.seed(seed_network)
    hosts = [run_instance(world, f"h{i}", {"env": "ml-prod"}) for i in range(6)]
    ctx = aws.context()
    with ThreadPoolExecutor(6) as pool:
        results = list(
            pool.map(
                lambda h: IsolateInstance().apply(IsolateParams(instance_id=h), ctx.for_step("isolate", h, h)), hosts
            )
        )
    assert len({r.quarantine_group_id for r in results}) == 1
    named = aws.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["fireline-quarantine"]}]
    )
    assert len(named["SecurityGroups"]) == 1


def test_isolate_detaches_from_auto_scaling_and_target_groups_and_undo_reattaches(aws: AwsEnv) -> None:
    world = aws.seed(seed_network, seed_inference_hosts)
    host = world.data["inference_instances"][0]
    asg, elb, ec2 = aws.client("autoscaling"), aws.client("elbv2"), aws.client("ec2")
    asg.create_launch_configuration(LaunchConfigurationName="lc", ImageId="ami-12c6146b", InstanceType="t3.micro")
    asg.create_auto_scaling_group(
        AutoScalingGroupName="inference",
        LaunchConfigurationName="lc",
        MinSize=0,
        MaxSize=3,
        DesiredCapacity=0,
        VPCZoneIdentifier=world.data["subnet_id"],
    )
    asg.attach_instances(InstanceIds=[host], AutoScalingGroupName="inference")
    tg = elb.create_target_group(
        Name="inference", Protocol="HTTP", Port=443, VpcId=world.data["vpc_id"], TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": host}])
    params = IsolateParams(instance_id=host, detach_from_asg=True, deregister_target_groups=True)
    result = IsolateInstance().apply(params, aws.context())
    assert result.asg_name == "inference"
    assert asg.describe_auto_scaling_instances(InstanceIds=[host])["AutoScalingInstances"] == []
    assert [t["target_group_arn"] for t in result.target_groups] == [tg]
    assert elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"] == []
    IsolateInstance().undo(result, aws.context())
    assert (
        asg.describe_auto_scaling_instances(InstanceIds=[host])["AutoScalingInstances"][0]["AutoScalingGroupName"]
        == "inference"
    )
    assert [d["Target"]["Id"] for d in elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]] == [
        host
    ]
    assert ec2 is not None


def test_plan_declares_the_instance_with_its_tags(aws: AwsEnv) -> None:
    world = aws.seed(seed_network, seed_inference_hosts)
    host = world.data["protected_instance"]
    plan = IsolateInstance().plan(IsolateParams(instance_id=host), aws.context(mode="dry-run"))
    assert [t.id for t in plan.targets] == [host]
    assert plan.targets[0].tags is not None
    assert plan.targets[0].tags["fireline/protected"] == "true"
    assert any("fireline-quarantine" in c for c in plan.changes)


def test_plan_works_without_credentials(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    plan = IsolateInstance().plan(IsolateParams(instance_id="i-0123456789abcdef0"), aws.context(mode="dry-run"))
    assert plan.targets[0].tags is None
    assert any("no AWS credentials" in w for w in plan.warnings)


def test_a_missing_instance_is_a_clear_error_in_plan_and_apply(aws: AwsEnv) -> None:
    missing = "i-0123456789abcdef0"
    with pytest.raises(ActionError, match=rf"describe instance {missing}: InvalidInstanceID\.NotFound"):
        IsolateInstance().plan(IsolateParams(instance_id=missing), aws.context(mode="dry-run"))
    with pytest.raises(ActionError, match=r"InvalidInstanceID\.NotFound") as caught:
        SnapshotVolumes().apply(SnapshotParams(instance_id=missing), aws.context())
    assert not caught.value.retryable


def test_snapshots_every_volume_tagged_and_reuses_them_after_a_crash(aws: AwsEnv) -> None:
    world: World = aws.seed(seed_network, seed_inference_hosts)
    host = world.data["inference_instances"][0]
    ctx = aws.context(step_id="snapshot-disks", item=host, item_key=host)
    first = SnapshotVolumes().apply(SnapshotParams(instance_id=host), ctx)
    volumes = [m["Ebs"]["VolumeId"] for m in _instance(aws, host)["BlockDeviceMappings"]]
    assert sorted(first.snapshots) == sorted(volumes)
    assert len(volumes) == 2
    snaps = aws.client("ec2").describe_snapshots(SnapshotIds=list(first.snapshots.values()))["Snapshots"]
    for snap in snaps:
        tags = {t["Key"]: t["Value"] for t in snap["Tags"]}
        assert tags["fireline:incident"] == ctx.incident.id
        assert tags["fireline:source-instance"] == host
    # The same idempotency key (a retry after a crash) finds the snapshots instead of taking new ones.
    again = SnapshotVolumes().apply(
        SnapshotParams(instance_id=host), aws.context(step_id="snapshot-disks", item=host, item_key=host)
    )
    assert not again.changed
    assert sorted(again.reused) == sorted(first.snapshots.values())
    assert (
        len(
            aws.client("ec2").describe_snapshots(
                OwnerIds=["self"], Filters=[{"Name": "tag:fireline:source-instance", "Values": [host]}]
            )["Snapshots"]
        )
        == 2
    )
    manifest = json.loads((ctx.record.dir / "evidence" / "manifest.json").read_text())
    assert [i["id"] for i in manifest["items"]] == [first.evidence_id]  # the retry did not add a second item
