"""Finding what a command names inside a run: its steps, with a did-you-mean for a misspelt one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flows.errors import BadInputError


def check_step_name(data: Mapping[str, Any], step: str, run_name: str) -> None:
    """Raise when ``step`` is not a step of the run whose run.json is ``data``.

    Raises:
        BadInputError: naming the closest step id, or (when none is close) the run's steps.
    """
    from flows.language.diagnose import suggest

    steps = list(data.get("steps") or {})
    if not steps or step in steps:
        return
    hint = suggest(step, steps) or ("its steps: " + ", ".join(steps[:20]) + (", ..." if len(steps) > 20 else ""))
    raise BadInputError(f"run {run_name} has no step {step!r} ({hint})", where=step)


def waiting_note(data: Mapping[str, Any]) -> str:
    """``; waiting for approval: a, b`` (or that nothing waits), for a refusal to name what does."""
    waiting = list(data.get("waiting") or [])
    return f"; waiting for approval: {', '.join(waiting)}" if waiting else "; no step of it is waiting for approval"


def text_table(header: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    """Aligned text lines with a header; nothing is cut or wrapped, whatever the terminal's width."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [list(header), *rows]]


def runs_table(rows: list[dict[str, Any]]) -> list[str]:
    """``runs list`` as aligned text lines with a header; run ids are never cut."""
    keys = ("run_id", "playbook", "mode", "status", "outcome", "started_at")
    cells = [[("" if r.get(k) is None else str(r.get(k))) for k in keys] for r in rows]
    return text_table(("run", "playbook", "mode", "status", "outcome", "started"), cells)


def show_lines(data: Mapping[str, Any]) -> list[str]:
    """``runs show`` as text: the summary line (status said once), steps, what waits, how to resume."""
    from flows.errors import one_line

    status, outcome = data.get("status"), data.get("outcome")
    state = str(status) if outcome in (None, "", status) else f"{status}, {outcome}"
    lines = [f"run {data['run_id']}: {(data.get('playbook') or {}).get('ref')} [{data.get('mode')}] {state}"]
    for sid, step in (data.get("steps") or {}).items():
        err = f": {one_line(str(step['error']))}" if step.get("error") else ""
        lines.append(f"  {sid}: {step.get('status')}{err}")
    if data.get("waiting"):
        lines.append(f"  waiting for approval: {', '.join(data['waiting'])}")
    if status == "crashed":
        lines.append(f"the process driving the run died; continue it with: fireline resume {data['run_id']}")
    return lines
