"""Approvals: authorisation, self-approval, M-of-N, rejection, timeouts, escalation, dry-run, the CLI inbox."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flows.actions.control import ApprovalParams
from flows.engine import Answer, Responders, RunSummary, run_playbook
from flows.engine.approvals import ApproverDirectory, check_answer
from flows.errors import ApprovalError, ConfigError
from tests.flows.engine.engine_helpers import events, make_registry, make_settings, run_json, write_playbook

GROUPS = {"ml-security": ["alice", "bob", "carol"]}


def _steps(**approval: Any) -> list[dict[str, Any]]:
    params = {"approvers": ["group:ml-security"], "timeout": "5s", **approval}
    return [
        {"id": "approve", "action": "approval", "with": params},
        {"id": "isolate", "action": "log", "with": {"message": "isolating"}},
    ]


def _run(
    tmp_path: Path, steps: list[dict[str, Any]], answers: list[Answer], mode: str = "live", by: str = "user:dave"
) -> RunSummary:
    path = write_playbook(tmp_path, steps)
    return run_playbook(
        path,
        settings=make_settings(tmp_path, GROUPS),
        registry=make_registry(),
        mode=mode,  # type: ignore[arg-type]
        responders=Responders(approvals={"approve": answers}),
        trigger={"by": by},
    )


def test_authorised_approval_lets_the_run_go_on(tmp_path: Path) -> None:
    summary = _run(tmp_path, _steps(), [Answer(by="user:alice", decision="approve", reason="looks right")])
    assert summary.outcome == "succeeded"
    assert summary.steps["isolate"].status == "succeeded"
    (granted,) = events(summary.run_dir, "approval.granted")
    assert granted["detail"]["by"] == ["alice"]
    (answered,) = events(summary.run_dir, "approval.answered")
    assert answered["detail"]["how"] == "scripted"
    assert answered["detail"]["reason"] == "looks right"
    assert answered["detail"]["at"]


def test_outsider_and_self_approval_are_refused_and_recorded(tmp_path: Path) -> None:
    answers = [
        Answer(by="mallory", decision="approve"),
        Answer(by="alice", decision="approve"),
        Answer(by="bob", decision="approve", after=0.05),
    ]
    summary = _run(tmp_path, _steps(), answers, by="user:alice")
    assert summary.outcome == "succeeded"
    refused = events(summary.run_dir, "approval.refused")
    reasons = [e["detail"]["refused_because"] for e in refused]
    assert any("mallory is not an approver" in r for r in reasons)
    assert any("alice triggered this run" in r for r in reasons)
    assert events(summary.run_dir, "approval.granted")[0]["detail"]["by"] == ["bob"]


def test_m_of_n_needs_distinct_people(tmp_path: Path) -> None:
    answers = [
        Answer(by="alice", decision="approve"),
        Answer(by="alice", decision="approve"),
        Answer(by="carol", decision="approve", after=0.1),
    ]
    summary = _run(tmp_path, _steps(min_approvals=2), answers)
    assert summary.outcome == "succeeded"
    assert events(summary.run_dir, "approval.granted")[0]["detail"]["by"] == ["alice", "carol"]
    assert len(events(summary.run_dir, "approval.answered")) == 2


def test_one_rejection_rejects(tmp_path: Path) -> None:
    answers = [Answer(by="alice", decision="approve"), Answer(by="bob", decision="reject", reason="wrong host")]
    summary = _run(tmp_path, _steps(min_approvals=2), answers)
    assert summary.outcome == "rejected"
    assert summary.steps["approve"].status == "rejected"
    assert summary.steps["isolate"].status == "skipped"
    (rejected,) = events(summary.run_dir, "approval.rejected")
    assert rejected["detail"]["by"] == "bob"
    assert rejected["detail"]["reason"] == "wrong host"


def test_timeout_rejects(tmp_path: Path) -> None:
    summary = _run(tmp_path, _steps(timeout="300ms"), [])
    assert summary.outcome == "rejected"
    (rejected,) = events(summary.run_dir, "approval.rejected")
    assert rejected["detail"]["how"] == "timeout"


def test_escalation_waits_a_second_period(tmp_path: Path) -> None:
    # Answered after the first period (0.5 s) and well before the second one ends (>= 1 s).
    late = [Answer(by="carol", decision="approve", after=0.75)]
    summary = _run(tmp_path, _steps(timeout="500ms", on_timeout="escalate"), late)
    assert summary.outcome == "succeeded"
    assert len(events(summary.run_dir, "approval.escalated")) == 1
    summary2 = _run(tmp_path / "2", _steps(timeout="150ms", on_timeout="escalate"), [])
    assert summary2.outcome == "rejected"
    assert "after escalation" in events(summary2.run_dir, "approval.rejected")[0]["detail"]["reason"]


def test_dry_run_auto_grants_and_says_so(tmp_path: Path) -> None:
    summary = _run(tmp_path, _steps(), [], mode="dry-run")
    assert summary.outcome == "succeeded"
    assert events(summary.run_dir, "approval.requested")
    (granted,) = events(summary.run_dir, "approval.granted")
    assert granted["detail"]["how"] == "dry-run"
    assert "nobody was asked" in granted["detail"]["note"]


def test_drill_uses_scripted_responders(tmp_path: Path) -> None:
    summary = _run(tmp_path, _steps(), [Answer(by="bob", decision="reject", reason="drill says no")], mode="drill")
    assert summary.outcome == "rejected"


def test_cli_answer_reaches_a_waiting_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    settings = make_settings(tmp_path, GROUPS)
    monkeypatch.setenv("FIRELINE_RUNS_DIR", str(settings.runs_dir))
    monkeypatch.setenv("FIRELINE_APPROVERS_FILE", str(settings.approvers_file))
    path = write_playbook(tmp_path, _steps())
    result: dict[str, RunSummary] = {}
    worker = threading.Thread(
        target=lambda: result.setdefault(
            "s",
            run_playbook(path, settings=settings, registry=make_registry(), run_id="r1", trigger={"by": "user:dave"}),
        )
    )
    worker.start()
    run_dir = settings.runs_dir / "r1"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "approve" not in (
        run_json(run_dir).get("waiting", []) if (run_dir / "run.json").exists() else []
    ):
        time.sleep(0.02)
    assert main(["approve", "r1", "approve", "--as", "mallory"]) == 1
    assert "mallory is not an approver" in capsys.readouterr().err
    assert main(["approve", "r1", "approve", "--as", "bob", "--reason", "ok"]) == 0
    worker.join(10)
    assert result["s"].outcome == "succeeded"
    assert events(run_dir, "approval.refused")[0]["detail"]["by"] == "mallory"
    assert events(run_dir, "approval.answered")[0]["detail"]["how"] == "cli"
    assert main(["approve", "r1", "approve", "--as", "bob"]) == 1  # no longer waiting


def test_check_answer_and_directory(tmp_path: Path) -> None:
    params = ApprovalParams(approvers=["user:zoe", "group:ml-security"])
    directory = ApproverDirectory(groups=GROUPS)
    check_answer(Answer(by="user:zoe", decision="approve"), params, directory, "user:dave")
    check_answer(Answer(by="dave", decision="reject"), ApprovalParams(approvers=["user:dave"]), directory, "user:dave")
    with pytest.raises(ApprovalError, match="not an approver"):
        check_answer(Answer(by="eve", decision="approve"), params, directory, None)
    with pytest.raises(ApprovalError, match="cannot approve"):
        check_answer(Answer(by="zoe", decision="approve"), params, directory, "user:zoe")
    bad = tmp_path / "approvers.yaml"
    bad.write_text("groups: [a, b]\n")
    with pytest.raises(ConfigError):
        ApproverDirectory.load(bad)
