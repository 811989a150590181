"""Re-hash every item of a run's evidence manifest and name any that no longer matches.

Local items are files under the run directory; ``s3://bucket/key?versionId=...`` items are streamed
from S3 by the AWS integration (``evidence.s3`` in :mod:`flows.plugins`, loaded only when the manifest
has such items). An item passes when its bytes still hash to the recorded SHA-256 and size.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from flows.config import Settings
from flows.errors import RecordError
from flows.record.store import EvidenceItem, sha256_file

Status = Literal["ok", "mismatch", "missing", "error"]


@dataclass
class ItemCheck:
    """The verdict on one evidence item."""

    id: str
    name: str
    location: str
    status: Status
    expected_sha256: str
    actual_sha256: str | None = None
    expected_size: int = 0
    actual_size: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        if self.status == "ok":  # the detail of a good S3 item is its Object Lock retention
            return f"ok        {self.name} ({self.location})" + (f": {self.detail}" if self.detail else "")
        what = self.detail or f"sha256 {self.actual_sha256} != recorded {self.expected_sha256}"
        return f"{self.status:<9} {self.name} ({self.location}): {what}"


def load_manifest(run_dir: Path) -> list[EvidenceItem]:
    path = run_dir / "evidence" / "manifest.json"
    if not path.exists():
        if (run_dir / "run.json").is_file():
            return []  # a run that collected no evidence (a dry-run never does): nothing to verify
        raise RecordError(f"{run_dir}: no evidence/manifest.json (not a run directory, or no evidence)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [EvidenceItem.model_validate(item) for item in doc.get("items", [])]
    except (ValueError, TypeError) as e:
        raise RecordError(f"{path}: unreadable manifest: {e}") from e


def _check_local(run_dir: Path, item: EvidenceItem) -> ItemCheck:
    check = ItemCheck(item.id, item.name, item.location, "ok", item.sha256, expected_size=item.size)
    path = (run_dir / item.location).resolve()
    if not path.is_relative_to(run_dir.resolve()):
        check.status, check.detail = "error", "location points outside the run directory"
    elif not path.is_file():
        check.status, check.detail = "missing", "file not found"
    else:
        check.actual_sha256, check.actual_size = sha256_file(path), path.stat().st_size
    return check


def verify_run(run_dir: Path, settings: Settings) -> list[ItemCheck]:
    """Check every item of the run's manifest; the list is in manifest order."""
    checks: list[ItemCheck] = []
    for item in load_manifest(run_dir):
        if item.location.startswith("s3://"):
            from flows.plugins import load

            check = ItemCheck(item.id, item.name, item.location, "ok", item.sha256, expected_size=item.size)
            load("evidence.s3")(settings, item.location, check)
        else:
            check = _check_local(run_dir, item)
        if check.status == "ok" and check.actual_sha256 is not None:
            if check.actual_sha256 != item.sha256:
                check.status = "mismatch"
            elif check.actual_size is not None and check.actual_size != item.size:
                check.status, check.detail = "mismatch", f"size {check.actual_size} != recorded {item.size}"
        checks.append(check)
    return checks
