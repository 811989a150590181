"""Findings computed from the run, and the prompts left for the humans writing the post-mortem.

Each finding is ``{"kind", "title", "detail", "fix"}``; ``fix`` is a concrete next step (a command,
a contact tree change) or empty. Nothing here guesses: a finding names the event or step it comes from.
"""

from __future__ import annotations

import re
from typing import Any

from flows.report.facts import human_seconds, seconds_between

_DENIED = re.compile(r"AccessDenied|UnauthorizedOperation|UnauthorizedAccess|not authorized to perform", re.I)
_PERMISSION = re.compile(r"perform:? ([a-z0-9-]+:[A-Za-z0-9*]+)")
_OPERATION = re.compile(r"calling the ([A-Za-z0-9]+) operation")


def _permission(error: str, action: str) -> str | None:
    found = _PERMISSION.search(error)
    if found:
        return found.group(1)
    operation = _OPERATION.search(error)
    parts = action.split(".")
    if operation and len(parts) >= 3 and parts[0] == "aws":
        return f"{parts[1]}:{operation.group(1)}"
    return None


def _access_denied(step: dict[str, Any], playbook: str) -> dict[str, Any] | None:
    errors = [str(step.get("error") or "")]
    errors += [str(i.get("error") or "") for i in step["items"]]
    errors += [str(r.get("error") or "") for r in step["retries"]]
    denied = next((e for e in errors if _DENIED.search(e)), None)
    if denied is None:
        return None
    permission = _permission(denied, step["action"])
    what = f"the permission {permission}" if permission else f"a permission {step['action']} needs"
    return {
        "kind": "missing_permission",
        "title": f"Step {step['id']} was denied {what}",
        "detail": denied,
        "fix": f"fireline iam-policy {playbook} prints the least-privilege policy, "
        f"{permission or 'every permission'} included; attach it to the role fireline runs as.",
    }


def _ack_findings(events: list[dict[str, Any]], people: dict[str, Any] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    sent: dict[str, dict[str, Any]] = {}
    tree = (people or {}).get("contact_tree") or {}
    tree_name = tree.get("id") or tree.get("name") or "the contact tree"
    for event in events:
        detail = event.get("detail") or {}
        level = str(detail.get("level", ""))
        if event["type"] == "page.sent":
            sent.setdefault(level, {**detail, "at": event["at"]})
        elif event["type"] == "page.acked":
            page = sent.get(level) or next(iter(sent.values()), None)
            slo = detail.get("ack_timeout") or (page or {}).get("ack_timeout")
            took = seconds_between((page or {}).get("at"), event["at"])
            if page and slo and took is not None and took > float(slo):
                out.append({
                    "kind": "ack_slo_breached",
                    "title": f"Acknowledged after {human_seconds(took)}, over the {human_seconds(float(slo))} SLO",
                    "detail": f"{detail.get('by', 'someone')} acknowledged level {level or '?'}.",
                    "fix": f"Review {tree_name}: shorten the level's ack timeout, add a target, or page a "
                    "better-placed rota first.",
                })  # fmt: skip
        elif event["type"] == "page.escalated":
            out.append({
                "kind": "ack_slo_breached",
                "title": f"Nobody acknowledged level {level or '?'} in time; the page escalated",
                "detail": str(detail.get("reason") or detail.get("message") or ""),
                "fix": f"Review {tree_name}: who was on call for that level, and could they answer?",
            })  # fmt: skip
    return out


def compute_findings(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The findings for a report context (steps, guards, events, chain state)."""
    findings: list[dict[str, Any]] = []
    playbook = ctx["playbook"]["name"] or "PLAYBOOK"
    for step in ctx["actions"]:
        denied = _access_denied(step, playbook)
        if denied is not None:
            findings.append(denied)
        if step["retries"]:
            first = step["retries"][0]
            findings.append({
                "kind": "retried",
                "title": f"Step {step['id']} needed retries ({len(step['retries'])} retried attempt(s))",
                "detail": f"first retry at {first['at']}: {first['error']}",
                "fix": "",
            })  # fmt: skip
        if step["status"] in ("failed", "timed_out") and step.get("continue_on_error"):
            findings.append({
                "kind": "continued_after_error",
                "title": f"Step {step['id']} failed and the run went on (continue_on_error)",
                "detail": str(step.get("error") or ""),
                "fix": "Collect what it should have collected by hand, then fix the cause.",
            })  # fmt: skip
    for guard in ctx["guards"]:
        findings.append({
            "kind": "guard_refused",
            "title": f"Guard {guard['guard']} refused {guard['target'] or 'the step'} in step {guard['step']}",
            "detail": guard["message"],
            "fix": "Tag the resource as the playbook requires, or change the playbook's guards if the refusal "
            "was wrong." if guard["guard"] == "require_tags" else "",
        })  # fmt: skip
    for model in ctx["impact"]["models"]:
        for refused in model.get("refused", []):
            if refused.get("reason") == "digest_mismatch":
                findings.append({
                    "kind": "tampering",
                    "title": f"{refused['label']} failed its attested digest (tampering)",
                    "detail": refused["message"],
                    "fix": "Find out how the artifact changed: the registry's and the bucket's access logs.",
                })  # fmt: skip
    findings.extend(_ack_findings(ctx["_events"], ctx.get("people")))
    if ctx["run"]["chain_problems"]:
        findings.append({
            "kind": "record_damaged",
            "title": "The event log fails verification",
            "detail": "; ".join(ctx["run"]["chain_problems"]),
            "fix": "fireline audit verify RUN names every problem; treat this report's times as unproven.",
        })  # fmt: skip
    return findings


def prompts(ctx: dict[str, Any]) -> dict[str, list[str]]:
    """Seeds for the human part of the post-mortem: facts first, then the questions only people can answer."""
    metrics = {m["key"]: m for m in ctx["metrics"]}
    well: list[str] = []
    if metrics["ttc"]["seconds"] is not None:
        well.append(f"Contained {metrics['ttc']['display']} after the run started.")
    if ctx["evidence"] and all(e["verify"]["status"] == "ok" for e in ctx["evidence"]):
        well.append(f"All {len(ctx['evidence'])} evidence item(s) still match their recorded sha256.")
    wrong = [f["title"] + "." for f in ctx["findings"] if f["kind"] != "retried"]
    lucky = [f["title"] + "." for f in ctx["findings"] if f["kind"] == "retried"]
    items = [f["fix"] for f in ctx["findings"] if f["fix"]]
    return {
        "went_well": [*well, "What else went well? (for people to fill in)"],
        "went_wrong": [*wrong, "What else slowed the response down?"],
        "lucky": [*lucky, "Where did we get lucky: what would have made this worse?"],
        "action_items": [*dict.fromkeys(items), "Each action item needs an owner and a date."],
    }
