"""Evidence kept in S3: parse ``s3://`` locations and re-hash the object version they name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

from flows.config import Settings
from flows.errors import IntegrationError
from integrations.aws.s3_stream import sha256_stream
from integrations.aws.session import aws_errors, error_code, standalone_client

if TYPE_CHECKING:
    from flows.record.evidence_verify import ItemCheck


def parse_location(location: str) -> tuple[str, str, str | None]:
    """``s3://bucket/key?versionId=v`` as (bucket, key, version id or None)."""
    url = urlparse(location)
    version = parse_qs(url.query).get("versionId", [None])[0]
    return url.netloc, unquote(url.path.lstrip("/")), version


def check_s3_item(settings: Settings, location: str, check: ItemCheck) -> None:
    """Stream the object version and fill in its hash, size and retention on ``check``."""
    from botocore.exceptions import ClientError

    bucket, key, version = parse_location(location)
    s3 = standalone_client(settings, "s3")
    args: dict[str, Any] = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
    try:
        with aws_errors(f"read {location}"):
            try:
                obj = s3.get_object(**args)
            except ClientError as e:
                if error_code(e) in ("NoSuchKey", "NoSuchVersion", "404", "NoSuchBucket"):
                    check.status, check.detail = "missing", f"{error_code(e)}"
                    return
                raise
            check.actual_sha256, check.actual_size = sha256_stream(obj["Body"])
            mode = obj.get("ObjectLockMode")
            if mode:
                check.detail = f"retention {mode} until {obj.get('ObjectLockRetainUntilDate')}"
    except IntegrationError as e:
        check.status, check.detail = "error", str(e)
