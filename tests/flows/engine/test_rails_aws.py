"""Safety rails against a real (moto) EC2, checked at the target: handlers, unknown tags, timed-out retries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.actions.registry import default_registry
from flows.engine import fence, run_playbook
from flows.engine.state import RunState
from flows.engine.undo import undo_run
from integrations.aws.sandbox import seed_inference_hosts, seed_network
from tests.fixtures.moto import AwsEnv, aws, moto, settings_for
from tests.flows.engine.aws_faults import Fault, fault_proxy
from tests.flows.engine.engine_helpers import events, write_playbook

__all__ = ["aws", "moto"]

pytestmark = pytest.mark.moto_server


def _groups(env: AwsEnv, instance_id: str) -> list[str]:
    found = env.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return sorted(g["GroupId"] for g in found["SecurityGroups"])


def _isolate(instance_id: str) -> dict[str, Any]:
    return {"action": "aws.ec2.isolate_instance", "with": {"instance_id": instance_id}}


def test_on_failure_handlers_pass_the_same_guards_and_saga_as_steps(aws: AwsEnv, tmp_path: Path) -> None:
    world = aws.seed(seed_network, seed_inference_hosts)
    good, second = world.data["inference_instances"]
    protected, staging = world.data["protected_instance"], world.data["staging_instance"]
    before = {i: _groups(aws, i) for i in (good, second, protected, staging)}
    steps = [
        {
            "id": "boom",
            "action": "fail",
            "with": {"message": "rollback failed"},
            "on_failure": [_isolate(protected), _isolate(staging), _isolate(good), _isolate(second)],
        }
    ]
    path = write_playbook(tmp_path, steps, guards={"max_targets": 1, "require_tags": {"env": "ml-prod"}})
    summary = run_playbook(path, settings=aws.settings, registry=default_registry())

    # At the target: only the one allowed, tagged, unprotected instance was isolated.
    assert _groups(aws, protected) == before[protected]
    assert _groups(aws, staging) == before[staging]
    assert _groups(aws, second) == before[second]  # a second target is past max_targets 1
    assert _groups(aws, good) != before[good]
    refused = {(e["detail"]["handler"], e["detail"]["guard"]) for e in events(summary.run_dir, "guard.refused")}
    assert refused == {(0, "protected_tags"), (1, "require_tags"), (3, "max_targets")}
    # The handler's effect is in the saga, so undo reverses it.
    assert [e["item_key"] for e in RunState(summary.run_dir).saga()] == ["on_failure-2"]
    (outcome,) = undo_run(summary.run_id, settings=aws.settings)
    assert outcome.status == "undone"
    assert _groups(aws, good) == before[good]


@pytest.mark.parametrize(
    ("status", "code"), [(403, "UnauthorizedOperation"), (400, "RequestLimitExceeded")], ids=["denied", "throttled"]
)
def test_a_failed_tag_read_refuses_live(aws: AwsEnv, tmp_path: Path, status: int, code: str) -> None:
    world = aws.seed(seed_network, seed_inference_hosts)
    protected = world.data["protected_instance"]
    before = _groups(aws, protected)
    path = write_playbook(tmp_path, [{"id": "isolate", **_isolate(protected)}])
    with fault_proxy(aws.endpoint, {"DescribeInstances": Fault(status=status, code=code)}) as proxy:
        summary = run_playbook(path, settings=settings_for(proxy.endpoint, tmp_path), registry=default_registry())
    assert summary.steps["isolate"].status == "failed"
    (refused,) = events(summary.run_dir, "guard.refused", "isolate")
    assert refused["detail"]["guard"] == "protected_tags"
    assert "tags are unknown" in refused["detail"]["message"]
    assert code in refused["detail"]["message"]
    mutating = {op for op in proxy.seen if not op.startswith("Describe")}
    assert mutating == set(), "nothing but reads reached EC2"
    assert _groups(aws, protected) == before


def test_a_timed_out_snapshot_is_fenced_before_the_retry(aws: AwsEnv, tmp_path: Path) -> None:
    world = aws.seed(seed_network, seed_inference_hosts)
    host = world.data["staging_instance"]  # one volume
    steps = [
        {
            "id": "snap",
            "action": "aws.ec2.snapshot_volumes",
            "timeout": "4s",  # the reported case is 2 s against 5 s; the same ratio leaves room for the reads
            "retries": {"attempts": 3, "initial": "10ms"},
            "with": {"instance_id": host},
        }
    ]
    path = write_playbook(tmp_path, steps)
    with fault_proxy(aws.endpoint, {"CreateSnapshot": Fault(delay=10.0)}) as proxy:
        summary = run_playbook(path, settings=settings_for(proxy.endpoint, tmp_path), registry=default_registry())
    assert summary.steps["snap"].status == "succeeded"
    ec2 = aws.client("ec2")
    instance = ec2.describe_instances(InstanceIds=[host])["Reservations"][0]["Instances"][0]
    (volume,) = [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]]
    snapshots = ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume]}])["Snapshots"]
    assert len(snapshots) == 1
    assert proxy.seen["CreateSnapshot"] == 1
    # What the abandoned attempt recorded after its deadline is marked late, never the step's.
    late = events(summary.run_dir, "attempt.late", "snap")
    assert [e["detail"]["event"] for e in late] == ["evidence.stored"]
    assert len(events(summary.run_dir, "evidence.stored", "snap")) == 1
    assert events(summary.run_dir, "step.retrying", "snap")[0]["detail"]["attempt"] == 1


def test_an_attempt_still_running_after_the_grace_is_not_retried(
    aws: AwsEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fence, "GRACE_SECONDS", 0.2)
    world = aws.seed(seed_network, seed_inference_hosts)
    steps = [
        {
            "id": "snap",
            "action": "aws.ec2.snapshot_volumes",
            "timeout": "5s",  # room for the reads before CreateSnapshot on a busy machine
            "retries": {"attempts": 3, "initial": "10ms"},
            "with": {"instance_id": world.data["staging_instance"]},
        }
    ]
    path = write_playbook(tmp_path, steps)
    # Held until the proxy closes: the abandoned call outlives any grace, however slow the machine.
    with fault_proxy(aws.endpoint, {"CreateSnapshot": Fault(delay=600.0)}) as proxy:
        summary = run_playbook(path, settings=settings_for(proxy.endpoint, tmp_path), registry=default_registry())
        assert proxy.seen["CreateSnapshot"] == 1
    assert summary.steps["snap"].status == "timed_out"
    assert "not retried" in (summary.steps["snap"].error or "")
