"""Publishing a live run's reports where people look, beyond the run directory.

The evidence bucket copy goes through publisher modules named by string (:data:`PUBLISHER_MODULES`,
like the built-in actions), each with ``publish(run_dir, paths, settings) -> list[str]``
returning the locations written; ``flows`` never imports ``integrations``. Dry-runs and drills
publish nothing: they must have no side effect outside the run directory.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from flows.config import Settings
from flows.record.store import RunRecord

PUBLISHER_MODULES: tuple[str, ...] = ("integrations.aws.report_publish",)


class Publisher(Protocol):
    """What a publisher module provides."""

    def publish(self, run_dir: Path, paths: list[Path], settings: Settings) -> list[str]: ...


def _mode(run_dir: Path) -> str:
    import json

    try:
        return str(json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("mode") or "live")
    except (OSError, ValueError, AttributeError):
        return "live"


def finish_run_reports(run_dir: Path, settings: Settings, record: RunRecord) -> list[Path]:
    """What a run does when it ends: write its reports, announce them, copy them to the evidence bucket.

    ``report.written`` carries the summary and the paths; the Slack timeline posts it into the
    run's thread, so the summary reaches the people there (when the timeline is attached).
    """
    from flows.report.render import write_reports_with_context

    paths, ctx = write_reports_with_context(run_dir)  # S3 evidence is left to `fireline report` to re-read
    summary = "; ".join(ctx["summary"]) or ctx["run"]["label"]
    record.emit(
        "report.written",
        detail={
            # "message" is what a timeline line (the Slack thread) shows first: the path and the summary.
            "message": f"post-mortem {paths[0] if paths else run_dir}: {summary}",
            "summary": summary,
            "path": str(paths[0] if paths else run_dir),
            "reports": [p.name for p in paths],
        },
    )
    record.update_run()  # run.json's event head must include report.written
    publish_reports(run_dir, paths, settings, record)
    return paths


def publish_reports(run_dir: Path, paths: list[Path], settings: Settings, record: RunRecord) -> list[str]:
    """Copy the reports (and the run record they come from) to the evidence bucket when one is set.

    Records ``report.published`` with the locations, or ``report.failed`` with the reason; a
    failure never changes the run's outcome.
    """
    if not settings.aws.evidence_bucket or not paths or _mode(run_dir) != "live":
        return []
    locations: list[str] = []
    for name in PUBLISHER_MODULES:
        try:
            module: Any = importlib.import_module(name)
            locations += module.publish(run_dir, paths, settings)
        except Exception as e:  # the report on disk stands; the copy failure is recorded
            record.emit("report.failed", detail={"publisher": name, "error": f"{type(e).__name__}: {e}"})
    if locations:
        record.emit("report.published", detail={"locations": locations})
        record.update_run(published=locations)
    return locations
