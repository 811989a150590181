"""Record heads anchored in an Object Lock evidence bucket (moto server), and checked by verify."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from flows.engine import run_playbook
from flows.record.seal import sealer_for
from flows.record.verify import verify_record
from tests.fixtures.moto import AwsEnv, aws, moto, settings_for
from tests.flows.engine.engine_helpers import make_registry, write_playbook

__all__ = ["aws", "moto"]

pytestmark = pytest.mark.moto_server
BUCKET = "fireline-evidence-locked"


def test_heads_are_anchored_under_compliance_retention_and_checked(aws: AwsEnv, tmp_path: Path) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    settings = settings_for(aws.endpoint, tmp_path, evidence_bucket=BUCKET)
    steps = [
        {"id": "keep", "action": "test.evidence", "with": {"name": "notes.txt", "text": "x"}},
        {"id": "say", "action": "log", "with": {"message": "kept"}},
    ]
    summary = run_playbook(write_playbook(tmp_path, steps), settings=settings, registry=make_registry())
    run_dir = summary.run_dir
    # At the target: one object per head as the run progressed, each under COMPLIANCE retention.
    objects = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"fireline-anchors/{run_dir.name}/")["Contents"]
    assert len(objects) >= 3
    last = max(objects, key=lambda o: o["Key"])
    assert s3.head_object(Bucket=BUCKET, Key=last["Key"])["ObjectLockMode"] == "COMPLIANCE"
    assert verify_record(run_dir, settings) == []

    # A forger who holds the key cuts the log and re-seals run.json; the anchors still say otherwise.
    lines = (run_dir / "events.jsonl").read_bytes().splitlines()[:-2]
    (run_dir / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    doc = json.loads((run_dir / "run.json").read_text())
    doc["events"] = {"count": len(lines), "head_sha256": hashlib.sha256(lines[-1]).hexdigest()}
    (run_dir / "run.json").write_text(json.dumps(sealer_for(settings).seal(run_dir.name, doc)))
    problems = verify_record(run_dir, settings)
    assert problems
    assert all("anchor" in p for p in problems)
