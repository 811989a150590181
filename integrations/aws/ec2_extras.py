"""The parts of EC2 isolation beyond the instance: the isolation groups, Auto Scaling, target groups."""

from __future__ import annotations

import threading
from typing import Any

from flows.actions.context import ActionContext
from flows.errors import IntegrationError
from integrations.aws.session import aws_errors, client, paginate, tag_list
from integrations.aws.stable import ASG_INSTANCE, wait_stable

ASG_PERMISSIONS = ("autoscaling:DescribeAutoScalingInstances", "autoscaling:DetachInstances")
ELB_PERMISSIONS = (
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DeregisterTargets",
)
UNDO_EXTRA_PERMISSIONS = (
    "ec2:ModifyNetworkInterfaceAttribute",
    "autoscaling:AttachInstances",
    "elasticloadbalancing:RegisterTargets",
)


def isolation_group(ctx: ActionContext, ec2: Any, vpc_id: str, name: str, *, open_all: bool = False) -> str:
    """The id of one of the VPC's isolation groups, created (and its rules set) when needed.

    ``open_all=False``: the quarantine group, emptied of every rule. ``open_all=True``: the untracking
    group, allowing all traffic in and out from 0.0.0.0/0 and ::/0, which makes the instance's flows
    untracked (Amazon EC2 User Guide, "Security group connection tracking", untracked connections) so
    that the move to the quarantine group cuts them. Fan-out steps isolate many instances of one VPC
    at once: a per-run lock makes one of them create the group, and a duplicate-group answer from a
    concurrent run elsewhere is resolved by reading it.
    """
    key = f"{vpc_id}:{name}:{'open' if open_all else 'closed'}"
    lock: threading.Lock = ctx.services.get_or_create(f"aws:ec2:isolation-lock:{key}", threading.Lock)
    with lock:
        cached = ctx.services.cache.get(f"aws:ec2:isolation:{key}")
        if cached:
            return str(cached)
        group = _find_group(ec2, vpc_id, name)
        if group is None:
            group = _create_group(ctx, ec2, vpc_id, name, open_all)
        if open_all:
            _open_rules(ec2, group)
        else:
            _strip_rules(ec2, group)
        ctx.services.cache[f"aws:ec2:isolation:{key}"] = group["GroupId"]
        return str(group["GroupId"])


def quarantine_group(ctx: ActionContext, ec2: Any, vpc_id: str, name: str) -> str:
    """The VPC's rule-less quarantine group (see :func:`isolation_group`)."""
    return isolation_group(ctx, ec2, vpc_id, name)


def _find_group(ec2: Any, vpc_id: str, name: str) -> dict[str, Any] | None:
    filters = [{"Name": "group-name", "Values": [name]}]
    if vpc_id:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    with aws_errors(f"find security group {name} in {vpc_id}"):
        groups = ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
    return groups[0] if groups else None


def _create_group(ctx: ActionContext, ec2: Any, vpc_id: str, name: str, open_all: bool) -> dict[str, Any]:
    purpose = "untrack" if open_all else "quarantine"
    description = (
        "fireline isolation, first phase: all traffic, so tracked flows become untracked"
        if open_all
        else "fireline quarantine: no ingress, no egress"
    )
    try:
        with aws_errors(f"create security group {name} in {vpc_id}"):
            ec2.create_security_group(
                GroupName=name,
                VpcId=vpc_id,
                Description=description,
                TagSpecifications=[
                    {
                        "ResourceType": "security-group",
                        "Tags": tag_list({"fireline:purpose": purpose, "fireline:incident": ctx.incident.id}),
                    }
                ],
            )
    except IntegrationError as e:
        if e.details.get("code") != "InvalidGroup.Duplicate":
            raise
    group = _find_group(ec2, vpc_id, name)
    if group is None:
        raise IntegrationError(f"security group {name} in {vpc_id} was created but cannot be read back", retryable=True)
    return group


def _allows_all(permissions: list[dict[str, Any]]) -> tuple[bool, bool]:
    """Whether the rules allow all protocols from/to 0.0.0.0/0 and from/to ::/0."""
    every = [p for p in permissions if p.get("IpProtocol") == "-1"]
    v4 = any(r.get("CidrIp") == "0.0.0.0/0" for p in every for r in p.get("IpRanges", []))
    v6 = any(r.get("CidrIpv6") == "::/0" for p in every for r in p.get("Ipv6Ranges", []))
    return v4, v6


def _open_rules(ec2: Any, group: dict[str, Any]) -> None:
    """Allow all traffic in and out (IPv4 and IPv6), adding only the rules that are missing."""
    group_id = group["GroupId"]
    directions = (("ingress", group.get("IpPermissions", [])), ("egress", group.get("IpPermissionsEgress", [])))
    for direction, current in directions:
        v4, v6 = _allows_all(current)
        wanted: dict[str, Any] = {"IpProtocol": "-1"}
        if not v4:
            wanted["IpRanges"] = [{"CidrIp": "0.0.0.0/0"}]
        if not v6:
            wanted["Ipv6Ranges"] = [{"CidrIpv6": "::/0"}]
        if len(wanted) == 1:
            continue
        call = ec2.authorize_security_group_ingress if direction == "ingress" else ec2.authorize_security_group_egress
        try:
            with aws_errors(f"allow all {direction} on {group_id}"):
                call(GroupId=group_id, IpPermissions=[wanted])
        except IntegrationError as e:
            if e.details.get("code") != "InvalidPermission.Duplicate":  # a concurrent run added it
                raise


def _strip_rules(ec2: Any, group: dict[str, Any]) -> None:
    """Revoke every rule of the group: the default allow-all egress rule and anything added by hand."""
    group_id = group["GroupId"]
    with aws_errors(f"revoke rules of {group_id}"):
        if group.get("IpPermissionsEgress"):
            ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=_clean(group["IpPermissionsEgress"]))
        if group.get("IpPermissions"):
            ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=_clean(group["IpPermissions"]))


def _clean(permissions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Permissions as described, minus the keys the revoke calls refuse when empty."""
    out = []
    for perm in permissions:
        kept = {k: v for k, v in perm.items() if v not in ([], None)}
        kept["UserIdGroupPairs"] = [
            {k: v for k, v in pair.items() if k in ("GroupId", "UserId")} for pair in perm.get("UserIdGroupPairs", [])
        ]
        if not kept["UserIdGroupPairs"]:
            del kept["UserIdGroupPairs"]
        out.append(kept)
    return out


def asg_membership(ctx: ActionContext, instance_id: str, region: str | None) -> str | None:
    """The instance's Auto Scaling group once its lifecycle state lets it be detached (None: in no group).

    A ``Pending`` instance, or one a launch lifecycle hook holds in ``Pending:Wait``, refuses
    DetachInstances; this waits for ``InService`` or ``Standby`` within the step's timeout. A
    ``Terminating`` one is a clear error: the group is about to destroy the evidence.
    """
    asg = client(ctx, "autoscaling", region)
    seen: dict[str, Any] = {}

    def read() -> str:
        with aws_errors(f"find the Auto Scaling group of {instance_id}"):
            found = asg.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
        seen.clear()
        seen.update(found[0] if found else {})
        return str(seen.get("LifecycleState", "InService")) if found else "InService"

    wait_stable(ctx, ASG_INSTANCE, instance_id, read)
    return str(seen["AutoScalingGroupName"]) if seen else None


def detach_from_asg(ctx: ActionContext, instance_id: str, region: str | None) -> str | None:
    name = asg_membership(ctx, instance_id, region)
    if name is None:
        return None
    asg = client(ctx, "autoscaling", region)
    with aws_errors(f"detach {instance_id} from {name}"):
        asg.detach_instances(InstanceIds=[instance_id], AutoScalingGroupName=name, ShouldDecrementDesiredCapacity=False)
    return name


def reattach_to_asg(ctx: ActionContext, instance_id: str, name: str, region: str | None) -> None:
    with aws_errors(f"attach {instance_id} to {name}"):
        client(ctx, "autoscaling", region).attach_instances(InstanceIds=[instance_id], AutoScalingGroupName=name)


def deregister_targets(ctx: ActionContext, instance_id: str, region: str | None) -> list[dict[str, Any]]:
    """Deregister the instance from every target group it is in; return what was deregistered."""
    elb = client(ctx, "elbv2", region)
    removed: list[dict[str, Any]] = []
    with aws_errors("list target groups"):
        groups = list(paginate(elb, "describe_target_groups", "TargetGroups"))
    for group in groups:
        arn_ = group["TargetGroupArn"]
        with aws_errors(f"read target health of {arn_}"):
            health = elb.describe_target_health(TargetGroupArn=arn_)["TargetHealthDescriptions"]
        targets = [h["Target"] for h in health if h["Target"]["Id"] == instance_id]
        if targets:
            with aws_errors(f"deregister {instance_id} from {arn_}"):
                elb.deregister_targets(TargetGroupArn=arn_, Targets=targets)
            removed.append({"target_group_arn": arn_, "targets": targets})
    return removed


def reregister_targets(ctx: ActionContext, removed: list[dict[str, Any]], region: str | None) -> None:
    elb = client(ctx, "elbv2", region)
    for entry in removed:
        with aws_errors(f"register targets in {entry['target_group_arn']}"):
            elb.register_targets(TargetGroupArn=entry["target_group_arn"], Targets=entry["targets"])
