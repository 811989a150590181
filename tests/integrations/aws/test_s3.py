"""S3 public access block and evidence preservation against the moto server."""

from __future__ import annotations

import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from flows.errors import ActionError
from integrations.aws.s3 import ALL_BLOCKED, BlockParams, BlockPublicAccess, PreserveObjects, PreserveParams
from integrations.aws.s3_stream import stream_copy
from integrations.aws.sandbox import seed_buckets
from tests.fixtures.moto import AwsEnv

pytestmark = pytest.mark.moto_server


def test_block_public_access_then_no_op_then_undo(aws: AwsEnv) -> None:
    aws.seed(seed_buckets)
    s3 = aws.client("s3")
    loose = {**ALL_BLOCKED, "BlockPublicPolicy": False, "RestrictPublicBuckets": False}
    s3.put_public_access_block(Bucket="ml-training-data", PublicAccessBlockConfiguration=loose)
    action, params = BlockPublicAccess(), BlockParams(bucket="ml-training-data")
    result = action.apply(params, aws.context())
    assert result.previous == loose
    assert s3.get_public_access_block(Bucket="ml-training-data")["PublicAccessBlockConfiguration"] == ALL_BLOCKED
    assert not action.apply(params, aws.context()).changed
    action.undo(result, aws.context())
    assert s3.get_public_access_block(Bucket="ml-training-data")["PublicAccessBlockConfiguration"] == loose


def test_block_plan_declares_the_bucket_with_its_tags(aws: AwsEnv) -> None:
    aws.seed(seed_buckets)
    plan = BlockPublicAccess().plan(BlockParams(bucket="ml-training-data"), aws.context(mode="dry-run"))
    assert plan.targets[0].tags == {"env": "ml-prod", "team": "ml-platform"}
    untagged = BlockPublicAccess().plan(BlockParams(bucket="scratch-no-lock"), aws.context(mode="dry-run"))
    assert untagged.targets[0].tags == {}


def test_preserve_copies_every_version_with_sha256_and_compliance_retention(aws: AwsEnv) -> None:
    world = aws.seed(seed_buckets)
    s3 = aws.client("s3")
    ctx = aws.context(step_id="preserve")
    result = PreserveObjects().apply(PreserveParams(bucket="ml-training-data", evidence_bucket="ml-evidence"), ctx)
    versions = s3.list_object_versions(Bucket="ml-training-data")["Versions"]
    assert len(result.objects) == len(versions) == 3
    assert {o.key for o in result.objects} == set(world.data["training_objects"])
    for obj in result.objects:
        source = s3.get_object(Bucket="ml-training-data", Key=obj.key, VersionId=obj.version_id)["Body"].read()
        assert obj.sha256 == hashlib.sha256(source).hexdigest()
        assert obj.size == len(source)
        bucket_key, version = obj.location.removeprefix("s3://").split("?versionId=")
        bucket, key = bucket_key.split("/", 1)
        head = s3.head_object(Bucket=bucket, Key=key, VersionId=version)
        # moto has no GetObjectRetention; HEAD carries the same Object Lock fields.
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockLegalHoldStatus"] == "ON"
        assert s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read() == source
    items = {i.location: i for i in ctx.record.evidence.items}
    assert set(items) == {o.location for o in result.objects}
    assert all(i.retention and i.retention["mode"] == "COMPLIANCE" for i in items.values())


def test_compliance_retention_refuses_deletion(aws: AwsEnv) -> None:
    aws.seed(seed_buckets)
    s3 = aws.client("s3")
    result = PreserveObjects().apply(
        PreserveParams(bucket="ml-training-data", evidence_bucket="ml-evidence", keys=["datasets/fraud/labels.json"]),
        aws.context(),
    )
    bucket_key, version = result.objects[0].location.removeprefix("s3://").split("?versionId=")
    key = bucket_key.split("/", 1)[1]
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket="ml-evidence", Key=key, VersionId=version)
    # In COMPLIANCE mode even the governance bypass does not help (moto enforces this too).
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket="ml-evidence", Key=key, VersionId=version, BypassGovernanceRetention=True)


def test_preserve_again_reuses_the_copies(aws: AwsEnv) -> None:
    aws.seed(seed_buckets)
    params = PreserveParams(bucket="ml-training-data", evidence_bucket="ml-evidence", prefix="datasets/fraud/train")
    first = PreserveObjects().apply(params, aws.context("run-1", incident_id="inc-1"))
    second = PreserveObjects().apply(params, aws.context("run-2", incident_id="inc-1"))
    assert not second.changed
    assert all(o.reused for o in second.objects)
    assert [o.location for o in second.objects] == [o.location for o in first.objects]
    assert len(aws.client("s3").list_object_versions(Bucket="ml-evidence")["Versions"]) == 2


def test_an_evidence_bucket_without_object_lock_is_refused(aws: AwsEnv) -> None:
    aws.seed(seed_buckets)
    with pytest.raises(ActionError, match="evidence bucket scratch-no-lock has no Object Lock"):
        PreserveObjects().apply(
            PreserveParams(bucket="ml-training-data", evidence_bucket="scratch-no-lock"), aws.context()
        )
    allowed = PreserveObjects().apply(
        PreserveParams(bucket="ml-training-data", evidence_bucket="scratch-no-lock", require_object_lock=False),
        aws.context(),
    )
    assert allowed.retention is None
    assert len(allowed.objects) == 3


def test_too_many_versions_is_refused(aws: AwsEnv) -> None:
    aws.seed(seed_buckets)
    with pytest.raises(ActionError, match="3 object versions match, more than max_versions=2"):
        PreserveObjects().apply(
            PreserveParams(bucket="ml-training-data", evidence_bucket="ml-evidence", max_versions=2), aws.context()
        )


def test_stream_copy_multipart_hashes_while_streaming(aws: AwsEnv) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="src-bucket")
    s3.create_bucket(Bucket="dst-bucket")
    data = os.urandom(5 * 1024 * 1024) * 2 + b"tail"  # three parts at a 5 MiB chunk size
    s3.put_object(Bucket="src-bucket", Key="big.bin", Body=data)
    copied = stream_copy(
        aws.context(),
        s3,
        {"Bucket": "src-bucket", "Key": "big.bin"},
        "dst-bucket",
        "copy.bin",
        chunk_size=5 * 1024 * 1024,
    )
    assert copied.sha256 == hashlib.sha256(data).hexdigest()
    assert copied.size == len(data)
    assert copied.etag.strip('"').endswith("-3")  # really a three-part multipart upload
    assert s3.get_object(Bucket="dst-bucket", Key="copy.bin")["Body"].read() == data
