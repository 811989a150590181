"""The drill report (after-action form) and JUnit XML.

Rendered by the post-mortem's renderer (:func:`flows.report.render.render_template`, the same
Jinja2 environment, escaping and filters) as ``drill-report.md``, ``.html`` and ``.json`` in the
run directory: objectives, expected against observed per step and milestone, milestone times
against their targets, the gaps found, and an improvement plan built from the unmet
expectations and the gaps.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from flows.drills.expect import format_duration

if TYPE_CHECKING:
    from flows.drills.load import LoadedScenario
    from flows.drills.run import DrillResult


def _improvements(result: DrillResult) -> list[str]:
    plan = [f"{c.kind} {c.name}: expected {c.expected}, observed {c.observed} - find out why and fix the "
            f"{'playbook' if c.kind in ('step', 'outcome') else 'contact tree or responders'}"
            for c in result.unmet]  # fmt: skip
    plan += [g["fix"] for g in result.gaps]
    if not result.permissions.get("checked", True):
        plan.append("check the role's permissions against fireline iam-policy where the IAM simulator is available")
    return list(dict.fromkeys(plan))


def context(result: DrillResult, loaded: LoadedScenario) -> dict[str, Any]:
    """The report's data (also the JSON report)."""
    s = loaded.scenario
    observed = result.observed
    steps = [{"step": sid, "observed": status,
              "expected": next((c.expected for c in result.checks if c.kind == "step" and c.name == sid), None),
              "ok": all(c.ok for c in result.checks if c.kind == "step" and c.name == sid)}
             for sid, status in observed.steps.items()]  # fmt: skip
    milestones = []
    for name, took in observed.milestones.items():
        check = next((c for c in result.checks if c.kind == "milestone" and c.name == name), None)
        milestones.append({"name": name, "took": None if took is None else format_duration(took),
                           "seconds": took, "target": check.expected if check else None,
                           "ok": check.ok if check else None})  # fmt: skip
    return {
        "scenario": {"name": s.metadata.name, "title": s.metadata.title, "path": str(loaded.path)},
        "playbook": loaded.playbook.ref,
        "run": {"id": result.run_id, "dir": str(result.run_dir), "outcome": observed.outcome,
                "virtual": format_duration(result.virtual_seconds), "wall_seconds": round(result.wall_seconds, 3)},
        "verdict": "passed" if result.ok else "failed",
        "objectives": s.metadata.objectives,
        "checks": [c.as_dict() for c in result.checks],
        "unmet": [c.as_dict() for c in result.unmet],
        "steps": steps,
        "milestones": milestones,
        "faults": observed.faults,
        "gaps": result.gaps,
        "permissions": result.permissions,
        "improvements": _improvements(result),
    }  # fmt: skip


def write_drill_report(result: DrillResult, loaded: LoadedScenario) -> list[Path]:
    """Write ``drill-report.{md,html,json}`` into the run directory; returns the paths."""
    from flows.record.store import write_atomic
    from flows.report.render import render_template

    ctx = context(result, loaded)
    written = []
    for fmt in ("md", "html", "json"):
        path = result.run_dir / f"drill-report.{fmt}"
        write_atomic(path, render_template(f"drill.{fmt}" + ("" if fmt == "json" else ".j2"), ctx).encode())
        written.append(path)
    return written


def junit_xml(results: list[DrillResult], errors: list[tuple[Path, str]]) -> str:
    """JUnit XML: one test suite, one test case per expectation, one per scenario that could not run."""
    failures = sum(len(r.unmet) for r in results) + len(errors)
    cases = sum(len(r.checks) for r in results) + len(errors)
    suite = ET.Element("testsuite", name="fireline drills", tests=str(cases), failures=str(failures), errors="0")
    for r in results:
        for c in r.checks:
            case = ET.SubElement(suite, "testcase", classname=f"drill.{r.scenario}", name=f"{c.kind} {c.name}",
                                 time=f"{r.wall_seconds / max(1, len(r.checks)):.3f}")  # fmt: skip
            if not c.ok:
                failure = ET.SubElement(case, "failure", message=f"expected {c.expected}, observed {c.observed}")
                failure.text = f"run {r.run_id}; report {r.run_dir / 'drill-report.md'}"
    for path, message in errors:
        case = ET.SubElement(suite, "testcase", classname=f"drill.{path.stem}", name="scenario")
        ET.SubElement(case, "failure", message=message)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
