"""Findings computed from the run, and the prompts left for the humans writing the post-mortem.

Each finding is ``{"kind", "title", "detail", "fix"}``; ``fix`` is a concrete next step (a command,
a contact tree change) or empty. Nothing here guesses: a finding names the event or step it comes from.
"""

from __future__ import annotations

import re
from typing import Any

from flows.report.facts import human_seconds

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
    """An ack SLO breach (``page.ack_slo_breached``) and each escalation for want of an ack."""
    out: list[dict[str, Any]] = []
    tree = (people or {}).get("contact_tree") or {}
    name = tree.get("name") or tree.get("id")
    version = f" (version {tree['version']})" if tree.get("version") else ""
    where = f"the contact tree {name}{version}" if name else "the contact tree"
    for event in events:
        detail = event.get("detail") or {}
        if event["type"] == "page.ack_slo_breached":
            waited = human_seconds(detail.get("seconds_unacknowledged"))
            slo = human_seconds(detail.get("ack_slo"))
            out.append({
                "kind": "ack_slo_breached",
                "title": f"The page was unacknowledged for {waited}, over the {slo} ack SLO",
                "detail": f"breached at {event['at']}",
                "fix": f"Review {where}: shorten a level's ack timeout, add a target to the first level, "
                "or put a better-placed rota first.",
            })  # fmt: skip
        elif event["type"] == "page.escalated" and str(detail.get("because", "")).startswith("no ack"):
            out.append({
                "kind": "escalated",
                "title": f"Level {detail.get('from')} did not acknowledge; the page went to level {detail.get('to')}",
                "detail": str(detail.get("because") or ""),
                "fix": f"Review {where}: was level {detail.get('from')} reachable at {event['at']}?",
            })  # fmt: skip
    return out


def compute_findings(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The findings for a report context (steps, guards, events, chain state)."""
    findings: list[dict[str, Any]] = []
    # iam-policy reads the playbook file: name it as the run recorded it (the name alone is no path).
    playbook = ctx["playbook"].get("path") or "PLAYBOOK.yaml"
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
    late = any(f["kind"] in ("ack_slo_breached", "escalated") for f in ctx["findings"])
    if metrics["tta"]["seconds"] is not None and not late:  # a late ack is under what went wrong
        well.append(f"The page was acknowledged {metrics['tta']['display']} after the run started.")
    if metrics["ttc"]["seconds"] is not None:
        well.append(f"Contained {metrics['ttc']['display']} after the run started.")
    if metrics["ttr"]["seconds"] is not None:
        well.append(f"Recovered {metrics['ttr']['display']} after the run started.")
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
