"""Shared helpers of the model registry tests: contexts and a versioned S3 artifact."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.actions.context import ActionContext, make_context
from flows.record.store import read_events
from integrations.models.attest import attest
from integrations.models.base import TargetParams


def ctx_at(
    tmp_path: Path, started_at: datetime | None = None, name: str = "run", step: str = "rollback"
) -> ActionContext:
    """A live context whose incident started at ``started_at`` (default: now)."""
    return make_context(tmp_path / name, step_id=step, incident_id="inc-42", started_at=started_at or datetime.now(UTC))


def cutoff_now(whole_seconds: bool = False) -> datetime:
    """A moment after everything created so far and before anything created next.

    SageMaker and MLflow keep milliseconds: a few of them either side are enough. S3 lists whole
    seconds (``whole_seconds``), so the cut-off is then taken just past the next second boundary:
    what came before lies in an earlier second, what comes after in the cut-off's second or later.
    """
    if whole_seconds:
        now = time.time()
        time.sleep(math.floor(now) + 1.02 - now)
        return datetime.now(UTC)
    time.sleep(0.005)
    moment = datetime.now(UTC)
    time.sleep(0.005)
    return moment


def events(ctx: ActionContext, type_: str) -> list[dict[str, Any]]:
    return [e for e in read_events(ctx.record.events.path) if e["type"] == type_]


def put_version(s3: Any, bucket: str, key: str, data: bytes) -> str:
    return str(s3.put_object(Bucket=bucket, Key=key, Body=data)["VersionId"])


def attest_s3(ctx: ActionContext, bucket: str, key: str, version_id: str, approve: bool = True) -> str:
    target = TargetParams(registry="s3", bucket=bucket, key=key)
    return attest(ctx, target, version_id, by="ci:train-pipeline", eval_metrics={"auc": 0.91}, approve=approve).sha256


@contextlib.contextmanager
def versioned_bucket(bucket: str) -> Iterator[Any]:
    """An in-process moto S3 with one versioned bucket; yields the client."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield client
