"""Sections computed from the record: the findings' fix commands, the review prompts, model checks kept as evidence."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from flows.cli import main
from flows.engine import run_playbook
from flows.report import build, render
from tests.flows.engine.engine_helpers import make_settings, write_playbook
from tests.flows.report.conftest import NOW, RUNS
from tests.flows.report.records import registry


def test_the_access_denied_fix_is_a_command_that_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.actions import registry as registry_module

    steps = [{"id": "isolate", "action": "reporttest.denied", "with": {"instance_id": "i-0aaa", "tags": {}}}]
    book = write_playbook(tmp_path, steps, name="denied-book")
    run_dir = run_playbook(book, settings=make_settings(tmp_path), registry=registry()).run_dir
    [finding] = [f for f in build(run_dir, now=NOW)["findings"] if f["kind"] == "missing_permission"]
    command = finding["fix"].split(" prints ")[0].split()
    assert command[:2] == ["fireline", "iam-policy"]
    assert Path(command[2]) == book  # the file the run was started from, not the playbook's name
    monkeypatch.setattr(registry_module, "_default", registry())  # the test actions are not built-ins
    capsys.readouterr()
    assert main(command[1:]) == 0
    assert json.loads(capsys.readouterr().out)["Version"] == "2012-10-17"


def _drop_events(run: Path, kinds: tuple[str, ...]) -> None:
    log = run / "events.jsonl"
    lines = [line for line in log.read_text().splitlines() if json.loads(line)["type"] not in kinds]
    log.write_text("".join(line + "\n" for line in lines))


def test_what_went_well_names_a_timely_ack_and_not_a_late_one(tmp_path: Path) -> None:
    late = build(RUNS / "rejected", now=NOW)
    assert late["metrics"][1]["seconds"] is not None  # the page was acknowledged, after a breach
    assert not any("acknowledged" in p for p in late["prompts"]["went_well"])
    assert any("ack SLO" in p for p in late["prompts"]["went_wrong"])
    run = tmp_path / "rejected"
    shutil.copytree(RUNS / "rejected", run)
    _drop_events(run, ("page.ack_slo_breached", "page.escalated"))
    timely = build(run, now=NOW)
    tta = timely["metrics"][1]["display"]
    assert f"The page was acknowledged {tta} after the run started." in timely["prompts"]["went_well"]


def test_a_succeeded_recovery_is_what_went_well() -> None:
    ctx = build(RUNS / "rollback", now=NOW)
    ttr = next(m for m in ctx["metrics"] if m["key"] == "ttr")
    assert ttr["seconds"] is not None
    assert f"Recovered {ttr['display']} after the run started." in ctx["prompts"]["went_well"]


DRIFT = {"name": "drift[amount]", "ok": False, "detail": "PSI 0.5412 > 0.2",
         "figures": {"feature": "amount", "psi": 0.5412, "ks_statistic": 0.31, "ks_p_value": 0.0001}}  # fmt: skip


def _failed_verify(tmp_path: Path) -> Path:
    """The rollback record with its verify step failed on drift: no output, the checks in its evidence."""
    run = tmp_path / "rollback"
    shutil.copytree(RUNS / "rollback", run)
    data = json.loads((run / "run.json").read_text())
    data["steps"]["verify"].update(status="failed", output=None, error="drift[amount]: PSI 0.5412 > 0.2")
    (run / "run.json").write_text(json.dumps(data))
    report = run / "evidence" / "verify" / "verify-report.json"
    doc: dict[str, Any] = json.loads(report.read_text())
    doc["checks"].append(DRIFT)
    body = json.dumps(doc, indent=2).encode()
    report.write_bytes(body)
    manifest = json.loads((run / "evidence" / "manifest.json").read_text())
    for item in manifest["items"]:
        if item["name"] == "verify-report.json":
            item.update(size=len(body), sha256=hashlib.sha256(body).hexdigest())
    (run / "evidence" / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_a_failed_verify_shows_its_drift_figures_from_its_evidence(tmp_path: Path) -> None:
    ctx = build(_failed_verify(tmp_path), now=NOW)
    [entry] = [m for m in ctx["impact"]["models"] if m["step"] == "verify"]
    assert entry["from_evidence"] is True
    assert {c["name"]: c["ok"] for c in entry["checks"]}["drift[amount]"] is False
    assert next(e for e in ctx["evidence"] if e["name"] == "verify-report.json")["verify"]["status"] == "ok"
    md = render(ctx, "md")
    assert "(`verify`: the step failed; its checks from its evidence verify-report.json)" in md
    assert "- Check drift\\[amount\\]: **failed** — PSI 0.5412 \\> 0.2" in md
    assert '"psi": 0.5412' in render(ctx, "html").replace("&#34;", '"')


def test_a_verify_report_outside_the_run_directory_is_not_read(tmp_path: Path) -> None:
    run = _failed_verify(tmp_path)
    outside = tmp_path / "elsewhere.json"
    shutil.copyfile(run / "evidence" / "verify" / "verify-report.json", outside)
    manifest = json.loads((run / "evidence" / "manifest.json").read_text())
    for item in manifest["items"]:
        if item["name"] == "verify-report.json":
            item["location"] = "../elsewhere.json"
    (run / "evidence" / "manifest.json").write_text(json.dumps(manifest))
    ctx = build(run, now=NOW)
    assert [m for m in ctx["impact"]["models"] if m["step"] == "verify"] == []
