"""EC2 isolation: cut an instance off the network, tracked connections included.

Security groups are stateful: changing an instance's groups does not interrupt the flows that
are already tracked (an attacker's reverse shell, an exfiltration stream); they keep flowing until
they time out (Amazon EC2 User Guide, "Amazon EC2 security group connection tracking"). A swap onto
a rule-less group alone is therefore not isolation. Following the AWS Security Incident Response
Guide, isolation moves every interface first onto a group that allows all traffic from and to
0.0.0.0/0 and ::/0, which makes its flows untracked, and then onto the rule-less quarantine group,
which drops the untracked flows at their next packet. A network ACL deny on the subnet (stateless,
it cuts every flow at once) is an option where the blast radius allows it. The previous groups are
written to each interface's ``fireline:previous-groups`` tag *before* the first move, so a retry
after a crash still knows them and ``undo`` can put them back; ``undo`` removes the ACL entries too.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, UndoResult, action
from flows.record.store import iso, utcnow
from integrations.aws import ec2_extras, ec2_nacl
from integrations.aws.common import plan_read
from integrations.aws.ec2_instances import (
    INSTANCE_ID,
    PREVIOUS_TAG,
    describe_instance,
    instance_target,
    move_interface,
    protect,
    set_groups,
    settled_instance,
)
from integrations.aws.session import aws_errors, client, tag_dict, tag_list

ISOLATED_TAG = "fireline:isolated-by"


class IsolateParams(ActionParams):
    instance_id: str = Field(pattern=INSTANCE_ID)
    region: str | None = None
    quarantine_group_name: str = Field(default="fireline-quarantine", max_length=200)
    untrack_first: bool = Field(
        default=True,
        description="Move through an all-traffic group first so tracked connections are cut (AWS guidance). "
        "False: the one-step swap, which leaves already tracked connections open until they time out.",
    )
    untrack_group_name: str = Field(default="fireline-untrack", max_length=200)
    network_acl_deny: bool = Field(
        default=False, description="Also deny all traffic in the subnet's network ACL (cuts every host of the subnet)."
    )
    termination_protection: bool = True
    detach_from_asg: bool = Field(
        default=False, description="Detach from its Auto Scaling group (desired capacity kept)."
    )
    deregister_target_groups: bool = Field(default=False, description="Deregister from every ELBv2 target group.")


class IsolationPhase(BaseModel):
    """One phase of the isolation as it was done: ``untrack``, ``isolate`` or ``network_acl``."""

    model_config = ConfigDict(extra="forbid")

    phase: str
    at: str
    detail: str


class IsolateResult(ActionResult):
    instance_id: str
    region: str | None = None
    vpc_id: str = ""
    quarantine_group_id: str = ""
    untrack_group_id: str = ""
    phases: list[IsolationPhase] = Field(default_factory=list, description="What was done, in order.")
    tracked_connections: str = Field(default="", description="Whether connections tracked before survive.")
    previous_groups: dict[str, list[str]] = Field(default_factory=dict, description="Network interface id -> groups.")
    network_acl_id: str | None = None
    network_acl_entries: list[dict[str, Any]] = Field(default_factory=list)
    termination_protection_set: bool = False
    asg_name: str | None = None
    target_groups: list[dict[str, Any]] = Field(default_factory=list)


ISOLATE_PERMISSIONS = (
    "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:CreateSecurityGroup",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:CreateTags",
    "ec2:DescribeInstanceAttribute",
    "ec2:ModifyInstanceAttribute",
)
CUT = "cut: flows were made untracked before the move to the rule-less group"
SURVIVE = "may persist: a one-step swap leaves connections tracked before it open until they time out"


@action(
    "aws.ec2.isolate_instance",
    kind=ActionKind.CONTAINMENT,
    params=IsolateParams,
    result=IsolateResult,
    permissions=(
        *ISOLATE_PERMISSIONS,
        *ec2_nacl.PERMISSIONS,
        *ec2_extras.ASG_PERMISSIONS,
        *ec2_extras.ELB_PERMISSIONS,
    ),
    undo_permissions=("ec2:DeleteTags", *ec2_nacl.UNDO_PERMISSIONS, *ec2_extras.UNDO_EXTRA_PERMISSIONS),
)
class IsolateInstance(Action[IsolateParams, IsolateResult]):
    """Cut an instance off the network: all-traffic group, then the rule-less quarantine group.

    Every network interface makes both moves (so tracked connections are cut too); optionally the
    subnet's network ACL denies all traffic. The instance is tagged and protected from termination
    (evidence must survive); optionally it leaves its Auto Scaling group and target groups.
    """

    guidance = (
        "Amazon EC2 User Guide, Amazon EC2 security group connection tracking (tracked and untracked flows)",
        "AWS Security Incident Response Guide, isolation of an EC2 instance (all-traffic group, then no rules)",
        "Amazon VPC User Guide, network ACLs (stateless: a deny cuts existing flows)",
    )
    caveats = (
        "Between the two moves the instance is briefly open to all traffic; the moves are back to back.",
        "Automatically tracked connections stay tracked whatever the rules (traffic through a NAT gateway, "
        "a Network or Gateway Load Balancer, Global Accelerator, Network Firewall, a transit gateway, "
        "PrivateLink, an egress-only internet gateway): only network_acl_deny cuts those at once.",
        "network_acl_deny acts on the whole subnet: every other instance in it is cut off too.",
        "Traffic inside the subnet does not cross its network ACL.",
        "Not covered: the instance profile's credentials (quarantine the role with aws.iam.quarantine_principal), "
        "EBS volumes and snapshots shared elsewhere, processes running on the host.",
    )

    def plan(self, params: IsolateParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        found = plan_read(
            ctx,
            f"describe instance {params.instance_id}",
            lambda: describe_instance(ctx, params.instance_id, params.region),
            warnings,
        )
        via = f"{params.untrack_group_name!r} (all traffic, flows untracked), then " if params.untrack_first else ""
        changes = [
            f"move every network interface of {params.instance_id} onto security group {via}"
            f"{params.quarantine_group_name!r} (no ingress, no egress)"
        ]
        if not params.untrack_first:
            warnings.append(f"untrack_first is off: tracked connections {SURVIVE.split(': ', 1)[1]}")
        if found is not None:
            for eni in found.get("NetworkInterfaces", []):
                groups = ", ".join(g["GroupId"] for g in eni.get("Groups", []))
                changes.append(f"{eni['NetworkInterfaceId']}: [{groups}] -> [{params.quarantine_group_name}]")
        targets = [instance_target(params.instance_id, params.region, found)]
        if params.network_acl_deny:
            subnet = found.get("SubnetId", "its subnet") if found else "its subnet"
            changes.append(f"deny all traffic in and out of {subnet} in its network ACL (lowest free rule numbers)")
            if found is not None and found.get("SubnetId"):
                others = plan_read(
                    ctx,
                    f"list the instances of {subnet}",
                    lambda: ec2_nacl.neighbours(client(ctx, "ec2", params.region), subnet, params.instance_id),
                    warnings,
                )
                if others:
                    ids = [o["InstanceId"] for o in others]
                    warnings.append(f"the network ACL deny also cuts off {len(ids)} other instance(s): {ids}")
                    # They are cut off too: guards (max_targets, protected and required tags) see them.
                    targets += [instance_target(o["InstanceId"], params.region, o) for o in others]
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
            targets=targets,
        )

    def apply(self, params: IsolateParams, ctx: ActionContext) -> IsolateResult:
        ec2 = client(ctx, "ec2", params.region)
        found = settled_instance(ctx, params.instance_id, params.region)
        if params.detach_from_asg:  # a refused detach must not come after the network moves
            ec2_extras.asg_membership(ctx, params.instance_id, params.region)
        vpc_id = found.get("VpcId", "")
        group_id = ec2_extras.quarantine_group(ctx, ec2, vpc_id, params.quarantine_group_name)
        untrack = (
            ec2_extras.isolation_group(ctx, ec2, vpc_id, params.untrack_group_name, open_all=True)
            if params.untrack_first
            else None
        )
        result = IsolateResult(
            changed=False,
            instance_id=params.instance_id,
            region=params.region,
            vpc_id=vpc_id,
            quarantine_group_id=group_id,
            untrack_group_id=untrack or "",
            tracked_connections=CUT if untrack else SURVIVE,
        )
        self._move(ctx, ec2, params, found, result)
        if params.network_acl_deny and found.get("SubnetId"):
            acl_id, entries = ec2_nacl.deny_subnet(ctx, ec2, found["SubnetId"])
            result.network_acl_id, result.network_acl_entries = acl_id, entries
            self._phase(result, "network_acl", f"{acl_id}: deny all in and out of {found['SubnetId']}")
            result.tracked_connections = "cut: the subnet's network ACL denies all traffic"
        self._extras(ctx, ec2, params, found, result)
        count = sum(1 for groups in result.previous_groups.values() if groups)
        result.summary = (
            f"isolated {params.instance_id}: {count} interface(s) on {group_id}"
            + (f" via {untrack}" if untrack else " (one-step swap)")
            + (f", network ACL {result.network_acl_id} denies all" if result.network_acl_id else "")
            + f"; tracked connections {result.tracked_connections.split(':', 1)[0]}"
            if result.changed
            else f"{params.instance_id} was already isolated (no change)"
        )
        return result

    @staticmethod
    def _phase(result: IsolateResult, phase: str, detail: str) -> None:
        result.phases.append(IsolationPhase(phase=phase, at=iso(utcnow()), detail=detail))
        result.changed = True

    def _move(
        self, ctx: ActionContext, ec2: Any, params: IsolateParams, found: dict[str, Any], result: IsolateResult
    ) -> None:
        untrack = result.untrack_group_id or None
        for eni in found.get("NetworkInterfaces", []):
            ctx.check_cancelled()
            eni_id = eni["NetworkInterfaceId"]
            previous, phases = move_interface(ec2, params.instance_id, eni, untrack, result.quarantine_group_id)
            result.previous_groups[eni_id] = previous
            for phase in phases:
                group = untrack if phase == "untrack" else result.quarantine_group_id
                self._phase(result, phase, f"{eni_id} -> {group}")

    def _extras(
        self, ctx: ActionContext, ec2: Any, params: IsolateParams, found: dict[str, Any], result: IsolateResult
    ) -> None:
        if ISOLATED_TAG not in tag_dict(found.get("Tags")):  # an earlier incident's isolation keeps its tag
            with aws_errors(f"tag {params.instance_id}"):
                ec2.create_tags(
                    Resources=[params.instance_id],
                    Tags=tag_list({ISOLATED_TAG: ctx.incident.id, "fireline:isolated-at": iso(utcnow())}),
                )
            result.changed = True
        if params.termination_protection:
            result.termination_protection_set = protect(ec2, params.instance_id)
            result.changed |= result.termination_protection_set
        if params.detach_from_asg:
            result.asg_name = ec2_extras.detach_from_asg(ctx, params.instance_id, params.region)
            result.changed |= result.asg_name is not None
        if params.deregister_target_groups:
            result.target_groups = ec2_extras.deregister_targets(ctx, params.instance_id, params.region)
            result.changed |= bool(result.target_groups)

    def undo(self, result: IsolateResult, ctx: ActionContext) -> UndoResult:
        ec2 = client(ctx, "ec2", result.region)
        found = describe_instance(ctx, result.instance_id, result.region)
        for eni in found.get("NetworkInterfaces", []):
            groups = result.previous_groups.get(eni["NetworkInterfaceId"])
            if groups:
                with aws_errors(f"restore groups of {eni['NetworkInterfaceId']}"):
                    set_groups(ec2, result.instance_id, eni, groups)
                    ec2.delete_tags(Resources=[eni["NetworkInterfaceId"]], Tags=[{"Key": PREVIOUS_TAG}])
        removed = 0
        if result.network_acl_id:
            removed = ec2_nacl.lift_deny(ec2, result.network_acl_id, result.network_acl_entries)
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
        acl = f"; removed {removed} deny entr(ies) from {result.network_acl_id}" if result.network_acl_id else ""
        return UndoResult(summary=f"restored the previous security groups of {result.instance_id}{acl}")

    def policy_statements(self, params: IsolateParams | None) -> list[dict[str, Any]]:
        # Interfaces and the isolation groups are only known at run time, so EC2 resources stay "*".
        actions = [*ISOLATE_PERMISSIONS, "ec2:DeleteTags"]
        if params is None or getattr(params, "network_acl_deny", False):
            actions += [*ec2_nacl.PERMISSIONS, *ec2_nacl.UNDO_PERMISSIONS]
        if params is None or getattr(params, "detach_from_asg", False):
            actions += [*ec2_extras.ASG_PERMISSIONS, "autoscaling:AttachInstances"]
        if params is None or getattr(params, "deregister_target_groups", False):
            actions += [*ec2_extras.ELB_PERMISSIONS, "elasticloadbalancing:RegisterTargets"]
        return [{"Effect": "Allow", "Action": sorted(set(actions)), "Resource": "*"}]
