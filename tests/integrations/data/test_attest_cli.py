"""``fireline attest --training-data`` through the real command line entry point, on in-process moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flows.cli import main
from integrations.data.lineage import decode_training_data
from integrations.data.lineage_registries import s3_prefix_digest
from integrations.models.base import KEY_TRAINING_DATA, decode_tag_value
from tests.integrations.data.helpers import DATA, context, seed_data

MODELS, KEY = "ml-models", "fraud/model.bin"
OTHER = "e" * 64


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        seed_data(client)
        client.create_bucket(Bucket=MODELS)
        client.put_bucket_versioning(Bucket=MODELS, VersioningConfiguration={"Status": "Enabled"})
        yield client


def tags(s3: Any, version: str) -> dict[str, str]:
    raw = s3.get_object_tagging(Bucket=MODELS, Key=KEY, VersionId=version)["TagSet"]
    return {t["Key"]: t["Value"] for t in raw}


def test_training_data_is_digested_and_written(s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    version = s3.put_object(Bucket=MODELS, Key=KEY, Body=b"weights")["VersionId"]
    shards = f"s3://{DATA}/shards/"
    code = main(
        ["attest", "--registry", "s3", f"s3://{MODELS}/{KEY}", "--by", "ci:train", "--json", "--training-data", shards,
         "--training-data", f"https://data.example/features.parquet@{OTHER}"]
    )  # fmt: skip

    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    expected = s3_prefix_digest(context(tmp_path), shards)[0]
    assert doc["training_data"] == {shards: expected, "https://data.example/features.parquet": OTHER}
    stored = tags(s3, version)
    assert all(v.startswith("base64:") for k, v in stored.items() if k.startswith(KEY_TRAINING_DATA))
    decoded = decode_training_data({k: decode_tag_value(v) for k, v in stored.items()})
    assert {r.uri: r.sha256 for r in decoded} == doc["training_data"]


def test_a_dataset_outside_s3_needs_its_digest(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    version = s3.put_object(Bucket=MODELS, Key=KEY, Body=b"weights")["VersionId"]
    code = main(["attest", "--registry", "s3", f"s3://{MODELS}/{KEY}", "--by", "ci", "--training-data", "gs://x/y/"])
    err = capsys.readouterr().err
    assert code != 0
    assert "give the digest (URI@sha256) of a dataset outside S3" in err
    assert "Traceback" not in err
    assert "fireline.known_good" not in tags(s3, version)  # nothing half-written


def test_an_unreadable_dataset_is_one_clear_line(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    version = s3.put_object(Bucket=MODELS, Key=KEY, Body=b"weights")["VersionId"]
    code = main(
        ["attest", "--registry", "s3", f"s3://{MODELS}/{KEY}", "--by", "ci", "--training-data", "s3://not-ours/x/"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot read s3://not-ours/x/" in err
    assert "Traceback" not in err
    assert tags(s3, version) == {}
