"""S3 actions: block public access to a bucket; preserve object versions in an evidence bucket.

Preservation copies every version (optionally under a prefix or a list of keys) into an evidence
bucket at ``<evidence_prefix><bucket>/<key>/<version id>``, hashing it with SHA-256 while it
streams. When the evidence bucket has Object Lock, each copy gets COMPLIANCE retention and a
legal hold, so nobody (not even the account root) can delete it before the retention ends.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Target, UndoResult, action
from flows.errors import ActionError
from flows.record.store import iso, utcnow
from integrations.aws.common import live_read, plan_read
from integrations.aws.pages import Gap, OnGap, settle_gap
from integrations.aws.s3_preserve import PreservedObject, object_lock_enabled, preserve_one, versions_to_copy
from integrations.aws.session import aws_errors, client, error_code, known, tag_dict

BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
ALL_BLOCKED = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


def bucket_tags(ctx: ActionContext, bucket: str, region: str | None = None) -> dict[str, str]:
    from botocore.exceptions import ClientError

    s3 = client(ctx, "s3", region)
    try:
        return tag_dict(s3.get_bucket_tagging(Bucket=bucket)["TagSet"])
    except ClientError as e:
        if error_code(e) == "NoSuchTagSet":
            return {}
        raise


def bucket_target(ctx: ActionContext, bucket: str, region: str | None, warnings: list[str]) -> Target:
    tags = plan_read(ctx, f"read bucket {bucket}", lambda: bucket_tags(ctx, bucket, region), warnings)
    return Target(type="aws:s3:bucket", id=bucket, arn=f"arn:aws:s3:::{bucket}", region=region, tags=tags)


def bucket_resources(bucket: str | None, objects: bool = False) -> list[str]:
    if not bucket:
        return ["*"]
    return [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"] if objects else [f"arn:aws:s3:::{bucket}"]


# -- aws.s3.block_public_access -------------------------------------------------------------------


class BlockParams(ActionParams):
    bucket: str = Field(pattern=BUCKET)
    region: str | None = None


class BlockResult(ActionResult):
    bucket: str
    region: str | None = None
    previous: dict[str, bool] | None = Field(
        default=None, description="The configuration before; None if there was none."
    )


BLOCK_PERMISSIONS = ("s3:GetBucketTagging", "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock")


@action(
    "aws.s3.block_public_access",
    kind=ActionKind.CONTAINMENT,
    params=BlockParams,
    result=BlockResult,
    permissions=BLOCK_PERMISSIONS,
)
class BlockPublicAccess(Action[BlockParams, BlockResult]):
    """Turn on all four S3 Block Public Access settings of a bucket."""

    guidance = (
        "Amazon S3 User Guide, Blocking public access to your Amazon S3 storage (all four settings on the bucket)",
        "AWS Security Incident Response Guide, S3 data exposure",
    )
    caveats = (
        "Not covered: access granted to named AWS accounts or principals by the bucket policy or ACLs "
        "(Block Public Access only stops public grants); presigned URLs signed by credentials that are still "
        "valid; copies of the objects already taken; access points and the account-level setting.",
    )

    def plan(self, params: BlockParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        target = bucket_target(ctx, params.bucket, params.region, warnings)
        return Plan(
            action=self.name,
            summary=f"block public access to s3://{params.bucket}",
            targets=[target],
            changes=[f"{params.bucket}: {k} -> true" for k in ALL_BLOCKED],
            warnings=warnings,
        )

    def apply(self, params: BlockParams, ctx: ActionContext) -> BlockResult:
        from botocore.exceptions import ClientError

        s3 = client(ctx, "s3", params.region)
        previous: dict[str, bool] | None = None
        with aws_errors(f"read the public access block of {params.bucket}"):
            try:
                previous = s3.get_public_access_block(Bucket=params.bucket)["PublicAccessBlockConfiguration"]
            except ClientError as e:
                if error_code(e) != "NoSuchPublicAccessBlockConfiguration":
                    raise
        if previous == ALL_BLOCKED:
            return BlockResult(
                changed=False,
                bucket=params.bucket,
                region=params.region,
                previous=previous,
                summary=f"public access to {params.bucket} was already blocked (no change)",
            )
        live_read(
            f"block public access to {params.bucket}",
            lambda: s3.put_public_access_block(Bucket=params.bucket, PublicAccessBlockConfiguration=ALL_BLOCKED),
        )
        return BlockResult(
            bucket=params.bucket,
            region=params.region,
            previous=previous,
            summary=f"blocked public access to {params.bucket}",
        )

    def undo(self, result: BlockResult, ctx: ActionContext) -> UndoResult:
        s3 = client(ctx, "s3", result.region)
        with aws_errors(f"restore the public access block of {result.bucket}"):
            if result.previous is None:
                s3.delete_public_access_block(Bucket=result.bucket)
            else:
                s3.put_public_access_block(Bucket=result.bucket, PublicAccessBlockConfiguration=result.previous)
        return UndoResult(summary=f"restored the public access settings of {result.bucket}")

    def policy_statements(self, params: BlockParams | None) -> list[dict[str, Any]]:
        return [
            {
                "Effect": "Allow",
                "Action": list(BLOCK_PERMISSIONS),
                "Resource": bucket_resources(known(params, "bucket")),
            }
        ]


# -- aws.s3.preserve_objects ----------------------------------------------------------------------


class PreserveParams(ActionParams):
    bucket: str = Field(pattern=BUCKET)
    evidence_bucket: str = Field(pattern=BUCKET)
    prefix: str = ""
    keys: list[str] | None = Field(default=None, description="Only these keys (all their versions).")
    evidence_prefix: str | None = Field(default=None, description="Default: fireline/<incident id>/.")
    require_object_lock: bool = Field(default=True, description="Refuse an evidence bucket without Object Lock.")
    retention_days: int = Field(default=365, ge=1, le=36500)
    legal_hold: bool = True
    max_versions: int = Field(default=1000, ge=1, le=100_000)
    on_gap: OnGap = Field(default="fail", description="When a listing page cannot be read: fail the step, or warn.")
    region: str | None = None


class PreserveResult(ActionResult):
    bucket: str
    evidence_bucket: str
    objects: list[PreservedObject] = Field(default_factory=list)
    retention: dict[str, Any] | None = None
    gap: Gap | None = Field(default=None, description="Where the listing stopped short (what was listed is kept).")
    warnings: list[str] = Field(default_factory=list)


SOURCE_READS = ("s3:ListBucketVersions", "s3:GetObject", "s3:GetObjectVersion", "s3:GetBucketTagging")
EVIDENCE_WRITES = (
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:AbortMultipartUpload",
)


@action(
    "aws.s3.preserve_objects",
    kind=ActionKind.EVIDENCE,
    params=PreserveParams,
    result=PreserveResult,
    permissions=(*SOURCE_READS, *EVIDENCE_WRITES),
)
class PreserveObjects(Action[PreserveParams, PreserveResult]):
    """Copy every version of the chosen objects into an Object Lock evidence bucket, with SHA-256.

    Re-applying finds copies made earlier (by their sha256 tag) and does not copy them again.
    """

    def plan(self, params: PreserveParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        target = bucket_target(ctx, params.bucket, params.region, warnings)
        what = ", ".join(params.keys) if params.keys else f"prefix {params.prefix!r}"
        return Plan(
            action=self.name,
            summary=f"preserve s3://{params.bucket} ({what}) in s3://{params.evidence_bucket}",
            targets=[target],
            mutating=False,
            warnings=warnings,
            reads=[f"every version of {what} in {params.bucket}"],
            changes=[
                f"copy to s3://{params.evidence_bucket}/{self._prefix(params, ctx)} with COMPLIANCE "
                f"retention {params.retention_days}d" + (" and legal hold" if params.legal_hold else "")
            ],
        )

    @staticmethod
    def _prefix(params: PreserveParams, ctx: ActionContext) -> str:
        return params.evidence_prefix if params.evidence_prefix is not None else f"fireline/{ctx.incident.id}/"

    def apply(self, params: PreserveParams, ctx: ActionContext) -> PreserveResult:
        s3 = client(ctx, "s3", params.region)
        locked = object_lock_enabled(s3, params.evidence_bucket)
        if params.require_object_lock and not locked:
            raise ActionError(
                f"evidence bucket {params.evidence_bucket} has no Object Lock "
                "(create it with Object Lock, or set require_object_lock: false)"
            )
        versions, gap = versions_to_copy(ctx, s3, params)
        if len(versions) > params.max_versions:
            raise ActionError(f"{len(versions)} object versions match, more than max_versions={params.max_versions}")
        until = utcnow() + timedelta(days=params.retention_days)
        retention = {"mode": "COMPLIANCE", "until": iso(until), "legal_hold": params.legal_hold} if locked else None
        result = PreserveResult(
            changed=False, bucket=params.bucket, evidence_bucket=params.evidence_bucket, retention=retention
        )
        for version in versions:
            ctx.check_cancelled()
            copied = preserve_one(ctx, s3, params, version, self._prefix(params, ctx), retention, until)
            result.objects.append(copied)
            result.changed |= not copied.reused
        total = sum(o.size for o in result.objects)
        result.summary = f"preserved {len(result.objects)} version(s), {total} bytes, in {params.evidence_bucket}"
        if gap is not None:
            result.gap = gap
            result.summary += f" (INCOMPLETE: {gap.describe()})"
            where = f"s3://{params.bucket}/{params.prefix}"
            # The versions listed before the gap are preserved already; then fail or warn.
            result.warnings = settle_gap(ctx, gap, params.on_gap, what=f"versions of {where}", evidence_id="")
        return result

    def policy_statements(self, params: PreserveParams | None) -> list[dict[str, Any]]:
        return [
            {
                "Effect": "Allow",
                "Action": list(SOURCE_READS),
                "Resource": bucket_resources(known(params, "bucket"), True),
            },
            {
                "Effect": "Allow",
                "Action": list(EVIDENCE_WRITES),
                "Resource": bucket_resources(known(params, "evidence_bucket"), True),
            },
        ]
