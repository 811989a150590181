"""Copy a live run's record and reports next to its evidence in the evidence bucket.

Keys: ``fireline/<incident id>/record/<run id>/<file>`` (the prefix evidence preservation uses is
``fireline/<incident id>/``). On a bucket with Object Lock, the bucket's default retention applies
to each new object version (Amazon S3 User Guide, "Locking objects with Object Lock": a default
retention period is applied to new object versions placed in the bucket); the SDK's checksum on
``PutObject`` satisfies Object Lock's integrity-header requirement.
"""

from __future__ import annotations

import json
from pathlib import Path

from flows.config import Settings
from integrations.aws.session import aws_errors, botocore_config, settings_session

RECORD_FILES = ("run.json", "events.jsonl", "evidence/manifest.json")


def publish(run_dir: Path, paths: list[Path], settings: Settings) -> list[str]:
    """Upload the record files and ``paths``; return their ``s3://`` locations (with version ids)."""
    bucket = settings.aws.evidence_bucket
    if not bucket:
        return []
    data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    incident = str((data.get("incident") or {}).get("id") or run_dir.name)
    prefix = f"fireline/{incident}/record/{run_dir.name}/"
    s3 = settings_session(settings).client(
        "s3", region_name=settings.aws.region, endpoint_url=settings.aws.endpoint_url, config=botocore_config(settings)
    )
    files = [run_dir / name for name in RECORD_FILES if (run_dir / name).is_file()] + list(paths)
    locations = []
    for path in files:
        key = prefix + path.relative_to(run_dir).as_posix()
        with aws_errors(f"copy {path.name} to s3://{bucket}/{key}"):
            answer = s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ChecksumAlgorithm="SHA256")
        version = answer.get("VersionId")
        locations.append(f"s3://{bucket}/{key}" + (f"?versionId={version}" if version else ""))
    return locations
