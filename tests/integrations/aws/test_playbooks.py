"""The shipped AWS playbooks, run through the engine against the moto server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from flows.config import SlackSettings
from flows.engine import Answer, Responders, RunSummary, run_playbook
from flows.errors import FirelineError
from integrations.aws.sandbox import World, run_instance
from tests.fixtures.moto import AwsEnv
from tests.fixtures.slack_fake import SlackEnv

pytestmark = [pytest.mark.moto_server, pytest.mark.e2e]

PLAYBOOKS = Path(__file__).resolve().parents[3] / "playbooks"
APPROVER = "user:oncall-alice"


def _run(
    aws: AwsEnv,
    name: str,
    labels: dict[str, str],
    *,
    mode: str = "live",
    approve: tuple[str, ...] = (),
    slack_settings: SlackSettings | None = None,
) -> RunSummary:
    approvers = aws.tmp_path / "approvers.yaml"
    groups = ("ml-security", "ml-platform-oncall", "security-oncall")
    approvers.write_text("groups:\n" + "".join(f"  {g}: [oncall-alice]\n" for g in groups))
    settings = aws.settings.model_copy(update={"approvers_file": approvers})
    if slack_settings is not None:
        settings = settings.model_copy(update={"slack": slack_settings})
    responders = Responders(
        approvals={s: [Answer(by=APPROVER, decision="approve", reason="test")] for s in approve},
        acks={"page-on-call": [("alice", 0.0)]},  # the on-call acknowledges the page (playbooks/people.yaml)
    )
    alert = {"source": "alertmanager", "status": "firing", "labels": labels}
    return run_playbook(
        PLAYBOOKS / f"{name}.yaml",
        alert=alert,
        mode=mode,  # type: ignore[arg-type]
        settings=settings,
        responders=responders,
    )


def _events(summary: RunSummary) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (summary.run_dir / "events.jsonl").read_text().splitlines()]


def _groups(world: World, instance_id: str) -> list[str]:
    found = world.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return sorted(g["GroupName"] for g in found["SecurityGroups"])


def test_compromised_inference_host_live(aws: AwsEnv) -> None:
    world = aws.seed()
    hosts = world.data["inference_instances"]
    labels = {
        "alertname": "InferenceHostSuspiciousEgress",
        "instance_ids": ",".join(hosts),
        "endpoint": "fraud-detector",
    }
    summary = _run(aws, "compromised-inference-host", labels, approve=("approve-isolation",))
    assert summary.outcome == "succeeded", {k: (v.status, v.error) for k, v in summary.steps.items()}
    for host in hosts:
        assert _groups(world, host) == ["fireline-quarantine"]
    ec2 = world.client("ec2")
    snaps = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:fireline:run", "Values": [summary.run_id]}]
    )
    assert len(snaps["Snapshots"]) == 4  # two volumes on each of two hosts
    endpoint = world.client("sagemaker").describe_endpoint(EndpointName="fraud-detector")
    assert endpoint["ProductionVariants"][0]["CurrentWeight"] == 0.0
    manifest = json.loads((summary.run_dir / "evidence" / "manifest.json").read_text())
    names = sorted(i["name"] for i in manifest["items"])
    assert len(names) == 4
    assert "sagemaker-fraud-detector.json" in names
    order = [e["step"] for e in _events(summary) if e["type"] == "step.succeeded"]
    assert order.index("snapshot-disks") < order.index("isolate-hosts")  # evidence before containment


def test_compromised_iam_credentials_live(aws: AwsEnv) -> None:
    world = aws.seed()
    summary = _run(
        aws,
        "compromised-iam-credentials",
        {"alertname": "LeakedAccessKey", "user_name": "ml-pipeline"},
        approve=("approve-containment",),
    )
    iam = world.client("iam")
    keys = iam.list_access_keys(UserName="ml-pipeline")["AccessKeyMetadata"]
    assert {k["Status"] for k in keys} == {"Inactive"}
    assert len(keys) == 2
    assert sorted(iam.list_user_policies(UserName="ml-pipeline")["PolicyNames"]) == [
        "fireline-quarantine",
        "fireline-revoke-older-sessions",  # sessions minted from the keys before containment
        "training-data-read",
    ]
    assert summary.steps["capture-user"].status == "succeeded"
    # moto 5.2.5 has no CloudTrail LookupEvents: the step fails, and continue_on_error lets containment go on.
    assert summary.steps["collect-cloudtrail"].status == "failed"
    assert summary.steps["quarantine-user"].status == "succeeded"
    # No Slack token in these settings: the channel and the summary post are skipped, and say why.
    for step in ("open-channel", "report-containment"):
        assert (summary.steps[step].status, summary.steps[step].reason) == ("skipped", "not_configured")


def test_with_slack_configured_the_incident_channel_gets_the_responders_and_the_summary(
    aws: AwsEnv, slack: SlackEnv
) -> None:
    aws.seed()
    summary = _run(
        aws,
        "compromised-iam-credentials",
        {"alertname": "LeakedAccessKey", "user_name": "ml-pipeline"},
        approve=("approve-containment",),
        slack_settings=slack.slack_settings(),
    )
    assert summary.steps["report-containment"].status == "succeeded"
    channel = slack.workspace.channel_named(f"inc-{summary.run_id}".lower())
    assert channel is not None, [c.name for c in slack.workspace.channels.values()]
    # security-oncall is carol, ml-platform-oncall alice and bob (playbooks/people.yaml), found by e-mail
    assert {"U0ALICE", "U0BOB", "U0CAROL"} <= set(channel["members"])
    texts = [m.text for m in slack.workspace.history(channel["id"])]
    assert any(t.startswith("Contained: keys of ml-pipeline deactivated") for t in texts), texts


def test_s3_training_data_exposure_live(aws: AwsEnv) -> None:
    world = aws.seed()
    labels = {"alertname": "S3BucketPublicAccessGranted", "bucket": "ml-training-data", "user_name": "data-scientist"}
    summary = _run(aws, "s3-training-data-exposure", labels, approve=("approve-key-disable",))
    s3 = world.client("s3")
    block = s3.get_public_access_block(Bucket="ml-training-data")["PublicAccessBlockConfiguration"]
    assert all(block.values())
    preserved = summary.steps["preserve-objects"].output["objects"]
    versions = s3.list_object_versions(Bucket="ml-training-data")["Versions"]
    assert len(preserved) == len(versions) >= 3  # every version in the bucket, read back from moto
    for obj in preserved:
        source = s3.get_object(Bucket="ml-training-data", Key=obj["key"], VersionId=obj["version_id"])["Body"].read()
        bucket_key, version = obj["location"].removeprefix("s3://").split("?versionId=")
        bucket, key = bucket_key.split("/", 1)
        copy = s3.get_object(Bucket=bucket, Key=key, VersionId=version)
        assert hashlib.sha256(copy["Body"].read()).hexdigest() == obj["sha256"] == hashlib.sha256(source).hexdigest()
        assert copy["ObjectLockMode"] == "COMPLIANCE"
        assert copy["ObjectLockLegalHoldStatus"] == "ON"
    keys = world.client("iam").list_access_keys(UserName="data-scientist")["AccessKeyMetadata"]
    assert [k["Status"] for k in keys] == ["Inactive"]


def _alert_labels(name: str, world: World) -> dict[str, str]:
    """The playbook's example alert, with ids replaced by the seeded ones."""
    path = PLAYBOOKS / "alerts" / f"{name}.json"
    labels: dict[str, str] = dict(json.loads(path.read_text()).get("labels", {})) if path.exists() else {}
    if "instance_ids" in labels:
        labels["instance_ids"] = ",".join(world.data["inference_instances"])
    return labels


@pytest.mark.parametrize("playbook", sorted(p.stem for p in PLAYBOOKS.glob("*.yaml") if p.name != "people.yaml"))
def test_dry_run_of_every_shipped_playbook_sends_no_mutating_call(aws: AwsEnv, playbook: str) -> None:
    world = aws.seed()
    aws.server.start_recording()
    try:
        summary = _run(aws, playbook, _alert_labels(playbook, world), mode="dry-run")
    except FirelineError as e:
        pytest.fail(f"{playbook}: dry-run did not start: {e}")
    finally:
        aws.server.stop_recording()
    assert summary.mode == "dry-run"
    assert aws.server.mutating_requests() == []
    assert summary.refused_calls == []  # plan() never even tried a write


def test_guards_refuse_protected_and_untagged_hosts_and_too_many_targets(aws: AwsEnv) -> None:
    world = aws.seed()
    protected, staging = world.data["protected_instance"], world.data["staging_instance"]
    for host in (protected, staging):
        before = _groups(world, host)
        summary = _run(aws, "compromised-inference-host", {"instance_ids": host}, approve=("approve-isolation",))
        # The guards are checked before anyone is asked: the approval fails, nobody approves a refusal.
        assert summary.steps["approve-isolation"].status == "failed"
        assert summary.steps["isolate-hosts"].status == "skipped"
        assert summary.steps["snapshot-disks"].status == "succeeded"  # evidence is not guarded
        assert _groups(world, host) == before
        refused = [e for e in _events(summary) if e["type"] == "guard.refused"]
        assert refused
        assert host in json.dumps(refused)
    many = [run_instance(world, f"extra-{i}", {"env": "ml-prod"}) for i in range(11)]
    summary = _run(aws, "compromised-inference-host", {"instance_ids": ",".join(many)}, approve=("approve-isolation",))
    assert summary.steps["isolate-hosts"].status == "skipped"  # the approval failed on the guard, unasked
    assert "max_targets" in json.dumps([e for e in _events(summary) if e["type"] == "guard.refused"])
    assert all(_groups(world, h) == ["bastion-ssh", "inference-https"] for h in many)
