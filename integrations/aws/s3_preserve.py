"""The work behind ``aws.s3.preserve_objects``: versions to copy, earlier copies, one version's copy."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from flows.actions.context import ActionContext
from flows.actions.registry import ActionResult
from flows.record.store import EvidenceItem, iso, utcnow
from integrations.aws.pages import Gap, read_pages
from integrations.aws.s3_stream import stream_copy
from integrations.aws.session import aws_errors, error_code, tag_dict

if TYPE_CHECKING:
    from integrations.aws.s3 import PreserveParams

SHA_TAG = "fireline-sha256"


class PreservedObject(ActionResult):
    key: str
    version_id: str | None
    location: str
    size: int
    sha256: str
    reused: bool = False


def object_lock_enabled(s3: Any, bucket: str) -> bool:
    from botocore.exceptions import ClientError

    with aws_errors(f"read the Object Lock configuration of {bucket}"):
        try:
            conf = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        except ClientError as e:
            if error_code(e) == "ObjectLockConfigurationNotFoundError":
                return False
            raise
    return bool(conf.get("ObjectLockEnabled") == "Enabled")


def versions_to_copy(ctx: ActionContext, s3: Any, params: PreserveParams) -> tuple[list[dict[str, Any]], Gap | None]:
    """Every object version to preserve (delete markers have no bytes and are skipped), and the gap
    when a listing page could not be read (the versions listed before it are still preserved)."""
    prefixes = params.keys or [params.prefix]
    found: list[dict[str, Any]] = []
    for prefix in prefixes:
        read = read_pages(
            ctx,
            partial(_list_page, s3),
            {"Bucket": params.bucket, "Prefix": prefix},
            what=f"list versions in {params.bucket}",
            items_key="Versions",
            token_in="Token",
        )
        found += [v for v in read.items if params.keys is None or v["Key"] == prefix]
        if read.gap is not None:
            last = read.items[-1] if read.items else {}
            read.gap.missing = {
                "bucket": params.bucket,
                "prefix": prefix,
                "after_key": last.get("Key"),
                "after_version": last.get("VersionId"),
                "keys_not_listed": list(prefixes[prefixes.index(prefix) + 1 :]),
            }
            return found, read.gap
    return found, None


def _list_page(s3: Any, **kwargs: Any) -> dict[str, Any]:
    """One ListObjectVersions page; its two continuation markers travel as one token."""
    token = kwargs.pop("Token", None)
    if token:
        key, _, version = str(token).partition("\0")
        kwargs.update(KeyMarker=key, VersionIdMarker=version)
    page: dict[str, Any] = s3.list_object_versions(**kwargs)
    if page.get("IsTruncated"):
        page["Token"] = f"{page.get('NextKeyMarker', '')}\0{page.get('NextVersionIdMarker', '')}"
    return page


def preserve_one(
    ctx: ActionContext,
    s3: Any,
    params: PreserveParams,
    version: dict[str, Any],
    prefix: str,
    retention: dict[str, Any] | None,
    until: Any,
) -> PreservedObject:
    key, version_id = version["Key"], version.get("VersionId")
    vid = version_id if version_id and version_id != "null" else "null"
    dest = f"{prefix}{params.bucket}/{key}/{vid}"
    source_arn = f"arn:aws:s3:::{params.bucket}/{key}" + (f"?versionId={vid}" if vid != "null" else "")
    reused = _existing_copy(s3, params.evidence_bucket, dest)
    if reused is not None:
        dest_version, size, sha = reused
    else:
        source = {"Bucket": params.bucket, "Key": key, **({"VersionId": vid} if vid != "null" else {})}
        with aws_errors(f"copy s3://{params.bucket}/{key} ({vid})"):
            copied = stream_copy(ctx, s3, source, params.evidence_bucket, dest)
            dest_version, size, sha = copied.version_id, copied.size, copied.sha256
            version_arg = {"VersionId": dest_version} if dest_version else {}
            s3.put_object_tagging(
                Bucket=params.evidence_bucket,
                Key=dest,
                **version_arg,
                Tagging={"TagSet": [{"Key": SHA_TAG, "Value": sha}]},
            )
            if retention is not None:
                s3.put_object_retention(
                    Bucket=params.evidence_bucket,
                    Key=dest,
                    **version_arg,
                    Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
                )
                if params.legal_hold:
                    s3.put_object_legal_hold(
                        Bucket=params.evidence_bucket, Key=dest, **version_arg, LegalHold={"Status": "ON"}
                    )
    location = f"s3://{params.evidence_bucket}/{dest}" + (f"?versionId={dest_version}" if dest_version else "")
    ctx.record_evidence(
        EvidenceItem(
            id=ctx.evidence_id(f"s3:{params.bucket}/{key}/{vid}"),
            name=f"{params.bucket}/{key}",
            location=location,
            size=size,
            sha256=sha,
            source_arn=source_arn,
            collected_at=iso(utcnow()),
            collected_by=f"{ctx.actor}:{ctx.playbook or '?'}:{ctx.step_id}",
            step=ctx.step_id or None,
            item=ctx.item,
            description=f"S3 object version {vid}",
            content_type=None,
            retention=retention,
        )
    )
    return PreservedObject(
        key=key,
        version_id=vid,
        location=location,
        size=size,
        sha256=sha,
        reused=reused is not None,
        changed=reused is None,
    )


def _existing_copy(s3: Any, bucket: str, key: str) -> tuple[str | None, int, str] | None:
    """(version, size, sha256) of a copy an earlier attempt finished (it carries the sha256 tag)."""
    from botocore.exceptions import ClientError

    with aws_errors(f"look for an earlier copy at s3://{bucket}/{key}"):
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as e:
            if error_code(e) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        version = head.get("VersionId")
        tags = tag_dict(
            s3.get_object_tagging(Bucket=bucket, Key=key, **({"VersionId": version} if version else {}))["TagSet"]
        )
    sha = tags.get(SHA_TAG)
    return (version, int(head["ContentLength"]), sha) if sha else None
