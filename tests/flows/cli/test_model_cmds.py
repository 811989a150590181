"""``fireline attest`` through the real command line entry point, on in-process moto."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.cli import main
from tests.integrations.models.helpers import versioned_bucket

BUCKET, KEY = "models", "fraud/model.bin"


@pytest.fixture
def s3() -> Iterator[Any]:
    with versioned_bucket(BUCKET) as client:
        yield client


def test_attest_s3_latest_version(s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    version = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"weights" * 100)["VersionId"]
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"auc": 0.93, "f1": 0.81}')

    code = main(
        [
            "attest",
            "--registry",
            "s3",
            f"s3://{BUCKET}/{KEY}",
            "--by",
            "ci:train",
            "--eval",
            str(metrics),
            "--approve",
            "--json",
        ]
    )

    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == version
    assert doc["sha256"] == hashlib.sha256(b"weights" * 100).hexdigest()
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=BUCKET, Key=KEY, VersionId=version)["TagSet"]}
    assert tags["fireline.known_good"] == "true"
    assert tags["fireline.sha256"] == doc["sha256"]
    assert tags["fireline.attested_by"] == "ci:train"
    assert tags["fireline.approved"] == "true"
    assert tags["fireline.eval"].startswith("base64:")


def test_attest_named_version_text_output(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    first = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"one")["VersionId"]
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"two")
    assert main(["attest", "--registry", "s3", f"s3://{BUCKET}/{KEY}?versionId={first}", "--by", "alice"]) == 0
    assert hashlib.sha256(b"one").hexdigest() in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["attest", "--registry", "s3", "not-a-uri", "--by", "ci"], 2),
        (["attest", "--registry", "mlflow", "model-without-version", "--by", "ci"], 2),
        (["attest", "--registry", "sagemaker", "arn:aws:sagemaker:us-east-1:1:model/x", "--by", "ci"], 2),
        (["attest", "--registry", "nope", "s3://a/b", "--by", "ci"], 2),
        (["attest", "--registry", "s3", "s3://missing-bucket/k", "--by", "ci"], 1),
    ],
)
def test_attest_bad_input(s3: Any, args: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == code
    err = capsys.readouterr().err
    assert err.startswith("fireline: ")
    assert "Traceback" not in err


def test_attest_bad_eval_file(s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x")
    bad = tmp_path / "metrics.json"
    bad.write_text("[1, 2]")
    assert main(["attest", "--registry", "s3", f"s3://{BUCKET}/{KEY}", "--by", "ci", "--eval", str(bad)]) == 1
    assert "JSON object" in capsys.readouterr().err
