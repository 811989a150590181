"""Training-data lineage units: the metadata encoding, URI overlap, the S3 prefix digest."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from flows.errors import ActionError
from integrations.data.lineage import (
    PIECE,
    DatasetRef,
    LineageError,
    TaintedDataset,
    decode_training_data,
    encode_training_data,
    split_dataset_arg,
    tainted_list,
    uri_overlaps,
)
from integrations.data.lineage_registries import s3_prefix_digest
from integrations.models.base import KEY_TRAINING_DATA, decode_tag_value, encode_tag_value
from tests.integrations.data.helpers import DATA, context, seed_data

SHA = "a" * 64


def test_encoding_round_trips_through_the_restricted_tag_alphabet() -> None:
    datasets = {f"s3://{DATA}/shards/2026-11-{day:02d}/": SHA for day in range(1, 4)}
    keys = encode_training_data(datasets)
    assert len(keys) > 1  # three datasets do not fit in one 256-character value
    stored = {k: encode_tag_value(k, v) for k, v in keys.items()}
    assert all(len(v) <= 256 and v.startswith("base64:") for v in stored.values())
    decoded = decode_training_data({k: decode_tag_value(v) for k, v in stored.items()})
    assert {r.uri: r.sha256 for r in decoded} == datasets


def test_too_many_datasets_is_a_clear_error() -> None:
    many = {f"s3://{DATA}/shard-{i:04d}/": SHA for i in range(20)}
    with pytest.raises(ActionError, match="attest a common prefix"):
        encode_training_data(many)
    assert PIECE * 4 < len(str(many))


@pytest.mark.parametrize("value", ["not json", '["s3://x/"]', '{"s3://x/": 3}', "base64:@@@"])
def test_malformed_training_data_is_a_lineage_error(value: str) -> None:
    with pytest.raises(LineageError, match=KEY_TRAINING_DATA):
        decode_training_data({KEY_TRAINING_DATA: decode_tag_value(value)})


def test_uri_overlap_follows_s3_prefix_semantics() -> None:
    assert uri_overlaps("s3://b/shards/", "s3://b/shards/2026-11-02/")
    assert uri_overlaps("s3a://b/shards/2026-11-02/x.csv", "s3://b/shards/")
    assert uri_overlaps("s3://b/", "s3://b/shards/")
    assert not uri_overlaps("s3://b/curated/", "s3://b/shards/")
    assert not uri_overlaps("s3://other/shards/", "s3://b/shards/")


def test_taint_respects_digest_and_since() -> None:
    ref = DatasetRef(uri="s3://b/shards/", sha256=SHA)
    now = datetime.now(UTC)
    assert TaintedDataset(uri="s3://b/shards/2026/").reaches(ref, now)
    assert not TaintedDataset(uri="s3://b/shards/", sha256="b" * 64).reaches(ref, now)
    assert not TaintedDataset(uri="s3://b/shards/", since=now).reaches(ref, now - timedelta(seconds=1))
    assert TaintedDataset(uri="s3://b/shards/", since=now).reaches(ref, now)


def test_tainted_list_accepts_uris_objects_and_a_blast_radius_output() -> None:
    assert tainted_list(f"s3://b/x/@{SHA}") == [TaintedDataset(uri="s3://b/x/", sha256=SHA)]
    assert tainted_list({"datasets": [{"uri": "s3://b/y/"}], "models": []}) == [TaintedDataset(uri="s3://b/y/")]
    assert split_dataset_arg("s3://b/user@example/") == ("s3://b/user@example/", None)


def test_s3_prefix_digest_is_the_contract_and_reads_no_object(tmp_path: Path) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        versions = seed_data(s3)
        s3.put_object(Bucket=DATA, Key="shards/2026-11-01/part-0.csv", Body=b"newer")  # only the latest counts
        latest = {
            v["Key"]: (v["VersionId"], v["ETag"].strip('"'))
            for v in s3.list_object_versions(Bucket=DATA, Prefix="shards/")["Versions"]
            if v["IsLatest"]
        }
        digest, count = s3_prefix_digest(context(tmp_path), f"s3://{DATA}/shards/")
    lines = "".join(f"{k}\0{latest[k][0]}\0{latest[k][1]}\n" for k in sorted(latest))
    assert digest == hashlib.sha256(lines.encode()).hexdigest()
    assert count == 2
    assert latest["shards/2026-11-02/part-0.csv"][0] == versions["shards/2026-11-02/part-0.csv"]


def test_unreadable_dataset_uri_is_one_clear_line(tmp_path: Path) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        seed_data(s3)
        with pytest.raises(ActionError, match=r"cannot read s3://no-such-bucket/x/: .*NoSuchBucket"):
            s3_prefix_digest(context(tmp_path), "s3://no-such-bucket/x/")
