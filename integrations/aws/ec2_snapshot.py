"""EC2 evidence: snapshot every volume attached to an instance, tagged with the incident."""

from __future__ import annotations

from functools import partial

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, action
from integrations.aws.common import arn, live_read, plan_read, store_json
from integrations.aws.ec2_instances import INSTANCE_ID, describe_instance, instance_target, volumes
from integrations.aws.session import aws_errors, client, tag_list

IDEMPOTENCY_TAG = "fireline:idempotency-token"


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
        attached = volumes(found) if found is not None else []
        what = ", ".join(attached) if attached else "every attached volume"
        return Plan(
            action=self.name,
            summary=f"snapshot {what} of {params.instance_id}",
            mutating=False,
            reads=[f"{params.instance_id}: {what}"],
            warnings=warnings,
            changes=[f"create snapshot of {v} tagged fireline:incident={ctx.incident.id}" for v in attached],
            targets=[instance_target(params.instance_id, params.region, found)],
        )

    def apply(self, params: SnapshotParams, ctx: ActionContext) -> SnapshotResult:
        ec2 = client(ctx, "ec2", params.region)
        found = describe_instance(ctx, params.instance_id, params.region)
        token = ctx.short_token
        result = SnapshotResult(changed=False, instance_id=params.instance_id)
        for volume_id in volumes(found):
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
