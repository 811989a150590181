"""The S3 anchor sink: sealed run-record heads written to the Object Lock evidence bucket.

Each head is its own object (``fireline-anchors/<run id>/<count>-<hash>.json``), never overwritten.
When the bucket has Object Lock enabled, each object gets a COMPLIANCE retention
(``ANCHOR_RETENTION_DAYS``): per the Amazon S3 User Guide ("Locking objects with Object Lock",
retention modes), an object version in compliance mode cannot be overwritten or deleted by any
user, including the root user, until its retention date passes.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from flows.config import Settings
from flows.record.anchor import ANCHOR_PREFIX
from flows.record.store import utcnow
from integrations.aws.s3_preserve import object_lock_enabled
from integrations.aws.session import aws_errors, paginate, standalone_client

ANCHOR_RETENTION_DAYS = 365


class S3AnchorSink:
    """Puts and lists heads in ``bucket`` with the settings' credentials."""

    def __init__(self, settings: Settings, bucket: str) -> None:
        self.bucket = bucket
        self.s3 = standalone_client(settings, "s3")
        self._locked: bool | None = None

    def put(self, run_id: str, head: dict[str, Any]) -> None:
        key = f"{ANCHOR_PREFIX}/{run_id}/{int(head['count']):08d}-{head['head_sha256']}.json"
        body = json.dumps({"run_id": run_id, **head}, sort_keys=True).encode("utf-8")
        extra: dict[str, Any] = {}
        if self._locked is None:
            self._locked = object_lock_enabled(self.s3, self.bucket)
        if self._locked:
            extra = {
                "ObjectLockMode": "COMPLIANCE",
                "ObjectLockRetainUntilDate": utcnow() + timedelta(days=ANCHOR_RETENTION_DAYS),
            }
        with aws_errors(f"anchor the record head of {run_id} in s3://{self.bucket}"):
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json", **extra)

    def heads(self, run_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        with aws_errors(f"read the anchored heads of {run_id}"):
            for item in paginate(self.s3, "list_objects_v2", "Contents", Bucket=self.bucket,
                                 Prefix=f"{ANCHOR_PREFIX}/{run_id}/"):  # fmt: skip
                body = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                found.append(json.loads(body))
        return found
