"""data.quarantine on in-process moto: what it tags, the deny statement, dry-run, idempotency, undo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flows.errors import ActionError
from integrations.data.quarantine import DataQuarantine, DataQuarantineParams
from integrations.models.base import KEY_QUARANTINED
from tests.integrations.data.helpers import DATA, POISONED, all_tags, context, seed_data

TRAINING_ROLE = "arn:aws:iam::123456789012:role/sagemaker-training"
# An existing policy, formatted the way a person wrote it: undo must give back exactly these bytes.
PRIOR_POLICY = (
    '{"Version":"2012-10-17",  "Statement": [\n  {"Sid": "ReadersOnly", "Effect": "Deny", "Principal": "*",'
    ' "Action": "s3:DeleteBucket", "Resource": "arn:aws:s3:::ml-training-data"}]}'
)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        seed_data(client)
        # A second version of the poisoned shard, an unrelated tag, and another incident's mark.
        client.put_object(Bucket=DATA, Key="shards/2026-11-02/part-0.csv", Body=b"more poison")
        client.put_object(Bucket=DATA, Key="shards/2026-11-02/part-1.csv", Body=b"x", Tagging="owner=data-eng")
        client.put_object(
            Bucket=DATA, Key="shards/2026-11-02/part-2.csv", Body=b"y", Tagging=f"{KEY_QUARANTINED}=inc-1:%20old"
        )
        yield client


def params(**extra: Any) -> DataQuarantineParams:
    return DataQuarantineParams.model_validate({"uri": POISONED, "reason": "poisoned shard", **extra})


def policy(s3: Any) -> str | None:
    try:
        return str(s3.get_bucket_policy(Bucket=DATA)["Policy"])
    except s3.exceptions.ClientError:
        return None


def test_dry_run_plans_the_versions_and_tags_nothing(s3: Any, tmp_path: Path) -> None:
    before = all_tags(s3, DATA)
    plan = DataQuarantine().plan(params(deny_roles=[TRAINING_ROLE]), context(tmp_path, mode="dry-run"))

    assert plan.changes[0].startswith(f"tag 4 object version(s) under {POISONED}")
    assert sum(1 for line in plan.changes if "?versionId=" in line) == 4
    assert plan.targets[0].id == DATA
    assert all_tags(s3, DATA) == before  # read back from moto
    assert policy(s3) is None
    with pytest.raises(ActionError, match="refused in dry-run mode"):
        DataQuarantine().apply(params(), context(tmp_path, "again", mode="dry-run"))


def test_quarantine_tags_exactly_the_prefix_and_undo_restores_everything(s3: Any, tmp_path: Path) -> None:
    s3.put_bucket_policy(Bucket=DATA, Policy=PRIOR_POLICY)
    before = all_tags(s3, DATA)
    ctx = context(tmp_path)

    result = DataQuarantine().apply(params(deny_roles=[TRAINING_ROLE]), ctx)

    # moto applies a bucket policy's Deny to every caller (it ignores Principal), so the tags are
    # read back with the policy lifted for a moment, then put back byte for byte.
    written = str(policy(s3))
    s3.delete_bucket_policy(Bucket=DATA)
    after = all_tags(s3, DATA)
    s3.put_bucket_policy(Bucket=DATA, Policy=written)
    marked = {k for k, tags in after.items() if tags.get(KEY_QUARANTINED) == "inc-7: poisoned shard"}
    assert marked == {f"{t.key}?versionId={t.version_id}" for t in result.tagged}
    assert {k.split("?")[0] for k in marked} == {"shards/2026-11-02/part-0.csv", "shards/2026-11-02/part-1.csv"}
    assert len(marked) == 3  # both versions of part-0, and part-1
    assert [k for k in after if after[k] != before[k] and k not in marked] == []
    assert len(result.left) == 1  # another incident's mark stays
    assert "inc-1: old" in result.left[0]
    assert next(v for k, v in after.items() if "part-1" in k)["owner"] == "data-eng"
    statements = json.loads(str(policy(s3)))["Statement"]
    deny = statements[-1]
    assert deny["Principal"] == {"AWS": [TRAINING_ROLE]}
    assert deny["Resource"] == f"arn:aws:s3:::{DATA}/shards/2026-11-02/*"
    assert statements[0]["Sid"] == "ReadersOnly"

    # A retry under the same key adds no second statement and keeps the policy from before the first
    # attempt. moto applies a bucket policy's Deny to every caller (it ignores Principal), so the
    # responder's own tag reads would now be refused: the retry selects no version to read.
    again = DataQuarantine().apply(params(deny_roles=[TRAINING_ROLE], version_ids=["none"]), ctx)
    assert not again.changed
    assert again.previous_policy == PRIOR_POLICY
    assert len(json.loads(str(policy(s3)))["Statement"]) == 2

    DataQuarantine().undo(result, ctx)
    assert policy(s3) == PRIOR_POLICY  # byte for byte
    assert all_tags(s3, DATA) == before  # exactly the tags it added are gone


def test_undo_deletes_a_policy_that_did_not_exist_and_spares_later_edits(s3: Any, tmp_path: Path) -> None:
    ctx = context(tmp_path)
    result = DataQuarantine().apply(params(deny_roles=[TRAINING_ROLE]), ctx)
    DataQuarantine().undo(result, ctx)
    assert policy(s3) is None

    result = DataQuarantine().apply(params(deny_roles=[TRAINING_ROLE]), context(tmp_path, "second"))
    doc = json.loads(str(policy(s3)))
    extra = {"Sid": "AddedLater", "Effect": "Deny", "Principal": "*", "Action": "s3:PutBucketTagging"}
    doc["Statement"].append({**extra, "Resource": f"arn:aws:s3:::{DATA}"})
    s3.put_bucket_policy(Bucket=DATA, Policy=json.dumps(doc))
    undone = DataQuarantine().undo(result, context(tmp_path, "second"))
    assert "removed only the quarantine statement" in undone.summary
    assert [s["Sid"] for s in json.loads(str(policy(s3)))["Statement"]] == ["AddedLater"]


def test_selected_versions_and_a_retry_of_the_tags(s3: Any, tmp_path: Path) -> None:
    first = s3.list_object_versions(Bucket=DATA, Prefix="shards/2026-11-02/part-0.csv")["Versions"][-1]["VersionId"]
    ctx = context(tmp_path)
    result = DataQuarantine().apply(params(version_ids=[first]), ctx)
    assert [t.version_id for t in result.tagged] == [first]
    assert result.policy_sid is None
    again = DataQuarantine().apply(params(version_ids=[first]), ctx)
    assert not again.changed
    assert again.tagged == result.tagged  # still ours: undo lifts it


def test_a_bucket_the_run_cannot_read_is_one_clear_error(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another account's bucket: the run's identity may read only its own (moto enforcing IAM)."""
    import moto.settings

    s3.create_bucket(Bucket="other-account-data")
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="responder")
    own = {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{DATA}", f"arn:aws:s3:::{DATA}/*"]}
    iam.put_user_policy(
        UserName="responder", PolicyName="own", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [own]})
    )
    key = iam.create_access_key(UserName="responder")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)

    with pytest.raises(ActionError, match=r"^cannot read s3://other-account-data/x/: .*AccessDenied"):
        DataQuarantine().apply(params(uri="s3://other-account-data/x/"), context(tmp_path))
    own_data = DataQuarantine().apply(params(), context(tmp_path, "own"))  # the same identity, its own bucket
    assert own_data.tagged


def test_since_selects_only_versions_written_at_or_after_it(s3: Any, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    later = DataQuarantine().plan(
        params(since=(datetime.now(UTC) + timedelta(hours=1)).isoformat()), context(tmp_path, mode="dry-run")
    )
    assert later.changes[0].startswith(f"tag 0 object version(s) under {POISONED}")
    earlier = DataQuarantine().plan(
        params(since=(datetime.now(UTC) - timedelta(hours=1)).isoformat()), context(tmp_path, "b", mode="dry-run")
    )
    assert earlier.changes[0].startswith(f"tag 4 object version(s) under {POISONED}")
