"""The optional network ACL phase of EC2 isolation: deny all traffic of the instance's subnet.

Network ACLs are stateless (Amazon VPC User Guide, "Control subnet traffic with network access
control lists"), so a deny entry cuts every flow at once, tracked or not; that is why the Amazon EC2
User Guide ("Security group connection tracking") names them as the way to interrupt traffic
immediately. A network ACL cannot name one instance as the destination of inbound traffic: its
entries match the source (inbound) or destination (outbound) range only, so the deny covers the
whole subnet, and every other instance in it. Use it when the blast radius allows (a subnet that
holds only the compromised hosts): the plan declares the other instances it would cut off as
targets, so ``max_targets``, ``protected_tags`` and ``require_tags`` apply to them too.

The deny entries take the lowest free rule numbers (entries are evaluated lowest first, so they
come before the subnet's allows) and are remembered in a tag on the ACL before they are created,
so a retry after a crash finds them and ``undo`` removes exactly them.
"""

from __future__ import annotations

from typing import Any

from flows.actions.context import ActionContext
from flows.errors import ActionError
from integrations.aws.session import aws_errors, tag_dict

NACL_TAG = "fireline:isolation-deny"
PERMISSIONS = ("ec2:DescribeNetworkAcls", "ec2:CreateNetworkAclEntry", "ec2:CreateTags")
UNDO_PERMISSIONS = ("ec2:DeleteNetworkAclEntry", "ec2:DeleteTags")
_RANGES = (("CidrBlock", "0.0.0.0/0"), ("Ipv6CidrBlock", "::/0"))


def subnet_acl(ec2: Any, subnet_id: str) -> dict[str, Any]:
    """The network ACL associated with ``subnet_id``."""
    with aws_errors(f"find the network ACL of {subnet_id}"):
        acls = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])[
            "NetworkAcls"
        ]
    if not acls:
        raise ActionError(f"subnet {subnet_id} has no network ACL association")
    found: dict[str, Any] = acls[0]
    return found


def neighbours(ec2: Any, subnet_id: str, instance_id: str) -> list[dict[str, Any]]:
    """Other running or pending instances in the subnet (a subnet-wide deny cuts them off too)."""
    with aws_errors(f"list the instances of {subnet_id}"):
        reservations = ec2.describe_instances(
            Filters=[
                {"Name": "subnet-id", "Values": [subnet_id]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )["Reservations"]
    found = [i for r in reservations for i in r["Instances"] if i["InstanceId"] != instance_id]
    return sorted(found, key=lambda i: str(i["InstanceId"]))


def _remembered(acl: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries a previous attempt recorded in the ACL's tag (``egress:number:range`` items)."""
    value = tag_dict(acl.get("Tags")).get(NACL_TAG, "")
    out = []
    for part in filter(None, value.split(",")):
        direction, number, cidr = part.split(":", 2)
        out.append({"egress": direction == "out", "rule_number": int(number), "cidr": cidr})
    return out


def _free_numbers(acl: dict[str, Any], egress: bool, count: int) -> list[int]:
    used = {e["RuleNumber"] for e in acl.get("Entries", []) if e["Egress"] == egress}
    free = [n for n in range(1, 32767) if n not in used][:count]
    return free


def _present(acl: dict[str, Any], entry: dict[str, Any]) -> bool:
    for e in acl.get("Entries", []):
        cidr = e.get("CidrBlock") or e.get("Ipv6CidrBlock")
        if (
            e["Egress"] == entry["egress"]
            and e["RuleNumber"] == entry["rule_number"]
            and cidr == entry["cidr"]
            and e["RuleAction"] == "deny"
        ):
            return True
    return False


def deny_subnet(ctx: ActionContext, ec2: Any, subnet_id: str) -> tuple[str, list[dict[str, Any]]]:
    """Add deny-all entries (IPv4 and IPv6, both directions) to the subnet's ACL; return (acl id, entries)."""
    acl = subnet_acl(ec2, subnet_id)
    acl_id = str(acl["NetworkAclId"])
    entries = _remembered(acl)
    if not entries:
        # IPv6 entries only where the ACL already speaks IPv6 (a VPC with an IPv6 block).
        ranges = [cidr for key, cidr in _RANGES if any(key in e for e in acl.get("Entries", []))] or ["0.0.0.0/0"]
        for egress in (False, True):
            numbers = _free_numbers(acl, egress, len(ranges))
            entries += [
                {"egress": egress, "rule_number": n, "cidr": cidr} for n, cidr in zip(numbers, ranges, strict=True)
            ]
        value = ",".join(f"{'out' if e['egress'] else 'in'}:{e['rule_number']}:{e['cidr']}" for e in entries)
        with aws_errors(f"tag {acl_id}"):
            ec2.create_tags(Resources=[acl_id], Tags=[{"Key": NACL_TAG, "Value": value}])
    for entry in entries:
        if _present(acl, entry):
            continue
        ctx.check_cancelled()
        key = "Ipv6CidrBlock" if ":" in entry["cidr"] else "CidrBlock"
        with aws_errors(f"deny all traffic in {acl_id} (rule {entry['rule_number']})"):
            ec2.create_network_acl_entry(
                NetworkAclId=acl_id,
                RuleNumber=entry["rule_number"],
                Protocol="-1",
                RuleAction="deny",
                Egress=entry["egress"],
                **{key: entry["cidr"]},
            )
    return acl_id, entries


def lift_deny(ec2: Any, acl_id: str, entries: list[dict[str, Any]]) -> int:
    """Remove the entries :func:`deny_subnet` added (those still there); return how many were removed."""
    with aws_errors(f"read {acl_id}"):
        acl = ec2.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"][0]
    removed = 0
    for entry in entries:
        if not _present(acl, entry):
            continue
        with aws_errors(f"remove rule {entry['rule_number']} of {acl_id}"):
            ec2.delete_network_acl_entry(NetworkAclId=acl_id, RuleNumber=entry["rule_number"], Egress=entry["egress"])
        removed += 1
    with aws_errors(f"untag {acl_id}"):
        ec2.delete_tags(Resources=[acl_id], Tags=[{"Key": NACL_TAG}])
    return removed
