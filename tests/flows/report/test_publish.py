"""Reports copied next to the run record in the evidence bucket (moto's S3, in process), and only live."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.config import AwsSettings, Settings
from flows.record.store import RunRecord
from flows.report.publish import finish_run_reports
from tests.flows.report.conftest import RUNS

BUCKET = "ml-evidence"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        client.put_object_lock_configuration(
            Bucket=BUCKET,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
            },
        )
        yield client


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", runs_dir=tmp_path, aws=AwsSettings(evidence_bucket=BUCKET))


def _copy(case: str, tmp_path: Path) -> Path:
    run = tmp_path / case
    shutil.copytree(RUNS / case, run)
    return run


def test_live_reports_land_next_to_the_record_in_the_evidence_bucket(s3: Any, tmp_path: Path) -> None:
    run = _copy("undone", tmp_path)
    paths = finish_run_reports(run, _settings(tmp_path), RunRecord(run))
    incident = json.loads((run / "run.json").read_text())["incident"]["id"]
    prefix = f"fireline/{incident}/record/undone/"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    keys = {o["Key"].removeprefix(prefix) for o in listed}
    assert {p.name for p in paths} <= keys
    assert {"run.json", "events.jsonl", "evidence/manifest.json"} <= keys
    body = s3.get_object(Bucket=BUCKET, Key=prefix + "report.md")
    assert body["Body"].read() == (run / "report.md").read_bytes()
    assert body["ObjectLockMode"] == "COMPLIANCE"  # the bucket's default retention applied
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    written = [e for e in events if e["type"] == "report.written"][-1]
    assert "post-mortem" in written["detail"]["message"]
    assert str(run / "report.md") in written["detail"]["message"]
    published = next(e for e in events if e["type"] == "report.published")
    assert all(loc.startswith(f"s3://{BUCKET}/{prefix}") for loc in published["detail"]["locations"])
    head = json.loads((run / "run.json").read_text())["events"]
    assert head["count"] == len(events)  # run.json's head includes the events the publishing added


def test_a_dry_run_publishes_nothing(s3: Any, tmp_path: Path) -> None:
    run = _copy("dry-run", tmp_path)
    finish_run_reports(run, _settings(tmp_path), RunRecord(run))
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert (run / "report.md").is_file()


def test_a_failing_copy_is_recorded_and_the_reports_stay(s3: Any, tmp_path: Path) -> None:
    run = _copy("failed", tmp_path)
    settings = Settings(home=tmp_path / "home", runs_dir=tmp_path, aws=AwsSettings(evidence_bucket="no-such-bucket"))
    finish_run_reports(run, settings, RunRecord(run))
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    failed = [e for e in events if e["type"] == "report.failed"]
    assert failed
    assert "NoSuchBucket" in failed[0]["detail"]["error"]
    assert (run / "report.md").is_file()


def test_evidence_in_s3_is_re_hashed_by_fireline_report_and_left_alone_at_run_end(s3: Any, tmp_path: Path) -> None:
    import hashlib

    from flows.report import build

    run = _copy("undone", tmp_path)
    body = b"preserved object bytes"
    put = s3.put_object(Bucket=BUCKET, Key="fireline/x/obj", Body=body)
    manifest = json.loads((run / "evidence" / "manifest.json").read_text())
    good = {**manifest["items"][0], "id": "s3-good", "name": "obj", "size": len(body),
            "location": f"s3://{BUCKET}/fireline/x/obj?versionId={put['VersionId']}",
            "sha256": hashlib.sha256(body).hexdigest()}  # fmt: skip
    bad = {**good, "id": "s3-bad", "sha256": "0" * 64}
    manifest["items"] += [good, bad]
    (run / "evidence" / "manifest.json").write_text(json.dumps(manifest))
    checked = {e["id"]: e["verify"]["status"] for e in build(run, settings=_settings(tmp_path))["evidence"]}
    assert (checked["s3-good"], checked["s3-bad"]) == ("ok", "mismatch")
    unchecked = {e["id"]: e["verify"]["status"] for e in build(run)["evidence"]}
    assert unchecked["s3-good"] == "not checked"
