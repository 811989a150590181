"""The faults the report used to show, each checked on a fixed record (and a sibling where there is one)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from flows.report import build, render
from flows.report.timeline import MAX_ITEM_ROWS, render_svg
from tests.flows.report.conftest import NOW, RUNS


def _events(case: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (RUNS / case / "events.jsonl").read_text().splitlines()]


def test_resume_keeps_the_first_attempts_times_and_marks_the_resume() -> None:
    run = json.loads((RUNS / "resumed" / "run.json").read_text())
    first = next(e for e in _events("resumed") if e["type"] == "step.started" and e["step"] == "bump")
    resumed_at = run["resumed"][0]
    # run.json too, not only the report: the first attempt's start, and the resume's
    assert run["steps"]["bump"]["started_at"] <= first["at"] < resumed_at
    assert run["steps"]["bump"]["resumed_at"] > resumed_at
    ctx = build(RUNS / "resumed", now=NOW)
    bump = next(s for s in ctx["actions"] if s["id"] == "bump")
    assert bump["started_at"] == first["at"]
    assert bump["resumed_at"] > resumed_at
    assert ctx["run"]["resumed"] == run["resumed"]
    assert "| Resumed (UTC) |" in render(ctx, "md")


def test_a_refusal_repeated_by_the_resume_is_listed_once() -> None:
    refusals = [e for e in _events("resumed") if e["type"] == "guard.refused"]
    assert len(refusals) == 2  # the first attempt's and the resume's
    ctx = build(RUNS / "resumed", now=NOW)
    assert len(ctx["guards"]) == 1
    assert ctx["guards"][0]["target"] == "test:thing:db-1"
    assert "fireline/protected=true" in ctx["guards"][0]["message"]  # the finding names resource and tag
    assert any("test:thing:db-1" in f["title"] for f in ctx["findings"] if f["kind"] == "guard_refused")


@pytest.mark.parametrize("case", ["succeeded-with-errors", "resumed"])
def test_a_failed_continue_on_error_step_is_succeeded_with_errors(case: str) -> None:
    ctx = build(RUNS / case, now=NOW)
    assert ctx["run"]["outcome"] == "succeeded_with_errors"
    assert render(ctx, "md").splitlines()[0].endswith("— succeeded\\_with\\_errors")


def test_dry_run_guard_findings_say_would_refuse_once() -> None:
    md = render(build(RUNS / "dry-run", now=NOW), "md")
    assert "(would be refused in live mode) (would refuse in live mode)" not in md
    for line in md.splitlines():
        assert not ("would refuse in live mode" in line and "would be refused in live mode" in line), line
    assert md.startswith("> **DRY-RUN**")
    assert md.index("## What would have happened") < md.index("## Impact")  # the main content comes first
    assert "Time to contain | — |" in md  # a dry-run contains nothing
    impact = md.split("## Impact\n\n", 1)[1]
    assert impact.startswith("Nothing was changed (dry-run): the resources below are the targets the steps planned.")


def test_rollback_says_why_each_candidate_was_refused() -> None:
    md = render(build(RUNS / "rollback", now=NOW), "md")
    assert "Refused fraud-scoring-models v4: artifact digest mismatch" in md
    assert "Refused fraud-scoring-models v3: carries no known-good attestation" in md
    assert "rolled back fraud-scoring-models v3→fraud-scoring-models v2" in md


def test_the_alert_and_inputs_are_in_the_report() -> None:
    md = render(build(RUNS / "succeeded", now=NOW), "md")
    assert "| Annotation `summary` | Inference hosts opened outbound connections to 203.0.113.7:4444 |" in md
    assert "| Fingerprint |" in md
    assert "- `instance_ids`:" in md


def test_a_run_record_of_an_older_format_still_reports_kinds(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUNS / "undone", run)
    data = json.loads((run / "run.json").read_text())
    data.pop("actions")  # records written before run.json carried the action kinds
    (run / "run.json").write_text(json.dumps(data))
    sys.modules.pop("tests.flows.report.report_actions", None)
    ctx = build(run, now=NOW)
    assert next(s for s in ctx["actions"] if s["id"] == "isolate-hosts")["kind"] == ""  # not a built-in
    ctx = build(RUNS / "rollback", now=NOW)  # a sandbox record of that format: kinds from the catalogue
    assert next(s for s in ctx["actions"] if s["id"] == "rollback")["kind"] == "recovery"


def test_the_timeline_stays_readable_at_200_steps_and_10000_events(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
    try:
        from report import make_run  # bench/report.py's synthetic run
    finally:
        sys.path.pop(0)
    run = make_run(tmp_path, 200, 10_000)
    assert (run / "events.jsonl").read_bytes().count(b"\n") == 10_000
    ctx = build(run, now=NOW)
    svg = render_svg(ctx, ctx["marks"])
    fan_outs = sum(1 for s in ctx["actions"] if s["items"])
    assert svg.count('<rect class="bar"') == 200
    assert svg.count('<rect class="bar item"') == fan_outs * MAX_ITEM_ROWS
    assert svg.count("more items</text>") == fan_outs
    height = int(svg.split('height="', 1)[1].split('"', 1)[0])
    assert height < 200 * 21 + fan_outs * (MAX_ITEM_ROWS + 1) * 14 + 100  # rows, not one per event
