"""The first post-mortem report, ``report.md``, rendered from run.json, the events and the manifest.

Values from the run (alert labels, outputs, reasons) are data handed to the template, never
templates themselves; table cells are flattened to one line and pipes escaped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flows.record.store import read_events, write_atomic

_APPROVAL_TYPES = (
    "approval.requested",
    "approval.answered",
    "approval.granted",
    "approval.rejected",
    "approval.escalated",
    "approval.refused",
)
_MAX_CELL = 200


def md_cell(value: Any) -> str:
    """One line of text that is safe inside a markdown table cell."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def _summary(step: dict[str, Any]) -> str:
    if step.get("error"):
        return str(step["error"])
    if step.get("reason"):
        return f"skipped ({step['reason']})"
    output = step.get("output")
    if isinstance(output, dict):
        return str(output.get("summary") or output.get("plan", {}).get("summary") or "")
    if isinstance(output, list):
        return f"{len(output)} item(s)"
    return ""


def _note(event: dict[str, Any]) -> str:
    detail = event.get("detail") or {}
    for key in ("message", "error", "reason", "summary", "outcome", "refused_because"):
        if detail.get(key):
            return str(detail[key])
    return ""


def build_context(run_dir: Path) -> dict[str, Any]:
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    events = list(read_events(run_dir / "events.jsonl")) if (run_dir / "events.jsonl").exists() else []
    manifest_path = run_dir / "evidence" / "manifest.json"
    evidence = json.loads(manifest_path.read_text(encoding="utf-8")).get("items", []) if manifest_path.exists() else []
    steps = [(sid, {**s, "summary": _summary(s)}) for sid, s in (run.get("steps") or {}).items()]
    approvals = []
    for e in events:
        if e["type"] in _APPROVAL_TYPES:
            d = e.get("detail") or {}
            approvals.append(
                {
                    "step": e["step"],
                    "type": e["type"],
                    "who": d.get("by"),
                    "how": d.get("how", ""),
                    "at": d.get("at") or e["at"],
                    "why": d.get("reason") or d.get("refused_because") or "",
                }
            )
    guards = [e for e in events if e["type"] == "guard.refused"]
    timeline = [{**e, "note": _note(e)} for e in events]
    return {
        "run": run,
        "steps": steps,
        "approvals": approvals,
        "guards": guards,
        "evidence": evidence,
        "timeline": timeline,
    }


def render_report(run_dir: Path) -> str:
    """Render ``report.md`` text for a run directory."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(Path(__file__).resolve().parent.parent / "templates")),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.filters["md_cell"] = md_cell
    return env.get_template("report.md.j2").render(**build_context(run_dir))


def write_report(run_dir: Path) -> Path:
    """(Re-)render ``report.md`` into the run directory."""
    path = run_dir / "report.md"
    write_atomic(path, render_report(run_dir).encode("utf-8"))
    return path
