"""Reading an EC2 instance and moving its network interfaces between security groups."""

from __future__ import annotations

from typing import Any

from flows.actions.context import ActionContext
from flows.actions.registry import Target
from flows.errors import ActionError
from integrations.aws.common import arn, live_read
from integrations.aws.session import aws_errors, client, tag_dict
from integrations.aws.stable import EC2_INSTANCE, wait_stable

INSTANCE_ID = r"^i-[0-9a-f]{8,17}$"
PREVIOUS_TAG = "fireline:previous-groups"


def describe_instance(ctx: ActionContext, instance_id: str, region: str | None) -> dict[str, Any]:
    ec2 = client(ctx, "ec2", region)
    reservations = live_read(
        f"describe instance {instance_id}", lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    )
    instances = [i for r in reservations for i in r["Instances"]]
    if not instances:
        raise ActionError(f"instance {instance_id} not found")
    found: dict[str, Any] = instances[0]
    return found


def settled_instance(ctx: ActionContext, instance_id: str, region: str | None) -> dict[str, Any]:
    """The instance once it is ``running`` or ``stopped`` (a ``pending`` one has no settled interfaces)."""
    seen: dict[str, Any] = {}

    def read() -> str:
        seen.update(describe_instance(ctx, instance_id, region))
        return str(seen.get("State", {}).get("Name", "running"))

    wait_stable(ctx, EC2_INSTANCE, instance_id, read)
    return seen


def instance_target(instance_id: str, region: str | None, found: dict[str, Any] | None) -> Target:
    tags = tag_dict(found.get("Tags")) if found is not None else None
    return Target(
        type="aws:ec2:instance",
        id=instance_id,
        arn=arn("ec2", f"instance/{instance_id}", region=region or ""),
        region=region,
        tags=tags,
    )


def set_groups(ec2: Any, instance_id: str, eni: dict[str, Any], groups: list[str]) -> None:
    """Put an interface on exactly ``groups``.

    For the primary interface the instance's groups are set too: AWS treats the two as one, while
    moto keeps them apart and reports their union, so without the second call it would keep
    showing the old groups. On AWS the second call changes nothing.
    """
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"], Groups=groups)
    if (eni.get("Attachment") or {}).get("DeviceIndex", 0) == 0:
        ec2.modify_instance_attribute(InstanceId=instance_id, Groups=groups)


def remembered_groups(ec2: Any, eni_id: str) -> list[str]:
    """The groups an earlier attempt recorded on the interface before moving it."""
    with aws_errors(f"describe {eni_id}"):
        described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]
    remembered = tag_dict(described.get("TagSet")).get(PREVIOUS_TAG, "")
    return [g for g in remembered.split(",") if g]


def move_interface(
    ec2: Any, instance_id: str, eni: dict[str, Any], untrack_group: str | None, quarantine_group: str
) -> tuple[list[str], list[str]]:
    """Move one interface onto the quarantine group, through the untracking group when given.

    Returns (previous groups, phases done now: ``untrack`` and/or ``isolate``). The previous groups
    are tagged on the interface before the first move, so a retry after a crash between the two
    phases (the interface left on the untracking group) still knows them and finishes the move.
    """
    eni_id = eni["NetworkInterfaceId"]
    current = [g["GroupId"] for g in eni.get("Groups", [])]
    if current == [quarantine_group]:
        return remembered_groups(ec2, eni_id), []
    phases: list[str] = []
    with aws_errors(f"isolate {eni_id}"):
        if untrack_group is not None and current == [untrack_group]:
            previous = remembered_groups(ec2, eni_id)
        else:
            previous = current
            ec2.create_tags(Resources=[eni_id], Tags=[{"Key": PREVIOUS_TAG, "Value": ",".join(current)}])
            if untrack_group is not None:
                set_groups(ec2, instance_id, eni, [untrack_group])
                phases.append("untrack")
        set_groups(ec2, instance_id, eni, [quarantine_group])
        phases.append("isolate")
    return previous, phases


def protect(ec2: Any, instance_id: str) -> bool:
    """Enable termination protection; False when it was on already."""
    with aws_errors(f"termination protection of {instance_id}"):
        current = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
        if current.get("DisableApiTermination", {}).get("Value"):
            return False
        ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})
    return True


def volumes(found: dict[str, Any]) -> list[str]:
    return [m["Ebs"]["VolumeId"] for m in found.get("BlockDeviceMappings", []) if "Ebs" in m]
