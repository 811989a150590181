"""The report on the flow run in Prefect: a markdown artifact (the post-mortem) and a table artifact
(the timeline of steps), published by the ``respond`` flow when the run ends.

Prefect artifact keys allow lowercase letters, digits and dashes only, hence :func:`artifact_key`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_KEY = re.compile(r"[^a-z0-9-]+")


def artifact_key(kind: str, run_id: str) -> str:
    return _KEY.sub("-", f"fireline-{kind}-{run_id}".lower()).strip("-")[:100]


def timeline_rows(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per step: the table artifact's content (UTC times, seconds, items, result)."""
    return [
        {
            "step": s["id"],
            "action": s["action"],
            "status": s["status"],
            "started_utc": s["started_at"] or "",
            "finished_utc": s["finished_at"] or "",
            "seconds": s["seconds"],
            "items": len(s["items"]),
            "attempts": s["attempts"],
            "result": s["summary"][:200],
        }
        for s in ctx["actions"]
    ]


def publish_artifacts(run_id: str, run_dir: Path) -> list[str]:
    """Create both artifacts on the current flow run; return their keys."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from flows.report import build, render

    ctx = build(run_dir)
    report = run_dir / "report.md"
    markdown = report.read_text(encoding="utf-8") if report.is_file() else render(ctx, "md")
    keys = [artifact_key("report", run_id), artifact_key("timeline", run_id)]
    create_markdown_artifact(markdown=markdown, key=keys[0], description=f"fireline post-mortem of run {run_id}")
    create_table_artifact(table=timeline_rows(ctx), key=keys[1], description=f"fireline steps of run {run_id} (UTC)")
    return keys
