"""Case 15 against moto: a run triggered as ``Alice`` cannot be approved by ``alice``; the host stays put."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.engine import Answer, Responders, run_playbook
from tests.fixtures.moto import AwsEnv
from tests.flows.engine.engine_helpers import events

pytestmark = [pytest.mark.moto_server, pytest.mark.e2e]
CASE = Path(__file__).resolve().parents[2] / "data" / "cases" / "15-self-approval-name-variants.yaml"


def _groups(aws: AwsEnv, instance_id: str) -> list[str]:
    found = aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return sorted(g["GroupName"] for g in found["SecurityGroups"])


@pytest.mark.parametrize("trigger", ["user:alice", "user:Alice", "user:ALICE", "Alice"])
def test_the_initiator_cannot_approve_under_another_spelling(aws: AwsEnv, trigger: str) -> None:
    world = aws.seed()
    host = world.data["inference_instances"][0]
    before = _groups(aws, host)
    approvers = aws.tmp_path / "approvers.yaml"
    approvers.write_text("groups:\n  ml-security: [alice, bob]\n")
    settings = aws.settings.model_copy(update={"approvers_file": approvers})
    answers = [
        Answer(by="alice", decision="approve", reason="mine"),
        Answer(by="bob", decision="reject", reason="the initiator may not approve"),
    ]
    summary = run_playbook(
        CASE, inputs={"instance_id": host}, settings=settings, trigger={"by": trigger, "how": "cli"},
        responders=Responders(approvals={"approve": answers}),
    )  # fmt: skip
    assert summary.outcome == "rejected"
    refused = events(summary.run_dir, "approval.refused")
    assert [(e["detail"]["by"], e["detail"]["refused_because"]) for e in refused] == [
        ("alice", "alice triggered this run and cannot approve it")
    ]
    assert _groups(aws, host) == before  # at the target: the host was never isolated
