"""``data.quarantine``: mark tainted training data so that no training job reads it again.

It tags every object version under an S3 prefix (optionally only some versions, or those written
since a moment) with ``fireline.quarantined = <incident id>: <reason>``, and optionally adds one
bucket policy statement denying ``s3:GetObject`` and ``s3:GetObjectVersion`` on the prefix to
named training roles. An explicit Deny in a bucket policy overrides any Allow in the roles' own
policies (AWS IAM User Guide, "Policy evaluation logic").

The bucket policy as it was before is kept in the run's evidence before anything changes (a retry
reuses it), and in the result: undo puts it back byte for byte when nobody changed the policy
since, otherwise removes only the statement this step added. Undo removes exactly the tags this
step added; marks of other incidents are never touched.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, UndoResult, action
from flows.errors import ActionError
from flows.record.store import iso
from integrations.aws.common import plan_read
from integrations.aws.s3 import bucket_resources, bucket_target
from integrations.aws.session import aws_errors, client, error_code, known
from integrations.data.lineage_registries import object_versions, split_s3_uri
from integrations.models.base import KEY_QUARANTINED, decode_tag_value, encode_tag_value

MAX_TAGS = 10
SHOWN = 20
ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$"
TAG_PERMISSIONS = ("s3:ListBucketVersions", "s3:GetObjectVersionTagging", "s3:PutObjectVersionTagging")
POLICY_PERMISSIONS = ("s3:GetBucketPolicy", "s3:PutBucketPolicy")
UNDO_PERMISSIONS = ("s3:DeleteObjectVersionTagging", "s3:DeleteBucketPolicy")


class DataQuarantineParams(ActionParams):
    uri: str = Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", description="s3://bucket/prefix")
    reason: str = Field(min_length=1, max_length=200)
    version_ids: list[str] = Field(default_factory=list, description="Only these object versions.")
    since: datetime | None = Field(default=None, description="Only versions written at or after this moment.")
    deny_roles: list[str] = Field(default_factory=list, description="IAM role ARNs denied s3:GetObject on the prefix.")
    max_versions: int = Field(default=10_000, ge=1, le=1_000_000)
    region: str | None = None

    @field_validator("deny_roles")
    @classmethod
    def _role_arns(cls, value: list[str]) -> list[str]:
        import re

        bad = [v for v in value if not re.match(ROLE_ARN, v)]
        if bad:
            raise ValueError(f"not IAM role ARNs: {', '.join(bad)}")
        return value


class TaggedVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    version_id: str


class DataQuarantineResult(ActionResult):
    uri: str
    bucket: str
    region: str | None = None
    mark: str
    tagged: list[TaggedVersion] = Field(default_factory=list, description="Versions carrying this step's mark.")
    left: list[str] = Field(default_factory=list, description="Versions already quarantined by another incident.")
    skipped: list[str] = Field(default_factory=list, description="Versions that could not be tagged, and why.")
    policy_sid: str | None = None
    previous_policy: str | None = Field(default=None, description="The bucket policy before, byte for byte.")
    written_policy: str | None = Field(default=None, description="The bucket policy this step wrote.")


def _selected(ctx: ActionContext, params: DataQuarantineParams) -> list[dict[str, Any]]:
    since = params.since.replace(tzinfo=UTC) if params.since and params.since.tzinfo is None else params.since
    chosen = []
    for v in object_versions(ctx, params.uri, params.region):
        if v["IsDeleteMarker"]:
            continue
        if params.version_ids and str(v.get("VersionId")) not in params.version_ids:
            continue
        stamp = v["LastModified"] if v["LastModified"].tzinfo else v["LastModified"].replace(tzinfo=UTC)
        if since is not None and stamp < since:
            continue
        chosen.append(v)
    if len(chosen) > params.max_versions:
        raise ActionError(
            f"{len(chosen)} object versions under {params.uri}, more than max_versions={params.max_versions}"
        )
    return chosen


def _sid(ctx: ActionContext) -> str:
    return "FirelineQuarantine" + ctx.short_token[:16]


def _deny_statement(params: DataQuarantineParams, sid: str) -> dict[str, Any]:
    bucket, prefix = split_s3_uri(params.uri)
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": {"AWS": sorted(params.deny_roles)},
        "Action": ["s3:GetObject", "s3:GetObjectVersion"],
        "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
    }


def _read_policy(s3: Any, bucket: str) -> str | None:
    from botocore.exceptions import ClientError

    with aws_errors(f"read the bucket policy of {bucket}"):
        try:
            return str(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        except ClientError as e:
            if error_code(e) == "NoSuchBucketPolicy":
                return None
            raise


def _tags(s3: Any, bucket: str, key: str, version_id: str) -> dict[str, str]:
    with aws_errors(f"read the tags of s3://{bucket}/{key}?versionId={version_id}"):
        raw = s3.get_object_tagging(Bucket=bucket, Key=key, VersionId=version_id)["TagSet"]
    return {t["Key"]: t["Value"] for t in raw}


def _put_tags(s3: Any, bucket: str, key: str, version_id: str, tags: dict[str, str]) -> None:
    with aws_errors(f"tag s3://{bucket}/{key}?versionId={version_id}"):
        if tags:
            tag_set = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
            s3.put_object_tagging(Bucket=bucket, Key=key, VersionId=version_id, Tagging={"TagSet": tag_set})
        else:
            s3.delete_object_tagging(Bucket=bucket, Key=key, VersionId=version_id)


@action(
    "data.quarantine",
    kind=ActionKind.CONTAINMENT,
    params=DataQuarantineParams,
    result=DataQuarantineResult,
    permissions=(*TAG_PERMISSIONS, *POLICY_PERMISSIONS, "s3:GetBucketTagging"),
    undo_permissions=UNDO_PERMISSIONS,
)
class DataQuarantine(Action[DataQuarantineParams, DataQuarantineResult]):
    """Tag tainted training data quarantined and deny training roles read access to it."""

    def plan(self, params: DataQuarantineParams, ctx: ActionContext) -> Plan:
        bucket, _ = split_s3_uri(params.uri)
        warnings: list[str] = []
        target = bucket_target(ctx, bucket, params.region, warnings)
        mark = f"{ctx.incident.id}: {params.reason}"
        versions = plan_read(ctx, f"list the object versions of {params.uri}", lambda: _selected(ctx, params), warnings)
        if versions is None:
            changes = [f"tag every selected object version under {params.uri} with {KEY_QUARANTINED} = '{mark}'"]
        else:
            changes = [f"tag {len(versions)} object version(s) under {params.uri} with {KEY_QUARANTINED} = '{mark}'"]
            changes += [f"tag s3://{bucket}/{v['Key']}?versionId={v.get('VersionId')}" for v in versions[:SHOWN]]
            if len(versions) > SHOWN:
                changes.append(f"… and {len(versions) - SHOWN} more")
        if params.deny_roles:
            changes.append(
                f"add a bucket policy statement denying s3:GetObject on {params.uri}* to {', '.join(params.deny_roles)}"
            )
        return Plan(
            action=self.name,
            summary=f"quarantine the training data under {params.uri}",
            targets=[target],
            changes=changes,
            warnings=warnings,
        )

    def apply(self, params: DataQuarantineParams, ctx: ActionContext) -> DataQuarantineResult:
        ctx.require_live("data.quarantine")
        bucket, _ = split_s3_uri(params.uri)
        s3 = client(ctx, "s3", params.region)
        mark = f"{ctx.incident.id}: {params.reason}"
        stored = encode_tag_value(KEY_QUARANTINED, mark)
        result = DataQuarantineResult(changed=False, uri=params.uri, bucket=bucket, region=params.region, mark=mark)
        for version in _selected(ctx, params):
            ctx.check_cancelled()
            key, vid = str(version["Key"]), str(version.get("VersionId"))
            tags = _tags(s3, bucket, key, vid)
            existing = tags.get(KEY_QUARANTINED)
            if existing is not None and existing != stored:
                result.left.append(f"{key}?versionId={vid}: {decode_tag_value(existing)}")
                continue
            if existing is None:
                if len(tags) >= MAX_TAGS:
                    result.skipped.append(f"{key}?versionId={vid}: already carries {MAX_TAGS} tags (the S3 limit)")
                    continue
                _put_tags(s3, bucket, key, vid, {**tags, KEY_QUARANTINED: stored})
                result.changed = True
            result.tagged.append(TaggedVersion(key=key, version_id=vid))  # ours, now or on an earlier attempt
        if params.deny_roles:
            self._deny(params, ctx, s3, bucket, result)
        ctx.emit("data.quarantined", {"uri": params.uri, "versions": len(result.tagged), "policy": result.policy_sid})
        result.summary = f"quarantined {len(result.tagged)} object version(s) under {params.uri}" + (
            f"; denied {len(params.deny_roles)} role(s) read access" if params.deny_roles else ""
        )
        if result.skipped:
            result.summary += f"; {len(result.skipped)} version(s) could not be tagged"
        return result

    @staticmethod
    def _deny(
        params: DataQuarantineParams, ctx: ActionContext, s3: Any, bucket: str, result: DataQuarantineResult
    ) -> None:
        sid = _sid(ctx)
        current = _read_policy(s3, bucket)
        previous = _previous_policy(ctx, bucket, current)
        doc = json.loads(current) if current else {"Version": "2012-10-17", "Statement": []}
        statements = doc.get("Statement", [])
        statements = [statements] if isinstance(statements, dict) else list(statements)
        if not any(isinstance(s, dict) and s.get("Sid") == sid for s in statements):
            doc["Statement"] = [*statements, _deny_statement(params, sid)]
            current = json.dumps(doc, indent=2)
            with aws_errors(f"put the bucket policy of {bucket}"):
                s3.put_bucket_policy(Bucket=bucket, Policy=current)
            result.changed = True
        result.policy_sid, result.previous_policy, result.written_policy = sid, previous, current

    def undo(self, result: DataQuarantineResult, ctx: ActionContext) -> UndoResult:
        s3 = client(ctx, "s3", result.region)
        stored = encode_tag_value(KEY_QUARANTINED, result.mark)
        # The bucket policy first: access comes back before the marks go (and moto, which applies a
        # Deny to every caller whatever its Principal, lets the tag reads through only then).
        changes = [_restore_policy(s3, result)] if result.written_policy is not None else []
        removed = 0
        for version in result.tagged:
            tags = _tags(s3, result.bucket, version.key, version.version_id)
            if tags.get(KEY_QUARANTINED) == stored:
                tags.pop(KEY_QUARANTINED)
                _put_tags(s3, result.bucket, version.key, version.version_id, tags)
                removed += 1
        changes.append(f"removed the quarantine tag of {removed} object version(s)")
        return UndoResult(changed=True, summary="; ".join(changes))

    def policy_statements(self, params: DataQuarantineParams | None) -> list[dict[str, Any]]:
        uri = known(params, "uri")
        bucket = split_s3_uri(uri)[0] if isinstance(uri, str) and uri.startswith("s3://") else None
        deny = getattr(params, "deny_roles", None) if params is not None else None
        wanted = ["s3:GetBucketTagging", *TAG_PERMISSIONS, "s3:DeleteObjectVersionTagging"]
        if deny is None or deny:  # a template, or roles named: the bucket policy is changed
            wanted += [*POLICY_PERMISSIONS, "s3:DeleteBucketPolicy"]
        return [{"Effect": "Allow", "Action": sorted(wanted), "Resource": bucket_resources(bucket, True)}]


def _previous_policy(ctx: ActionContext, bucket: str, current: str | None) -> str | None:
    """The policy before this step's first change, kept as evidence first; a retry reuses it."""
    name = "pre-quarantine-bucket-policy.json"
    existing = next((i for i in ctx.record.evidence.items if i.id == ctx.evidence_id(name)), None)
    if existing is not None:
        saved = json.loads((ctx.record.dir / existing.location).read_text(encoding="utf-8"))
        return saved["policy"] if isinstance(saved, dict) else None
    doc = {"bucket": bucket, "policy": current, "read_at": iso(datetime.now(UTC))}
    ctx.store_evidence_bytes(
        name,
        json.dumps(doc, indent=2).encode(),
        source_arn=f"arn:aws:s3:::{bucket}",
        description="bucket policy before",
    )
    return current


def _restore_policy(s3: Any, result: DataQuarantineResult) -> str:
    now = _read_policy(s3, result.bucket)
    if now == result.written_policy:
        with aws_errors(f"restore the bucket policy of {result.bucket}"):
            if result.previous_policy is None:
                s3.delete_bucket_policy(Bucket=result.bucket)
            else:
                s3.put_bucket_policy(Bucket=result.bucket, Policy=result.previous_policy)
        return "restored the bucket policy as it was"
    if now is None:
        return "the bucket policy was deleted since; nothing to remove"
    doc = json.loads(now)
    statements = doc.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else list(statements)
    kept = [s for s in statements if not (isinstance(s, dict) and s.get("Sid") == result.policy_sid)]
    if len(kept) == len(statements):
        return "the bucket policy no longer holds the quarantine statement"
    with aws_errors(f"update the bucket policy of {result.bucket}"):
        if kept:
            s3.put_bucket_policy(Bucket=result.bucket, Policy=json.dumps({**doc, "Statement": kept}, indent=2))
        else:
            s3.delete_bucket_policy(Bucket=result.bucket)
    return "the bucket policy changed since: removed only the quarantine statement"
