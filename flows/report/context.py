"""The one report context that report.md, report.html and report.json are rendered from.

:func:`build_context` reads only the run record (:class:`~flows.report.load.LoadedRun`) and returns
plain JSON-able data; ``report.json`` is that data. Values from the run (alert labels, outputs,
reasons, names given with ``--as``) stay data: the templates escape them for their format.
"""

from __future__ import annotations

from typing import Any

from flows.report.facts import human_seconds, item_label, scrub, seconds_between
from flows.report.findings import compute_findings, prompts
from flows.report.impact import impact, summary_facts
from flows.report.load import LoadedRun
from flows.report.metrics import metric_rows, milestones
from flows.report.steps import attach_undo, collect_steps
from flows.report.timeline import marks_from

SCHEMA = "fireline.report/v1"
_APPROVALS = ("approval.requested", "approval.answered", "approval.granted", "approval.rejected",
              "approval.escalated", "approval.refused")  # fmt: skip
_PEOPLE = ("approval.escalated", "slack.channel_opened")  # and every page.* event
_ERRORS = ("step.failed", "handler.failed", "undo.failed", "report.failed", "run.crashed")
_TIMELINE_ITEM = ("step.failed", "step.retrying", "guard.refused")
_NOTE_KEYS = ("message", "error", "reason", "summary", "outcome", "refused_because")


def _note(event: dict[str, Any]) -> str:
    detail = event.get("detail") or {}
    for key in _NOTE_KEYS:
        if detail.get(key):
            return str(detail[key])
    return ""


def _approvals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for e in events:
        if e["type"] not in _APPROVALS or e["type"] == "approval.granted":
            continue
        d = e.get("detail") or {}
        who = d.get("by")
        row = {
            "step": e.get("step") or "",
            "event": e["type"].removeprefix("approval."),
            "who": ", ".join(map(str, who)) if isinstance(who, list) else str(who or ""),
            "how": str(d.get("how") or ""),
            "at": str(d.get("at") or e["at"]),
            "why": str(d.get("reason") or ""),
            "decision": str(d.get("decision") or ""),
            "refused_because": str(d.get("refused_because") or ""),
        }
        if e["type"] == "approval.requested":
            row["who"] = ", ".join(map(str, d.get("approvers") or []))
        key = (row["step"], row["event"], row["who"], row["at"], row["refused_because"])
        if key not in seen:  # a resumed run reads the same refused answer again
            seen.add(key)
            rows.append(row)
    return rows


def _guards(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in events:
        if e["type"] != "guard.refused":
            continue
        d = e.get("detail") or {}
        key = (str(e.get("step")), str(d.get("guard")), str(d.get("message")))
        would = bool(d.get("would_refuse"))
        note = "would refuse in live mode" if would and "would be refused" not in key[2] else ""
        rows.setdefault(key, {"step": key[0], "guard": key[1], "target": d.get("target"), "message": key[2],
                              "would_refuse": would, "note": note, "at": e["at"]})  # fmt: skip
    return list(rows.values())


def _errors(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for e in events:
        if e["type"] in _ERRORS:
            d = e.get("detail") or {}
            rows.append({"at": e["at"], "type": e["type"], "step": e.get("step") or "",
                         "item": item_label(e.get("item")), "error": str(d.get("error") or d.get("note") or ""),
                         "error_type": str(d.get("error_type") or "")})  # fmt: skip
    return rows


def _timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The UTC timeline: run- and step-level events; per-item events only when something went wrong."""
    rows = []
    for e in events:
        if e.get("item") is not None and e["type"] not in _TIMELINE_ITEM:
            continue
        rows.append({"at": e["at"], "type": e["type"], "step": e.get("step") or "",
                     "item": item_label(e.get("item")), "note": _note(e)})  # fmt: skip
    return rows


def _evidence(items: list[dict[str, Any]], checks: dict[str, dict[str, str]] | None) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        check = (checks or {}).get(str(item.get("id"))) or {"status": "not checked", "detail": ""}
        rows.append({**{k: item.get(k) for k in ("id", "name", "location", "size", "sha256", "collected_at",
                                                 "collected_by", "step", "retention")},
                     "verify": check})  # fmt: skip
    return rows


def _who(recipient: Any) -> str:
    if isinstance(recipient, dict):
        name, ident = recipient.get("display"), recipient.get("id")
        return f"{name} ({recipient.get('kind', '')} {ident})" if name and name != ident else str(ident or "?")
    return str(recipient or "?")


def _escalation_line(event: dict[str, Any]) -> str:
    """One readable line for a paging event (the detail, compactly, for kinds it does not know)."""
    d, kind = event.get("detail") or {}, event["type"]
    if kind == "page.sent":
        would = "would page" if d.get("would_send") else "paged"
        return f"{would} {_who(d.get('recipient'))} via {d.get('channel')}, level {d.get('level')}"
    if kind == "page.acked":
        after = human_seconds(d.get("seconds_to_ack")) if d.get("seconds_to_ack") is not None else "?"
        return f"acknowledged by {d.get('by')} via {d.get('via')} at level {d.get('level')}, {after} after the page"
    if kind == "page.escalated":
        return f"escalated from level {d.get('from')} to {d.get('to')}: {d.get('because')}"
    if kind == "page.ack_slo_breached":
        waited, slo = human_seconds(d.get("seconds_unacknowledged")), human_seconds(d.get("ack_slo"))
        return f"ack SLO breached: unacknowledged for {waited} (SLO {slo})"
    if kind == "page.delivery_failed":
        return f"delivery to {_who(d.get('recipient'))} via {d.get('channel')} failed: {d.get('error')}"
    shown = {k: v for k, v in d.items() if k != "mode"}
    return ", ".join(f"{k} {v}" for k, v in sorted(shown.items()))


def _slack(state: dict[str, Any]) -> dict[str, Any] | None:
    """The run's Slack side (``slack.json``): the incident channel and the thread of the root message."""
    channel = state.get("incident_channel") or {}
    root = state.get("root") or {}
    if not channel and not root:
        return None
    return {"channel": channel.get("name") or channel.get("id") or root.get("channel"),
            "channel_id": channel.get("id") or root.get("channel"), "thread_ts": root.get("ts")}  # fmt: skip


def _verify_reports(loaded: LoadedRun) -> dict[str, dict[str, Any]]:
    """The ``verify-report.json`` each ``model.verify`` step kept in the run directory, by step id."""
    import json

    found: dict[str, dict[str, Any]] = {}
    for item in loaded.evidence:
        location = str(item.get("location") or "")
        if item.get("name") != "verify-report.json" or "://" in location or not item.get("step"):
            continue
        path = (loaded.run_dir / location).resolve()
        if not path.is_relative_to(loaded.run_dir.resolve()) or not path.is_file() or path.stat().st_size > 1 << 20:
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # the Evidence section says what is wrong with the item
            continue
        if isinstance(doc, dict) and isinstance(doc.get("checks"), list):
            found[str(item["step"])] = scrub(doc)
    return found


def _run_header(loaded: LoadedRun, steps: list[dict[str, Any]]) -> dict[str, Any]:
    run = loaded.run
    undone = attach_undo(steps, run)
    outcome = str(run.get("outcome") or run.get("status") or "unknown")
    label = outcome
    if undone is not None:
        label = "undone" if undone["state"] == "fully" else "partly undone"
    resumed = [str(t) for t in run.get("resumed") or []]
    return {
        "id": str(run.get("run_id") or loaded.run_dir.name),
        "mode": str(run.get("mode") or "live"),
        "status": str(run.get("status") or ""),
        "outcome": outcome,
        "label": label,
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "duration": human_seconds(seconds_between(run.get("started_at"), run.get("finished_at"))),
        "resumed": resumed,
        "undone": undone,
        "refused_calls": [str(c) for c in run.get("refused_calls") or []],
        "chain_problems": loaded.chain_problems,
        "incident": scrub(run.get("incident") or {}),
    }


def _would_have(steps: list[dict[str, Any]], guards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For a dry-run or drill: each step's plan, what it would change, and what a guard would refuse."""
    rows = []
    for step in steps:
        outputs = step["output"] if isinstance(step["output"], list) else [step["output"]]
        plans: list[dict[str, Any]] = [
            o["plan"] for o in outputs if isinstance(o, dict) and isinstance(o.get("plan"), dict)
        ]
        changes = [c for p in plans for c in p.get("changes") or []]
        rows.append({
            "step": step["id"], "action": step["action"], "status": step["status"],
            "summary": "; ".join(str(p.get("summary")) for p in plans if p.get("summary")) or step["summary"],
            "changes": changes[:50], "targets": step["ids"],
            "refusals": [g["message"] for g in guards if g["step"] == step["id"]],
        })  # fmt: skip
    return rows


def build_context(
    loaded: LoadedRun, *, now: str, evidence_checks: dict[str, dict[str, str]] | None = None
) -> dict[str, Any]:
    """The report context of one run. ``now`` is the report's time (ISO-8601 UTC), passed in so
    that a report is reproducible; ``evidence_checks`` maps evidence ids to ``{"status", "detail"}``.
    """
    run, events = loaded.run, loaded.events
    steps = collect_steps(run, events)
    header = _run_header(loaded, steps)
    playbook = run.get("playbook") or {}
    alert = scrub(loaded.alert)
    guards = _guards(events)
    ctx: dict[str, Any] = {
        "schema": SCHEMA,
        "generated_at": now,
        "run": header,
        "playbook": {k: playbook.get(k) for k in ("name", "version", "ref", "sha256", "path")},
        "trigger": {**scrub(run.get("trigger") or {}), "alert": alert.get("labels", {}).get("alertname")},
        "severity": (run.get("incident") or {}).get("severity"),
        "people": scrub(run.get("people")) if isinstance(run.get("people"), dict) else None,
        "slack": _slack(loaded.slack),
        "inputs": scrub(run.get("inputs") or {}),
        "detection": {k: alert.get(k) for k in ("source", "status", "fingerprint", "starts_at", "ends_at",
                                                "labels", "annotations")},
        "actions": steps,
        "guards": guards,
        "approvals": _approvals(events),
        "errors": _errors(events),
        "evidence": _evidence(loaded.evidence, evidence_checks),
        "escalation": [{"at": e["at"], "type": e["type"], "step": e.get("step") or "",
                        "text": _escalation_line({**e, "detail": scrub(e.get("detail") or {})})} for e in events
                       if e["type"].startswith("page.") or e["type"] in _PEOPLE],
        "timeline": _timeline(events),
        "_events": events,
    }  # fmt: skip
    ctx["impact"] = impact(steps, _verify_reports(loaded))
    ctx["milestones"] = milestones(run, alert, events, steps)
    ctx["metrics"] = metric_rows(ctx["milestones"])
    ctx["would_have"] = _would_have(steps, guards) if header["mode"] != "live" else []
    ctx["summary"] = summary_facts(ctx)
    ctx["findings"] = compute_findings(ctx)
    ctx["prompts"] = prompts(ctx)
    ctx["marks"] = marks_from(events)
    del ctx["_events"]
    return ctx
