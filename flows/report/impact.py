"""Impact (resources touched, model versions involved) and the one-paragraph summary of facts."""

from __future__ import annotations

from typing import Any

_IMPACT_KINDS = ("containment", "recovery", "evidence")


def _label(version: str, labels: dict[str, str]) -> str:
    return labels.get(version) or version.rsplit("/", 1)[-1]


def _model_entry(step: dict[str, Any], output: dict[str, Any]) -> dict[str, Any] | None:
    if "chosen" in output or "rejections" in output:
        chosen = output.get("chosen") or {}
        refused = [r for r in output.get("rejections") or [] if isinstance(r, dict)]
        labels = {str(r.get("version")): str(r.get("label")) for r in refused}
        if chosen.get("id"):
            labels[str(chosen["id"])] = str(chosen.get("label") or chosen["id"])
        previous = (output.get("previous") or {}).get("versions") or []
        return {
            "step": step["id"], "action": step["action"], "target": output.get("target", ""),
            "from": [_label(str(v), labels) for v in previous],
            "to": str(chosen.get("label") or ""), "to_sha256": str(output.get("sha256") or ""),
            "quarantined": [_label(str(v), labels) for v in output.get("quarantined") or []],
            "quarantine_mark": str(output.get("quarantine_mark") or ""),
            "refused": [{"version": str(r.get("version")), "label": str(r.get("label") or r.get("version")),
                         "reason": str(r.get("reason") or ""), "message": str(r.get("message") or "")}
                        for r in refused],
            "checks": [], "serving": [],
        }  # fmt: skip
    if "checks" in output or "serving" in output:
        checks = [
            {"name": str(c.get("name")), "ok": bool(c.get("ok")), "detail": str(c.get("detail") or ""),
             "figures": c.get("figures") or {}}
            for c in output.get("checks") or [] if isinstance(c, dict)
        ]  # fmt: skip
        return {"step": step["id"], "action": step["action"], "target": output.get("target", ""), "from": [],
                "to": "", "to_sha256": "", "quarantined": [], "quarantine_mark": "", "refused": [],
                "serving": [str(v) for v in output.get("serving") or []], "checks": checks}  # fmt: skip
    return None


def impact(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"resources": [{step, action, kind, status, ids}], "models": [...]}``."""
    resources = [
        {"step": s["id"], "action": s["action"], "kind": s["kind"], "status": s["status"], "ids": s["ids"]}
        for s in steps
        if s["ids"] and (s["kind"] in _IMPACT_KINDS or not s["kind"])
    ]
    models = []
    for step in steps:
        outputs = step["output"] if isinstance(step["output"], list) else [step["output"]]
        for output in outputs:
            if isinstance(output, dict) and step["action"].startswith("model."):
                entry = _model_entry(step, output)
                if entry is not None:
                    models.append(entry)
    return {"resources": resources, "models": models}


def _step_fact(step: dict[str, Any]) -> str | None:
    if step["status"] != "succeeded" or step["kind"] not in ("containment", "recovery"):
        return None
    action, count = step["action"], max(1, len(step["items"]))
    if action == "aws.ec2.isolate_instance":
        return f"{count} host(s) isolated"
    if action == "aws.iam.disable_access_keys":
        return f"access keys disabled for {count} user(s)"
    if step["items"]:
        names = [i["item"] for i in step["items"]]
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        return f"{step['id']}: {shown}"
    return f"{step['id']}: {step['summary']}" if step["summary"] else None


def _not_live_facts(ctx: dict[str, Any], mode: str) -> list[str]:
    would = [w for w in ctx["would_have"] if w["summary"]]
    facts = [f"{mode}: nothing was changed; {len(would)} step(s) planned what they would do"]
    refused = {g["target"] or g["step"] for g in ctx["guards"]}
    if refused:
        facts.append(f"guards would refuse {len(refused)} target(s): {', '.join(sorted(refused))}")
    return facts


def summary_facts(ctx: dict[str, Any]) -> list[str]:
    """Short facts for the summary, e.g. "2 host(s) isolated", "4 snapshot(s)", "14 min to containment"."""
    mode = ctx["run"]["mode"]
    facts: list[str] = _not_live_facts(ctx, mode) if mode != "live" else []
    failed = [s for s in ctx["actions"] if s["status"] in ("failed", "timed_out", "rejected")]
    for step in failed[:3]:
        facts.append(f"step {step['id']} {step['status']}: {step['error'] or step['summary']}")
    snapshots = sum(1 for s in ctx["actions"] for i in s["ids"] if i.startswith("snap-"))
    for step in ctx["actions"] if mode == "live" else []:
        fact = _step_fact(step)
        if fact is not None and not (step["action"].startswith("model.") and ctx["impact"]["models"]):
            facts.append(fact)
    if snapshots and mode == "live":
        facts.append(f"{snapshots} snapshot(s)")
    for model in ctx["impact"]["models"]:
        if model.get("to"):
            was = ", ".join(model["from"]) or "?"
            facts.append(f"model {model['target']} rolled back {was}→{model['to']}")
        if model.get("quarantined"):
            facts.append(f"{len(model['quarantined'])} version(s) quarantined")
    if ctx["evidence"]:
        facts.append(f"{len(ctx['evidence'])} evidence item(s) preserved")
    ttc = next(m for m in ctx["metrics"] if m["key"] == "ttc")
    if ttc["seconds"] is not None:
        facts.append(f"{ttc['display']} to containment")
    undone = ctx["run"]["undone"]
    if undone:
        facts.append(f"{undone['state']} undone by {undone['by']} at {undone['at']}")
    return facts
