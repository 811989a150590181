"""Two-step EC2 isolation (tracked connections) and the network ACL option, read back from moto.

moto carries no packets, so a surviving connection cannot be shown here: the tests read the state
that AWS documents as decisive (Amazon EC2 User Guide, "Security group connection tracking"): the
interface went through a group allowing all traffic from and to 0.0.0.0/0 before the rule-less one,
and the subnet's network ACL denies all traffic when asked.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from flows.engine.guards import check_plans
from flows.language.spec import Guards
from integrations.aws.ec2 import IsolateInstance, IsolateParams
from integrations.aws.sandbox import seed_inference_hosts, seed_network
from integrations.aws.stable import EC2_INSTANCE
from tests.fixtures.moto import AwsEnv

pytestmark = pytest.mark.moto_server

CASES = Path(__file__).resolve().parents[1] / "cases_data"  # inputs of the real-world cases, copied


def _instance(aws: AwsEnv, instance_id: str) -> dict[str, Any]:
    found: dict[str, Any] = aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"
    ][0]
    return found


def _group(aws: AwsEnv, group_id: str) -> dict[str, Any]:
    found: dict[str, Any] = aws.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    return found


def _interface_moves(aws: AwsEnv) -> list[list[str]]:
    """The group lists of every ModifyNetworkInterfaceAttribute the server received, in order."""
    moves = []
    for entry in aws.server.recorded():
        body = str(entry.get("body") or "")
        if str(entry.get("body_encoded")) == "True":
            body = base64.b64decode(body).decode()
        query = parse_qs(body)
        if query.get("Action") == ["ModifyNetworkInterfaceAttribute"]:
            moves.append([v[0] for k, v in sorted(query.items()) if k.startswith("SecurityGroupId")])
    return moves


def _allows_all(permissions: list[dict[str, Any]]) -> bool:
    return any(
        p["IpProtocol"] == "-1" and any(r.get("CidrIp") == "0.0.0.0/0" for r in p.get("IpRanges", []))
        for p in permissions
    )


def test_case_09_isolation_passes_through_an_all_traffic_group_then_the_rule_less_one(aws: AwsEnv) -> None:
    from flows.engine import run_playbook

    world = aws.seed(seed_network, seed_inference_hosts)
    host = world.data["inference_instances"][0]
    aws.server.start_recording()
    try:
        summary = run_playbook(
            CASES / "09-isolate-alerting-host.yaml",
            inputs={"instance_id": host},
            mode="live",
            settings=aws.settings,
        )
    finally:
        aws.server.stop_recording()
    assert summary.outcome == "succeeded", {k: (v.status, v.error) for k, v in summary.steps.items()}
    output = summary.steps["isolate"].output
    untrack, quarantine = output["untrack_group_id"], output["quarantine_group_id"]
    # Read back from moto: the untracking group allows all traffic both ways, the quarantine group none.
    assert _allows_all(_group(aws, untrack)["IpPermissions"])
    assert _allows_all(_group(aws, untrack)["IpPermissionsEgress"])
    assert _group(aws, quarantine)["IpPermissions"] == []
    assert _group(aws, quarantine)["IpPermissionsEgress"] == []
    assert sorted(g["GroupId"] for g in _instance(aws, host)["SecurityGroups"]) == [quarantine]
    # The interface went through the all-traffic group first, then the rule-less one.
    assert _interface_moves(aws) == [[untrack], [quarantine]]
    assert [p["phase"] for p in output["phases"]] == ["untrack", "isolate"]
    assert output["tracked_connections"].startswith("cut")
    events = [json.loads(line) for line in (summary.run_dir / "events.jsonl").read_text().splitlines()]
    finished = next(e for e in events if e["type"] == "step.succeeded" and e["step"] == "isolate")
    assert "tracked connections cut" in json.dumps(finished["detail"])


def test_one_step_swap_is_still_available_and_says_connections_may_persist(aws: AwsEnv) -> None:
    world = aws.seed(seed_network, seed_inference_hosts)
    host = world.data["inference_instances"][0]
    aws.server.start_recording()
    try:
        result = IsolateInstance().apply(IsolateParams(instance_id=host, untrack_first=False), aws.context())
    finally:
        aws.server.stop_recording()
    assert _interface_moves(aws) == [[result.quarantine_group_id]]
    assert [p.phase for p in result.phases] == ["isolate"]
    assert result.tracked_connections.startswith("may persist")
    plan = IsolateInstance().plan(IsolateParams(instance_id=host, untrack_first=False), aws.context())
    assert any("tracked connections" in w for w in plan.warnings)


def test_network_acl_deny_cuts_the_subnet_and_undo_restores_groups_and_acl(aws: AwsEnv) -> None:
    world = aws.seed(seed_network, seed_inference_hosts)
    host = world.data["inference_instances"][0]
    ec2 = aws.client("ec2")
    subnet = world.data["subnet_id"]

    def acl() -> dict[str, Any]:
        found: dict[str, Any] = ec2.describe_network_acls(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
        )["NetworkAcls"][0]
        return found

    before_entries = sorted(json.dumps(e, sort_keys=True) for e in acl()["Entries"])
    before_groups = sorted(g["GroupId"] for g in _instance(aws, host)["SecurityGroups"])
    params = IsolateParams(instance_id=host, network_acl_deny=True)
    plan = IsolateInstance().plan(params, aws.context())
    assert any("other instance" in w for w in plan.warnings)  # the neighbours in the subnet are named
    # They are targets too: the protected canary in the same subnet makes the guards refuse.
    assert world.data["protected_instance"] in {t.id for t in plan.targets}
    refused = check_plans(Guards(), [plan], live=True)
    assert [r.target for r in refused] == [f"aws:ec2:instance:{world.data['protected_instance']}"]
    plain = IsolateInstance().plan(IsolateParams(instance_id=host), aws.context())
    assert [t.id for t in plain.targets] == [host]
    result = IsolateInstance().apply(params, aws.context())
    denies = [e for e in acl()["Entries"] if e["RuleAction"] == "deny" and e.get("CidrBlock") == "0.0.0.0/0"]
    by_direction = {e["Egress"]: e["RuleNumber"] for e in denies if e["RuleNumber"] < 32767}
    assert set(by_direction) == {True, False}
    assert [p.phase for p in result.phases] == ["untrack", "isolate", "network_acl"]
    # A retry (a fresh run) adds nothing twice.
    again = IsolateInstance().apply(params, aws.context("run-2"))
    assert again.network_acl_entries == result.network_acl_entries
    assert len([e for e in acl()["Entries"] if e["RuleAction"] == "deny"]) == len(denies)
    IsolateInstance().undo(result, aws.context())
    assert sorted(json.dumps(e, sort_keys=True) for e in acl()["Entries"]) == before_entries
    assert sorted(g["GroupId"] for g in _instance(aws, host)["SecurityGroups"]) == before_groups


def test_a_crash_between_the_two_moves_is_finished_by_the_retry(aws: AwsEnv) -> None:
    world = aws.seed(seed_network, seed_inference_hosts)
    host = world.data["inference_instances"][0]
    before = sorted(g["GroupId"] for g in _instance(aws, host)["SecurityGroups"])
    first = IsolateInstance().apply(IsolateParams(instance_id=host), aws.context())
    # Put the interface back on the untracking group, as a crash right after the first move leaves it.
    ec2 = aws.client("ec2")
    eni = _instance(aws, host)["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[first.untrack_group_id])
    ec2.modify_instance_attribute(InstanceId=host, Groups=[first.untrack_group_id])
    retried = IsolateInstance().apply(IsolateParams(instance_id=host), aws.context("run-2"))
    assert sorted(g["GroupId"] for g in _instance(aws, host)["SecurityGroups"]) == [first.quarantine_group_id]
    assert sorted(retried.previous_groups[eni]) == before  # remembered through the interface tag
    assert [p.phase for p in retried.phases] == ["isolate"]


def test_isolation_waits_for_a_pending_instance_and_refuses_a_terminated_one(aws: AwsEnv) -> None:
    from flows.errors import ActionError

    world = aws.seed(seed_network, seed_inference_hosts)
    host = world.data["inference_instances"][1]
    aws.client("ec2").terminate_instances(InstanceIds=[host])
    with pytest.raises(ActionError, match="terminated"):
        IsolateInstance().apply(IsolateParams(instance_id=host), aws.context())
    assert "pending" in EC2_INSTANCE.transitional
