"""Per-step facts from the event log and run.json: times, items, attempts, resource ids, undo.

Times come from the events, never from run.json alone: a resumed run's run.json could carry the
resume's times, while the log keeps the first attempt's ``step.started`` and every later line.
"""

from __future__ import annotations

import functools
from typing import Any

from flows.report.facts import item_label, resource_ids, scrub, seconds_between

_ENDS = ("step.succeeded", "step.failed", "step.skipped")
UNDONE = ("undone", "already_undone")


def _summary(output: Any, error: Any, reason: Any) -> str:
    if error:
        return str(error)
    if reason:
        return f"skipped ({reason})"
    if isinstance(output, dict):
        plan = output.get("plan")
        planned = plan.get("summary") if isinstance(plan, dict) else None
        return str(output.get("summary") or planned or "")
    return ""


@functools.cache
def _catalogue_entry(name: str) -> dict[str, Any]:
    """Kind and undoability of an action, for records written before run.json carried them."""
    try:
        from flows.actions.registry import default_registry

        action = default_registry().get(name)
        return {"action": name, "kind": action.kind.value, "undoable": action.undoable()}
    except Exception:  # an unknown or broken action: the report says less, it does not fail
        return {"action": name}


def _new_step(sid: str, run: dict[str, Any], action: str = "") -> dict[str, Any]:
    meta = (run.get("actions") or {}).get(sid) or (_catalogue_entry(action) if action else {})
    record = (run.get("steps") or {}).get(sid) or {}
    return {
        "id": sid,
        "action": meta.get("action", ""),
        "kind": meta.get("kind", ""),
        "undoable": bool(meta.get("undoable", False)),
        "status": record.get("status", "not run"),
        "started_at": None,
        "finished_at": record.get("finished_at"),
        "resumed_at": None,
        "reused": [],
        "attempts": 1,
        "retries": [],
        "items": {},
        "error": record.get("error"),
        "error_type": record.get("error_type"),
        "reason": record.get("reason"),
        "output": record.get("output"),
        "undo": [],
        "continue_on_error": False,
    }


def _item(step: dict[str, Any], item: Any) -> dict[str, Any]:
    label = item_label(item)
    found: dict[str, Any] | None = step["items"].get(label)
    if found is None:
        found = {"item": label, "status": "running", "started_at": None, "finished_at": None, "attempts": 1,
                 "summary": "", "ids": [], "error": None}  # fmt: skip
        step["items"][label] = found
    return found


def _on_item(step: dict[str, Any], event: dict[str, Any]) -> None:
    kind, detail = event["type"], event.get("detail") or {}
    entry = _item(step, event["item"])
    if kind == "step.started":
        entry["started_at"] = entry["started_at"] or event["at"]
    elif kind in ("step.succeeded", "step.failed"):
        entry["status"] = "succeeded" if kind == "step.succeeded" else detail.get("status", "failed")
        entry["finished_at"] = event["at"]
        entry["attempts"] = detail.get("attempts", entry["attempts"])
        output = detail.get("output")
        entry["summary"] = _summary(output, detail.get("error"), None)
        entry["error"] = detail.get("error")
        entry["ids"] = resource_ids(output)


def collect_steps(run: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per step that the log mentions (plus steps only in run.json), in order of first event."""
    steps: dict[str, dict[str, Any]] = {}
    resumed = False
    for event in events:
        kind = event["type"]
        if kind == "run.resumed":
            resumed = True
        sid = event.get("step")
        if not sid or not kind.startswith(("step.", "undo.")):
            continue
        detail = event.get("detail") or {}
        step = steps.get(sid) or steps.setdefault(sid, _new_step(sid, run, str(detail.get("action") or "")))
        if kind == "step.started" and event.get("item") is None:
            if step["started_at"] is None:
                step["started_at"] = event["at"]
            elif resumed and step["resumed_at"] is None:
                step["resumed_at"] = event["at"]
            step["action"] = step["action"] or detail.get("action", "")
            step["reused"] = [*step["reused"], *detail.get("reused", [])]
        elif kind == "step.retrying":
            step["retries"].append({"item": item_label(event.get("item")), "attempt": detail.get("attempt"),
                                    "error": detail.get("error"), "at": event["at"]})  # fmt: skip
            step["attempts"] = max(step["attempts"], int(detail.get("attempt") or 1) + 1)
        elif kind in _ENDS and event.get("item") is None:
            step["finished_at"] = event["at"]
            step["continue_on_error"] = bool(detail.get("continue_on_error", False))
            if kind == "step.skipped":
                step["started_at"] = step["started_at"] or event["at"]
        if event.get("item") is not None and kind in ("step.started", *_ENDS):
            _on_item(step, event)
    for sid in run.get("steps") or {}:
        steps.setdefault(sid, _new_step(sid, run))
    return [_finish(step, run) for step in steps.values()]


def _fan_out_summary(items: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    return f"{len(items)} item(s): " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _finish(step: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Derived fields of one step, once every event was read."""
    step["started_at"] = step["started_at"] or ((run.get("steps") or {}).get(step["id"]) or {}).get("started_at")
    step["seconds"] = seconds_between(step["started_at"], step["finished_at"])
    step["items"] = list(step["items"].values())
    step["output"] = scrub(step["output"])
    step["summary"] = _summary(step["output"], step["error"], step["reason"])
    step["ids"] = list(dict.fromkeys(i for it in step["items"] for i in it["ids"])) or resource_ids(step["output"])
    if not step["items"] and isinstance(step["output"], list):
        step["items"] = [{"item": f"#{n + 1}", "status": step["status"], "summary": _summary(o, None, None),
                          "ids": resource_ids(o), "started_at": None, "finished_at": None, "attempts": 1,
                          "error": None} for n, o in enumerate(step["output"])]  # fmt: skip
    if step["items"] and not step["summary"]:
        step["summary"] = _fan_out_summary(step["items"])
    return step


def attach_undo(steps: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, Any] | None:
    """Put each undo entry on its step; return who undid how much (None when nothing was undone)."""
    by_id = {s["id"]: s for s in steps}
    entries = [u for u in run.get("undo") or [] if isinstance(u, dict)]
    for entry in entries:
        step = by_id.get(str(entry.get("step")))
        if step is not None:
            step["undo"].append({k: entry.get(k) for k in ("item_key", "status", "summary", "by", "at", "reason")})
    done = {(u.get("step"), u.get("item_key")) for u in entries if u.get("status") in UNDONE}
    if not done:
        return None
    effects = sum(max(1, len(s["items"])) for s in steps if s["undoable"] and s["status"] == "succeeded")
    last = [u for u in entries if u.get("status") in UNDONE][-1]
    return {
        "state": "fully" if len(done) >= effects else "partly",
        "effects": effects,
        "undone": len(done),
        "by": last.get("by") or "unknown",
        "at": last.get("at") or "",
        "reason": last.get("reason") or "",
    }
