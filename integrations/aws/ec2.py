"""EC2 actions: isolate an instance behind a quarantine security group; snapshot its volumes.

Isolation swaps every network interface of the instance onto one quarantine group per VPC (no
ingress rules, default egress rule revoked), so established connections drop at the next packet
and nothing new gets in or out. The previous groups are written to each interface's
``fireline:previous-groups`` tag *before* the swap, so a retry after a crash still knows them and
``undo`` can put them back.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Target, UndoResult, action
from flows.record.store import iso, utcnow
from integrations.aws import ec2_extras
from integrations.aws.common import arn, live_read, plan_read, store_json
from integrations.aws.session import aws_errors, client, tag_dict, tag_list

INSTANCE_ID = r"^i-[0-9a-f]{8,17}$"
PREVIOUS_TAG = "fireline:previous-groups"
ISOLATED_TAG = "fireline:isolated-by"
IDEMPOTENCY_TAG = "fireline:idempotency-token"


def describe_instance(ctx: ActionContext, instance_id: str, region: str | None) -> dict[str, Any]:
    ec2 = client(ctx, "ec2", region)
    reservations = live_read(
        f"describe instance {instance_id}", lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    )
    instances = [i for r in reservations for i in r["Instances"]]
    if not instances:
        from flows.errors import ActionError

        raise ActionError(f"instance {instance_id} not found")
    found: dict[str, Any] = instances[0]
    return found


def instance_target(instance_id: str, region: str | None, found: dict[str, Any] | None) -> Target:
    tags = tag_dict(found.get("Tags")) if found is not None else None
    return Target(
        type="aws:ec2:instance",
        id=instance_id,
        arn=arn("ec2", f"instance/{instance_id}", region=region or ""),
        region=region,
        tags=tags,
    )


class IsolateParams(ActionParams):
    instance_id: str = Field(pattern=INSTANCE_ID)
    region: str | None = None
    quarantine_group_name: str = Field(default="fireline-quarantine", max_length=200)
    termination_protection: bool = True
    detach_from_asg: bool = Field(
        default=False, description="Detach from its Auto Scaling group (desired capacity kept)."
    )
    deregister_target_groups: bool = Field(default=False, description="Deregister from every ELBv2 target group.")


class IsolateResult(ActionResult):
    instance_id: str
    region: str | None = None
    vpc_id: str = ""
    quarantine_group_id: str = ""
    previous_groups: dict[str, list[str]] = Field(default_factory=dict, description="Network interface id -> groups.")
    termination_protection_set: bool = False
    asg_name: str | None = None
    target_groups: list[dict[str, Any]] = Field(default_factory=list)


ISOLATE_PERMISSIONS = (
    "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:CreateSecurityGroup",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:CreateTags",
    "ec2:DescribeInstanceAttribute",
    "ec2:ModifyInstanceAttribute",
)


@action(
    "aws.ec2.isolate_instance",
    kind=ActionKind.CONTAINMENT,
    params=IsolateParams,
    result=IsolateResult,
    permissions=(*ISOLATE_PERMISSIONS, *ec2_extras.ASG_PERMISSIONS, *ec2_extras.ELB_PERMISSIONS),
    undo_permissions=("ec2:DeleteTags", *ec2_extras.UNDO_EXTRA_PERMISSIONS),
)
class IsolateInstance(Action[IsolateParams, IsolateResult]):
    """Cut an instance off the network with a rule-less quarantine security group.

    Every network interface is moved onto the group; the instance is tagged and protected from
    termination (evidence must survive); optionally it leaves its Auto Scaling group and target groups.
    """

    def plan(self, params: IsolateParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        found = plan_read(
            ctx,
            f"describe instance {params.instance_id}",
            lambda: describe_instance(ctx, params.instance_id, params.region),
            warnings,
        )
        changes = [
            f"move every network interface of {params.instance_id} onto security group "
            f"{params.quarantine_group_name!r} (no ingress, no egress)"
        ]
        if found is not None:
            for eni in found.get("NetworkInterfaces", []):
                groups = ", ".join(g["GroupId"] for g in eni.get("Groups", []))
                changes.append(f"{eni['NetworkInterfaceId']}: [{groups}] -> [{params.quarantine_group_name}]")
        changes.append(f"tag {params.instance_id} {ISOLATED_TAG}={ctx.incident.id}")
        if params.termination_protection:
            changes.append(f"enable termination protection on {params.instance_id}")
        if params.detach_from_asg:
            changes.append("detach from its Auto Scaling group, if any (desired capacity kept: a replacement starts)")
        if params.deregister_target_groups:
            changes.append("deregister from every ELBv2 target group it is registered in")
        return Plan(
            action=self.name,
            summary=f"isolate {params.instance_id}",
            changes=changes,
            warnings=warnings,
            targets=[instance_target(params.instance_id, params.region, found)],
        )

    def apply(self, params: IsolateParams, ctx: ActionContext) -> IsolateResult:
        ec2 = client(ctx, "ec2", params.region)
        found = describe_instance(ctx, params.instance_id, params.region)
        vpc_id = found.get("VpcId", "")
        group_id = ec2_extras.quarantine_group(ctx, ec2, vpc_id, params.quarantine_group_name)
        result = IsolateResult(
            changed=False,
            instance_id=params.instance_id,
            region=params.region,
            vpc_id=vpc_id,
            quarantine_group_id=group_id,
        )
        for eni in found.get("NetworkInterfaces", []):
            ctx.check_cancelled()
            previous, moved = _swap_interface(ec2, params.instance_id, eni, group_id)
            result.previous_groups[eni["NetworkInterfaceId"]] = previous
            result.changed |= moved
        tags = tag_dict(found.get("Tags"))
        if ISOLATED_TAG not in tags:  # an instance isolated by an earlier incident keeps that incident's tag
            with aws_errors(f"tag {params.instance_id}"):
                ec2.create_tags(
                    Resources=[params.instance_id],
                    Tags=tag_list({ISOLATED_TAG: ctx.incident.id, "fireline:isolated-at": iso(utcnow())}),
                )
            result.changed = True
        if params.termination_protection:
            result.termination_protection_set = _protect(ec2, params.instance_id)
            result.changed |= result.termination_protection_set
        if params.detach_from_asg:
            result.asg_name = ec2_extras.detach_from_asg(ctx, params.instance_id, params.region)
            result.changed |= result.asg_name is not None
        if params.deregister_target_groups:
            result.target_groups = ec2_extras.deregister_targets(ctx, params.instance_id, params.region)
            result.changed |= bool(result.target_groups)
        count = sum(1 for groups in result.previous_groups.values() if groups)
        result.summary = (
            f"isolated {params.instance_id}: {count} interface(s) on {group_id}"
            if result.changed
            else f"{params.instance_id} was already isolated (no change)"
        )
        return result

    def undo(self, result: IsolateResult, ctx: ActionContext) -> UndoResult:
        ec2 = client(ctx, "ec2", result.region)
        found = describe_instance(ctx, result.instance_id, result.region)
        for eni in found.get("NetworkInterfaces", []):
            groups = result.previous_groups.get(eni["NetworkInterfaceId"])
            if groups:
                with aws_errors(f"restore groups of {eni['NetworkInterfaceId']}"):
                    set_groups(ec2, result.instance_id, eni, groups)
                    ec2.delete_tags(Resources=[eni["NetworkInterfaceId"]], Tags=[{"Key": PREVIOUS_TAG}])
        with aws_errors(f"untag {result.instance_id}"):
            ec2.delete_tags(
                Resources=[result.instance_id], Tags=[{"Key": ISOLATED_TAG}, {"Key": "fireline:isolated-at"}]
            )
            if result.termination_protection_set:
                ec2.modify_instance_attribute(InstanceId=result.instance_id, DisableApiTermination={"Value": False})
        if result.asg_name:
            ec2_extras.reattach_to_asg(ctx, result.instance_id, result.asg_name, result.region)
        if result.target_groups:
            ec2_extras.reregister_targets(ctx, result.target_groups, result.region)
        return UndoResult(summary=f"restored the previous security groups of {result.instance_id}")

    def policy_statements(self, params: IsolateParams | None) -> list[dict[str, Any]]:
        # Interfaces and the quarantine group are only known at run time, so EC2 resources stay "*".
        actions = [*ISOLATE_PERMISSIONS, "ec2:DeleteTags"]
        if params is None or getattr(params, "detach_from_asg", False):
            actions += [*ec2_extras.ASG_PERMISSIONS, "autoscaling:AttachInstances"]
        if params is None or getattr(params, "deregister_target_groups", False):
            actions += [*ec2_extras.ELB_PERMISSIONS, "elasticloadbalancing:RegisterTargets"]
        return [{"Effect": "Allow", "Action": sorted(set(actions)), "Resource": "*"}]


def _swap_interface(ec2: Any, instance_id: str, eni: dict[str, Any], group_id: str) -> tuple[list[str], bool]:
    """Move one interface onto the quarantine group; return (previous groups, whether it moved)."""
    eni_id = eni["NetworkInterfaceId"]
    current = [g["GroupId"] for g in eni.get("Groups", [])]
    if current == [group_id]:
        # Already moved (a retry, or a second run): the tag written before the swap remembers.
        with aws_errors(f"describe {eni_id}"):
            described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]
        remembered = tag_dict(described.get("TagSet")).get(PREVIOUS_TAG, "")
        return [g for g in remembered.split(",") if g], False
    with aws_errors(f"isolate {eni_id}"):
        ec2.create_tags(Resources=[eni_id], Tags=[{"Key": PREVIOUS_TAG, "Value": ",".join(current)}])
        set_groups(ec2, instance_id, eni, [group_id])
    return current, True


def set_groups(ec2: Any, instance_id: str, eni: dict[str, Any], groups: list[str]) -> None:
    """Put an interface on exactly ``groups``.

    For the primary interface the instance's groups are set too: AWS treats the two as one, while
    moto keeps them apart and reports their union, so without the second call it would keep
    showing the old groups. On AWS the second call changes nothing.
    """
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"], Groups=groups)
    if (eni.get("Attachment") or {}).get("DeviceIndex", 0) == 0:
        ec2.modify_instance_attribute(InstanceId=instance_id, Groups=groups)


def _protect(ec2: Any, instance_id: str) -> bool:
    with aws_errors(f"termination protection of {instance_id}"):
        current = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
        if current.get("DisableApiTermination", {}).get("Value"):
            return False
        ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})
    return True


class SnapshotParams(ActionParams):
    instance_id: str = Field(pattern=INSTANCE_ID)
    region: str | None = None
    description: str = Field(default="", max_length=200)


class SnapshotResult(ActionResult):
    instance_id: str
    snapshots: dict[str, str] = Field(default_factory=dict, description="Volume id -> snapshot id.")
    reused: list[str] = Field(default_factory=list, description="Snapshots found from an earlier attempt.")
    evidence_id: str = ""


@action(
    "aws.ec2.snapshot_volumes",
    kind=ActionKind.EVIDENCE,
    params=SnapshotParams,
    result=SnapshotResult,
    permissions=("ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:CreateSnapshot", "ec2:CreateTags"),
)
class SnapshotVolumes(Action[SnapshotParams, SnapshotResult]):
    """Snapshot every volume attached to an instance, tagged with the incident id.

    Each snapshot carries an idempotency tag, so an apply retried after a crash finds the
    snapshots it already started instead of taking new ones.
    """

    def plan(self, params: SnapshotParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        found = plan_read(
            ctx,
            f"describe instance {params.instance_id}",
            lambda: describe_instance(ctx, params.instance_id, params.region),
            warnings,
        )
        volumes = _volumes(found) if found is not None else []
        what = ", ".join(volumes) if volumes else "every attached volume"
        return Plan(
            action=self.name,
            summary=f"snapshot {what} of {params.instance_id}",
            mutating=False,
            reads=[f"{params.instance_id}: {what}"],
            warnings=warnings,
            changes=[f"create snapshot of {v} tagged fireline:incident={ctx.incident.id}" for v in volumes],
            targets=[instance_target(params.instance_id, params.region, found)],
        )

    def apply(self, params: SnapshotParams, ctx: ActionContext) -> SnapshotResult:
        ec2 = client(ctx, "ec2", params.region)
        found = describe_instance(ctx, params.instance_id, params.region)
        token = ctx.short_token
        result = SnapshotResult(changed=False, instance_id=params.instance_id)
        for volume_id in _volumes(found):
            ctx.check_cancelled()
            existing = live_read(
                f"describe snapshots of {volume_id}",
                partial(
                    ec2.describe_snapshots,
                    OwnerIds=["self"],
                    Filters=[
                        {"Name": "volume-id", "Values": [volume_id]},
                        {"Name": f"tag:{IDEMPOTENCY_TAG}", "Values": [token]},
                    ],
                ),
            )["Snapshots"]
            if existing:
                result.snapshots[volume_id] = existing[0]["SnapshotId"]
                result.reused.append(existing[0]["SnapshotId"])
                continue
            tags = {
                IDEMPOTENCY_TAG: token,
                "fireline:incident": ctx.incident.id,
                "fireline:run": ctx.run_id,
                "fireline:source-instance": params.instance_id,
            }
            with aws_errors(f"snapshot {volume_id}"):
                made = ec2.create_snapshot(
                    VolumeId=volume_id,
                    Description=(params.description or f"fireline {ctx.incident.id} {params.instance_id}")[:255],
                    TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(tags)}],
                )
            result.snapshots[volume_id] = made["SnapshotId"]
            result.changed = True
        doc = {"instance": found, "snapshots": result.snapshots, "idempotency_token": token}
        item = store_json(
            ctx,
            f"{params.instance_id}-snapshots.json",
            doc,
            description="instance and its volume snapshots",
            source_arn=arn("ec2", f"instance/{params.instance_id}", region=params.region or ""),
        )
        result.evidence_id = item.id
        result.summary = f"{len(result.snapshots)} snapshot(s) of {params.instance_id} ({len(result.reused)} reused)"
        return result


def _volumes(found: dict[str, Any]) -> list[str]:
    return [m["Ebs"]["VolumeId"] for m in found.get("BlockDeviceMappings", []) if "Ebs" in m]
