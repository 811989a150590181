"""What a drilled run did, read back from its record, and each expectation checked against it.

Observed facts come from the run's own files (``run.json`` steps, the hash-chained
``events.jsonl``), the same ones the post-mortem reads, so a drill scores what the record says
happened. Times are seconds of (virtual) time from the run's start.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flows.drills.models import Expectations
from flows.language.durations import parse_duration
from flows.language.spec import Playbook

FAILED = ("failed", "timed_out", "rejected")


@dataclass
class Observed:
    """The step path and milestones of one run."""

    outcome: str
    steps: dict[str, str]  # step -> run | skipped | failed
    escalation: dict[str, int]  # paging step -> highest level paged
    approvals: dict[str, str]  # approval step -> granted | rejected | timed_out
    milestones: dict[str, float | None]  # seconds from the run's start
    paged: list[str] = field(default_factory=list)  # people paged (for unreachable gaps)
    would_refuse: dict[str, list[str]] = field(default_factory=dict)  # step -> guard findings
    faults: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # step -> its error, as recorded

    def path(self) -> dict[str, Any]:
        """The comparable step path (what the fidelity tests hold a drill and a live run to)."""
        return {"steps": self.steps, "escalation": self.escalation, "approvals": self.approvals}


@dataclass
class Check:
    """One expectation: what was expected, what was observed, whether it held."""

    kind: str  # outcome | step | escalation | approval | milestone
    name: str
    expected: str
    observed: str
    ok: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    parse = datetime.fromisoformat
    return round((parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds(), 3)


def _as_live(playbook: Playbook, steps: dict[str, str], refused: set[str], outcome: str) -> str:
    """Where a drill's plan would be refused by a guard, the path a live run takes: the step fails,
    the steps that need it are skipped (unless ``needs_outcome: any``), and so the outcome follows."""
    from flows.language.dag import dependencies, topological_order

    book = {s.id: s for s in playbook.steps}
    deps = dependencies(playbook.steps)
    blocked: set[str] = set()
    for sid in topological_order(deps):
        if sid in refused and steps.get(sid) == "run":
            steps[sid] = "failed"
            if not book[sid].continue_on_error:
                blocked.add(sid)
        elif book[sid].needs_outcome != "any" and any(d in blocked for d in deps.get(sid, [])):
            steps[sid] = "skipped"
            blocked.add(sid)
    if blocked and outcome in ("succeeded", "succeeded_with_errors"):
        return "failed"
    if refused and outcome == "succeeded":
        return "succeeded_with_errors"
    return outcome


def observe(run_dir: Path, kinds: dict[str, str], playbook: Playbook | None = None) -> Observed:
    """Read the run back; ``kinds`` maps step id -> action kind (containment, evidence, ...).

    With ``playbook``, steps a guard would refuse in a live run are scored as a live run would
    take them (see :func:`_as_live`).
    """
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    steps: dict[str, str] = {}
    for sid, doc in run["steps"].items():
        status = doc.get("status")
        steps[sid] = "run" if status == "succeeded" else "failed" if status in FAILED else "skipped"
    escalation: dict[str, int] = {}
    approvals: dict[str, str] = {}
    paged: list[str] = []
    refuse: dict[str, list[str]] = {}
    for e in events:
        d, step = e.get("detail") or {}, e.get("step")
        if e["type"] in ("page.sent", "page.escalated") and step:
            level = d.get("to") if e["type"] == "page.escalated" else d.get("level")
            if isinstance(level, int):
                escalation[step] = max(escalation.get(step, 0), level)
            who = (d.get("recipient") or {}).get("id")
            if who and who not in paged:
                paged.append(who)
        elif e["type"] == "approval.granted" and step:
            approvals[step] = "granted"
        elif e["type"] == "approval.rejected" and step:
            approvals[step] = "timed_out" if d.get("how") == "timeout" else "rejected"
        elif e["type"] == "guard.refused" and d.get("would_refuse") and step:
            refuse.setdefault(step, []).append(str(d.get("reason") or d.get("message") or d))
    outcome = str(run.get("outcome"))
    if playbook is not None and refuse:
        outcome = _as_live(playbook, steps, set(refuse), outcome)
    start = run.get("started_at")
    acked = next((e["at"] for e in events if e["type"] == "page.acked"), None)
    contained = [doc.get("finished_at") for sid, doc in run["steps"].items()
                 if kinds.get(sid) == "containment" and steps.get(sid) == "run"]  # fmt: skip
    acting = [s for s in steps if kinds.get(s) == "containment" and not _skipped_by_when(run, s)]
    all_contained = bool(acting) and all(steps.get(s) == "run" for s in acting)
    milestones = {
        "acknowledged": _seconds(start, acked),
        "contained": _seconds(start, max(c for c in contained if c)) if all_contained and contained else None,
        "finished": _seconds(start, run.get("finished_at")),
    }
    faults = [e.get("detail") | {"step": e.get("step")} for e in events if e["type"] == "drill.fault"]
    errors = {sid: str(doc["error"]) for sid, doc in run["steps"].items() if doc.get("error")}
    return Observed(outcome, steps, escalation, approvals, milestones, paged, refuse, faults, errors)


def format_duration(seconds: float) -> str:
    """``7m 3.6s``, ``2h 0m 5s``: simulated times as people read them."""
    whole, frac = divmod(round(seconds, 1), 1)
    h, rest = divmod(int(whole), 3600)
    m, s = divmod(rest, 60)
    sec = f"{s + frac:g}s"
    return f"{h}h {m}m {sec}" if h else f"{m}m {sec}" if m else sec


def _skipped_by_when(run: dict[str, Any], step: str) -> bool:
    """A step its own ``when`` skipped is not part of this incident's containment."""
    doc = run["steps"].get(step) or {}
    return doc.get("status") == "skipped" and not doc.get("error")


def _show(seconds: float | None) -> str:
    return "never" if seconds is None else format_duration(seconds)


def score(expect: Expectations, seen: Observed) -> list[Check]:
    """Every expectation of the scenario against what was observed, in the scenario's order."""
    checks: list[Check] = []
    if expect.outcome is not None:
        checks.append(Check("outcome", "of the run", expect.outcome, seen.outcome, expect.outcome == seen.outcome))
    for kind, names in (("run", expect.steps.run), ("skipped", expect.steps.skipped), ("failed", expect.steps.failed)):
        for name in names:
            got = seen.steps.get(name, "not reached")
            checks.append(Check("step", name, kind, got, got == kind))
    for name, level in expect.escalation.items():
        got_level = seen.escalation.get(name)
        got = "not paged" if got_level is None else f"level {got_level}"
        checks.append(Check("escalation", name, f"level {level}", got, got_level == level))
    for name, verdict in expect.approvals.items():
        got = seen.approvals.get(name, "not requested")
        checks.append(Check("approval", name, verdict, got, got == verdict))
    for name, limit in expect.milestones.items():
        target = parse_duration(limit)
        took = seen.milestones.get(name)
        checks.append(Check("milestone", name, f"<= {format_duration(target)}", _show(took),
                            took is not None and took <= target))  # fmt: skip
    return checks
