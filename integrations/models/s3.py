"""The ``s3`` registry: one versioned object is the model artifact; its versions are the model versions.

Serving means "the latest version of the key". A rollback copies the known-good version back as
the latest one (a new version), so every bad version stays readable for forensics; draining puts a
delete marker on top (nothing is deleted). Metadata lives in the object version's tags.

Tag values are encoded by :func:`integrations.models.base.encode_tag_value` (S3 refuses JSON
characters). An object carries at most 10 tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flows.errors import IntegrationError
from integrations.aws.session import client
from integrations.models.base import (
    CHUNK,
    KEY_APPROVED,
    KEY_QUARANTINED,
    KEY_RESTORED_FROM,
    ModelVersion,
    RegistryAdapter,
    ServingState,
    decode_tag_value,
    encode_tag_value,
    hash_chunks,
    with_metadata,
)

MAX_TAGS = 10
PAGE_SIZE = 100  # versions per listing page: the winner is usually on the first


def _error(what: str, e: Exception) -> IntegrationError:
    return IntegrationError(f"s3: {what}: {e}", details={"error": type(e).__name__})


class S3Adapter(RegistryAdapter):
    """Versions of ``s3://bucket/key`` as model versions."""

    registry = "s3"

    @property
    def bucket(self) -> str:
        return str(self.target.bucket)

    @property
    def key(self) -> str:
        return str(self.target.key)

    @property
    def s3(self) -> Any:
        return client(self.ctx, "s3")

    def _listing(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        versions: list[dict[str, Any]] = []
        markers: list[dict[str, Any]] = []
        try:
            for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=self.key):
                versions += [v for v in page.get("Versions", []) if v["Key"] == self.key]
                markers += [m for m in page.get("DeleteMarkers", []) if m["Key"] == self.key]
        except Exception as e:
            raise _error(f"cannot list the versions of {self.target.label}", e) from e
        return versions, markers

    def _to_version(self, raw: Mapping[str, Any]) -> ModelVersion:
        vid = str(raw["VersionId"])
        created = raw["LastModified"]
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return ModelVersion(
            id=vid,
            label=f"{self.target.label}?versionId={vid}",
            created_at=created,
            artifact=f"s3://{self.bucket}/{self.key}?versionId={vid}",
            extra={"size": raw.get("Size"), "etag": raw.get("ETag")},
            precision=timedelta(seconds=1),
        )

    def versions(self) -> Iterator[ModelVersion]:
        # S3 lists a key's versions newest first, and the key itself before any longer key sharing
        # its prefix: so the listing streams in policy order and can stop at the first other key.
        pages = self.s3.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=self.key, PaginationConfig={"PageSize": PAGE_SIZE}
        )
        try:
            for page in pages:
                for raw in page.get("Versions", []):
                    if raw["Key"] != self.key:
                        if raw["Key"] > self.key:
                            return
                        continue
                    yield self._to_version(raw)
        except Exception as e:
            raise _error(f"cannot list the versions of {self.target.label}", e) from e

    def tags(self, version_id: str) -> dict[str, str]:
        try:
            raw = self.s3.get_object_tagging(Bucket=self.bucket, Key=self.key, VersionId=version_id)["TagSet"]
        except Exception as e:
            raise _error(f"cannot read the tags of version {version_id}", e) from e
        return {t["Key"]: decode_tag_value(t["Value"]) for t in raw}

    def load(self, version: ModelVersion) -> ModelVersion:
        tags = self.tags(version.id)
        return with_metadata(version, tags, approved=tags.get(KEY_APPROVED) == "true")

    def version(self, version_id: str) -> ModelVersion:
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self.key, VersionId=version_id)
        except Exception as e:
            raise _error(f"version {version_id} of {self.target.label} cannot be read", e) from e
        return self.load(self._to_version({**head, "VersionId": version_id}))

    def compute_digest(self, version: ModelVersion) -> str:

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.key, VersionId=version.id)["Body"]
        except Exception as e:
            raise _error(f"cannot read {version.artifact}", e) from e
        with body:
            digest, size = hash_chunks(body.iter_chunks(CHUNK), self.ctx)
        self.bytes_read += size
        return digest

    def serving(self) -> ServingState:
        from botocore.exceptions import ClientError

        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError as e:
            # 404: no object, or a delete marker on top (drained): nothing is served.
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return ServingState(versions=[], detail={"version_id": None})
            raise _error(f"cannot read {self.target.label}", e) from e
        vid = str(head.get("VersionId"))
        restored_from = self.tags(vid).get(KEY_RESTORED_FROM)
        return ServingState(versions=[vid], detail={"version_id": vid, "restored_from": restored_from})

    def is_serving(self, version: ModelVersion, state: ServingState) -> bool:
        return state.versions == [version.id] or state.detail.get("restored_from") == version.id

    def _copy_as_latest(self, version_id: str, extra_tags: Mapping[str, str]) -> str:
        tags = {k: v for k, v in self.tags(version_id).items() if k not in (KEY_QUARANTINED, KEY_RESTORED_FROM)}
        tags.update(extra_tags)
        tagging = urlencode({k: encode_tag_value(k, v) for k, v in tags.items()})
        try:
            copied = self.s3.copy_object(
                Bucket=self.bucket,
                Key=self.key,
                CopySource={"Bucket": self.bucket, "Key": self.key, "VersionId": version_id},
                TaggingDirective="REPLACE",
                Tagging=tagging,
                MetadataDirective="COPY",
            )
        except Exception as e:
            raise _error(f"cannot copy version {version_id} back as the latest", e) from e
        return str(copied.get("VersionId"))

    def deploy(self, version: ModelVersion) -> list[str]:
        new = self._copy_as_latest(version.id, {KEY_RESTORED_FROM: version.id})
        return [f"copied {version.artifact} back as the latest version ({new}); newer versions stay readable"]

    def restore(self, state: ServingState) -> list[str]:
        now = self.serving()
        wanted = state.detail.get("version_id")
        if wanted is None:
            return self.drain()
        if now.versions == [wanted]:
            return []
        new = self._copy_as_latest(str(wanted), {KEY_RESTORED_FROM: str(wanted)})
        return [f"rolled forward: copied version {wanted} back as the latest ({new})"]

    def drain(self) -> list[str]:
        if not self.serving().versions:
            return []
        try:
            marker = self.s3.delete_object(Bucket=self.bucket, Key=self.key).get("VersionId")
        except Exception as e:
            raise _error(f"cannot drain {self.target.label}", e) from e
        return [
            f"put a delete marker ({marker}) on {self.target.label}: nothing is served, every version stays readable"
        ]

    def write_metadata(self, version: ModelVersion, updates: Mapping[str, str], remove: Iterable[str] = ()) -> None:
        tags = self.tags(version.id)
        for name in remove:
            tags.pop(name, None)
        tags.update(updates)
        if len(tags) > MAX_TAGS:
            raise IntegrationError(f"s3: version {version.id} would carry {len(tags)} tags; S3 allows {MAX_TAGS}")
        tag_set = [{"Key": k, "Value": encode_tag_value(k, v)} for k, v in sorted(tags.items())]
        try:
            if tag_set:
                self.s3.put_object_tagging(
                    Bucket=self.bucket, Key=self.key, VersionId=version.id, Tagging={"TagSet": tag_set}
                )
            else:
                self.s3.delete_object_tagging(Bucket=self.bucket, Key=self.key, VersionId=version.id)
        except Exception as e:
            raise _error(f"cannot tag version {version.id}", e) from e

    def describe(self) -> dict[str, Any]:
        versions, markers = self._listing()

        def row(v: Mapping[str, Any]) -> dict[str, Any]:
            return {
                k: (v[k].isoformat() if isinstance(v[k], datetime) else v[k])
                for k in ("VersionId", "IsLatest", "LastModified", "Size", "ETag")
                if k in v
            }

        return {
            "target": self.target.label,
            "versions": [row(v) for v in versions],
            "delete_markers": [row(m) for m in markers],
            "serving": self.serving().model_dump(mode="json"),
        }
