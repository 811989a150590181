"""Impact (resources touched, model and data versions involved) and the one-paragraph summary of facts."""

from __future__ import annotations

from typing import Any

_IMPACT_KINDS = ("containment", "recovery", "evidence")


def _label(version: str, labels: dict[str, str]) -> str:
    """A version's label as the registry actions write it (``models v4``), from its id when not known."""
    if version in labels:
        return labels[version]
    parts = version.rstrip("/").split("/")
    return f"{parts[-2]} v{parts[-1]}" if len(parts) >= 2 and parts[-1].isdigit() else parts[-1]


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
            "checks": [], "serving": [], "from_evidence": False,
        }  # fmt: skip
    if "quarantined" in output and "quarantine_mark" in output:  # model.quarantine
        return {"step": step["id"], "action": step["action"], "target": output.get("target", ""), "from": [],
                "to": "", "to_sha256": "", "quarantined": [_label(str(v), {}) for v in output["quarantined"] or []],
                "quarantine_mark": str(output.get("quarantine_mark") or ""), "refused": [], "serving": [],
                "checks": [], "from_evidence": False}  # fmt: skip
    if "checks" in output or "serving" in output:
        checks = [
            {"name": str(c.get("name")), "ok": bool(c.get("ok")), "detail": str(c.get("detail") or ""),
             "figures": c.get("figures") or {}}
            for c in output.get("checks") or [] if isinstance(c, dict)
        ]  # fmt: skip
        return {"step": step["id"], "action": step["action"], "target": output.get("target", ""), "from": [],
                "to": "", "to_sha256": "", "quarantined": [], "quarantine_mark": "", "refused": [],
                "serving": [str(v) for v in output.get("serving") or []], "checks": checks,
                "from_evidence": bool(output.get("from_evidence"))}  # fmt: skip
    return None


def _dataset(doc: Any) -> str:
    if not isinstance(doc, dict):
        return str(doc)
    extra = [
        f"sha256 {doc['sha256']}" if doc.get("sha256") else "",
        f"since {doc['since']}" if doc.get("since") else "",
        f"{len(doc['version_ids'])} object version(s)" if doc.get("version_ids") else "",
    ]
    shown = ", ".join(e for e in extra if e)
    return f"{doc.get('uri')} ({shown})" if shown else str(doc.get("uri"))


def _data_entry(step: dict[str, Any], output: dict[str, Any]) -> dict[str, Any] | None:
    """The data versions of a data incident: what the blast radius reached, what was quarantined."""
    base = {"step": step["id"], "action": step["action"], "datasets": [], "reached": [], "unknown": [],
            "uri": "", "versions": [], "left": [], "skipped": [], "mark": "", "denied_by": ""}  # fmt: skip
    if "models" in output and "datasets" in output:  # data.blast_radius
        reached = [
            {"label": str(m.get("label") or m.get("version")), "version": str(m.get("version")),
             "serving": [str(v) for v in m.get("serving_via") or []], "tainted_by": str(m.get("tainted_by") or "")}
            for m in output.get("models") or [] if isinstance(m, dict)
        ]  # fmt: skip
        unknown = [f"{u.get('label') or u.get('version')}: {u.get('message')}" for u in output.get("unknown") or []
                   if isinstance(u, dict)]  # fmt: skip
        return {**base, "datasets": [_dataset(d) for d in output.get("datasets") or []], "reached": reached,
                "unknown": unknown}  # fmt: skip
    if "tagged" in output and "uri" in output:  # data.quarantine
        bucket = str(output.get("bucket") or "")
        versions = [f"s3://{bucket}/{t.get('key')}?versionId={t.get('version_id')}"
                    for t in output.get("tagged") or [] if isinstance(t, dict)]  # fmt: skip
        return {**base, "uri": str(output["uri"]), "versions": versions,
                "left": [str(v) for v in output.get("left") or []],
                "skipped": [str(v) for v in output.get("skipped") or []], "mark": str(output.get("mark") or ""),
                "denied_by": str(output.get("policy_sid") or "")}  # fmt: skip
    return None


def impact(steps: list[dict[str, Any]], verify_reports: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """``{"resources": [{step, action, kind, status, ids}], "models": [...], "data": [...]}``.

    ``verify_reports`` maps a step id to the ``verify-report.json`` its ``model.verify`` kept as
    evidence: a verify step that failed has no output, and its checks (the drift figures that
    confirmed the incident) are read from there.
    """
    resources = [
        {"step": s["id"], "action": s["action"], "kind": s["kind"], "status": s["status"], "ids": s["ids"]}
        for s in steps
        if s["ids"] and (s["kind"] in _IMPACT_KINDS or not s["kind"])
    ]
    models, data = [], []
    for step in steps:
        outputs = step["output"] if isinstance(step["output"], list) else [step["output"]]
        kept = (verify_reports or {}).get(step["id"])
        if step["action"] == "model.verify" and step["output"] is None and kept is not None:
            outputs = [{**kept, "from_evidence": True}]
        for output in outputs:
            if isinstance(output, dict) and step["action"].startswith("model."):
                entry = _model_entry(step, output)
                if entry is not None:
                    models.append(entry)
            elif isinstance(output, dict) and step["action"].startswith("data."):
                entry = _data_entry(step, output)
                if entry is not None:
                    data.append(entry)
    return {"resources": resources, "models": models, "data": data}


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


def _ml_facts(found: dict[str, Any]) -> list[str]:
    """Rollbacks, quarantined model versions (each once), blast radius and quarantined data versions."""
    facts = []
    quarantined: dict[str, None] = {}  # a version the rollback and a quarantine step both marked counts once
    for model in found["models"]:
        if model.get("to"):
            was = ", ".join(model["from"]) or "?"
            facts.append(f"model {model['target']} rolled back {was}→{model['to']}")
        quarantined.update(dict.fromkeys(model.get("quarantined") or []))
    if quarantined:
        facts.append(f"{len(quarantined)} version(s) quarantined: {', '.join(quarantined)}")
    for entry in found["data"]:
        if entry["reached"]:
            serving = sum(1 for m in entry["reached"] if m["serving"])
            facts.append(f"{len(entry['reached'])} model version(s) trained on tainted data, {serving} serving")
        if entry["versions"]:
            facts.append(f"{len(entry['versions'])} data version(s) quarantined under {entry['uri']}")
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
        described = ctx["impact"]["models"] if step["action"].startswith("model.") else ctx["impact"]["data"]
        if fact is not None and not (step["action"].startswith(("model.", "data.")) and described):
            facts.append(fact)
    if snapshots and mode == "live":
        facts.append(f"{snapshots} snapshot(s)")
    facts += _ml_facts(ctx["impact"])
    if ctx["evidence"]:
        facts.append(f"{len(ctx['evidence'])} evidence item(s) preserved")
    ttc = next(m for m in ctx["metrics"] if m["key"] == "ttc")
    if ttc["seconds"] is not None:
        facts.append(f"{ttc['display']} to containment")
    undone = ctx["run"]["undone"]
    if undone:
        facts.append(f"{undone['state']} undone by {undone['by']} at {undone['at']}")
    return facts
