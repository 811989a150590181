"""Approvals from people: canonical identities, authorisation, strict decisions, one account one person,
guards before the ask, and ``fireline approve`` telling the truth."""

from __future__ import annotations

import getpass
import threading
from pathlib import Path
from typing import Any

import pytest

from flows.actions.control import ApprovalParams
from flows.cli import main
from flows.engine import run_playbook
from flows.engine.approval_wait import ApprovalWait
from flows.engine.approvals import Approvers
from flows.engine.outcomes import RunSummary
from flows.engine.waits import VirtualClock
from flows.errors import ApprovalError
from flows.people.answers import AnswerReceipt, submit_answer
from flows.people.identity import Identity, canonical_name
from tests.flows.engine.engine_helpers import events
from tests.flows.people.helpers import PEOPLE, T0, WAIT, registry, settings, tree, wait_until, write_library

APPROVE = {"id": "approve", "action": "approval",
           "with": {"approvers": ["group:ml-security"], "timeout": "1h", "reason": "isolate db-1"}}  # fmt: skip
TOUCH = {"id": "touch", "action": "test.touch", "with": {"ids": ["db-1"], "tags": {"env": "prod"}}}
LEVEL = [{"targets": ["webhook:secret:HOOK_L0"], "ack_timeout": "5m"}]


class Waiting:
    """A live run started in a thread that waits at its approval step."""

    def __init__(self, tmp: Path, steps: list[dict[str, Any]], trigger: str = "user:dan", people: Any = None) -> None:
        self.tmp, self.clock = tmp, VirtualClock(start=T0)
        path = write_library(tmp, tree(LEVEL), steps=steps, people=people)
        self.run_id = "approval-run"
        self.run_dir = settings(tmp).runs_dir / self.run_id
        self.summary: RunSummary | None = None

        def go() -> None:
            self.summary = run_playbook(path, settings=settings(tmp), registry=registry(), run_id=self.run_id,
                                        trigger={"by": trigger, "how": "cli"}, clock=self.clock)  # fmt: skip

        self.thread = threading.Thread(target=go, daemon=True)
        self.thread.start()
        run_json = self.run_dir / "run.json"
        wait_until(lambda: run_json.exists() and '"approve"' in run_json.read_text().split('"waiting"')[-1],
                   "the approval to wait")  # fmt: skip

    def answer(self, who: str, decision: str, *, via: str = "slack", account: str | None = None) -> AnswerReceipt:
        identity = Identity(who, via, account or who, None)  # type: ignore[arg-type]  # via is a literal
        return submit_answer(self.run_dir, "approve", decision, identity, "because", settings(self.tmp))

    def finish(self) -> RunSummary:
        self.thread.join(WAIT)
        assert self.summary is not None, "the run did not finish"
        return self.summary


def test_case_15_self_approval_is_refused_whatever_the_spelling(tmp_path: Path) -> None:
    run = Waiting(tmp_path, [APPROVE, TOUCH], trigger="user:Alice")
    # alice, Alice, her e-mail in capitals and her Slack user id are all the person who triggered the run.
    for variant in ("alice", "ALICE", "user:Alice", "Alice@Example.com", "U0ALICE1"):
        receipt = run.answer(variant, "approve")
        assert not receipt.accepted, variant
        assert receipt.reason == "alice triggered this run and cannot approve it"
    assert run.answer("bob", "approve").accepted
    summary = run.finish()
    assert summary.outcome == "succeeded"
    refused = events(run.run_dir, "approval.refused")
    assert len(refused) == 5
    assert {e["detail"]["by"] for e in refused} == {"alice"}
    assert events(run.run_dir, "approval.granted")[0]["detail"]["by"] == ["bob"]


def test_a_doubled_prefix_is_not_a_person() -> None:
    with pytest.raises(ApprovalError, match="not a person name"):
        canonical_name("user:user:alice")
    assert canonical_name(" user:Alice ") == "alice"


def test_an_unauthorised_approver_is_refused_and_recorded(tmp_path: Path) -> None:
    run = Waiting(tmp_path, [APPROVE, TOUCH])
    receipt = run.answer("carol", "approve")
    assert not receipt.accepted
    assert receipt.reason == "carol is not an approver of this step (approvers: group:ml-security)"
    assert run.answer("bob", "reject").accepted
    assert run.finish().outcome == "rejected"
    assert [e["detail"]["by"] for e in events(run.run_dir, "approval.refused")] == ["carol"]
    assert events(run.run_dir, "step.skipped", "touch")


@pytest.mark.parametrize("text", ["approved", "yes", "ok", "Approve!", "lgtm", ""])
def test_unknown_decision_text_is_refused_and_never_counts(tmp_path: Path, text: str) -> None:
    run = Waiting(tmp_path, [APPROVE, TOUCH])
    receipt = run.answer("bob", text)
    assert not receipt.accepted
    assert receipt.reason == f"{text!r} is not a decision (expected approve or reject)"
    assert run.answer("alice", " REJECT ").accepted  # case and blanks are normalised; the word is exact
    summary = run.finish()
    assert summary.outcome == "rejected"
    assert not events(run.run_dir, "approval.granted")
    assert [e["detail"]["decision"] for e in events(run.run_dir, "approval.refused")] == [text]


def test_one_account_counts_for_one_person(tmp_path: Path) -> None:
    two = {**APPROVE, "with": {"approvers": ["user:alice", "user:carol"], "min_approvals": 2, "timeout": "1h"}}
    run = Waiting(tmp_path, [two, TOUCH])
    assert run.answer("alice", "approve", via="cli", account="oncall-box").accepted
    again = run.answer("alice", "approve", via="cli", account="oncall-box")
    assert (again.accepted, again.duplicate) == (True, True)  # a replay counts once
    other = run.answer("carol", "approve", via="cli", account="oncall-box")
    assert not other.accepted
    assert other.reason == "account 'oncall-box' already answered as alice; one account counts for one person"
    assert run.answer("carol", "approve", via="cli", account="carol").accepted
    assert run.finish().outcome == "succeeded"
    granted = events(run.run_dir, "approval.granted")[0]["detail"]
    assert granted["by"] == ["alice", "carol"]


def test_guards_are_checked_before_anyone_is_asked(tmp_path: Path) -> None:
    protected = {**TOUCH, "with": {"ids": ["db-1"], "tags": {"fireline/protected": "true"}}}
    run_id = "guarded"
    path = write_library(tmp_path, tree(LEVEL), steps=[APPROVE, protected])
    summary = run_playbook(path, settings=settings(tmp_path), registry=registry(), run_id=run_id)
    run_dir = summary.run_dir
    assert summary.steps["approve"].status == "failed"
    assert "not asked: the guard would refuse" in (summary.steps["approve"].error or "")
    assert summary.steps["touch"].status == "skipped"
    assert not events(run_dir, "approval.requested")
    refused = events(run_dir, "guard.refused", "touch")
    assert refused[0]["detail"]["before_approval"] == "approve"


def test_the_request_shows_the_plan_of_what_it_approves(tmp_path: Path) -> None:
    run = Waiting(tmp_path, [APPROVE, TOUCH])
    assert run.answer("bob", "approve").accepted
    run.finish()
    plan = events(run.run_dir, "approval.requested")[0]["detail"]["plan"]
    assert plan.splitlines() == ["touch: touch 1", "  target test:thing:db-1"]


def test_an_approval_deadline_survives_a_restart(tmp_path: Path) -> None:
    params = ApprovalParams.model_validate({"approvers": ["user:bob"], "timeout": "100s"})
    state = tmp_path / "waits" / "approve.json"
    seen: list[str] = []

    def wait() -> ApprovalWait:
        return ApprovalWait(
            params, "r", "approve", [], Approvers(), None, lambda t, d: seen.append(t), state_file=state
        )

    first = wait()
    first.start(1000.0)
    assert first.poll(1000.0) is None  # the request is announced on the first poll
    resumed = wait()
    resumed.start(1060.0)  # a resume 60 s later keeps the deadline at 1100, not 1160
    assert resumed.poll(1099.0) is None
    done = resumed.poll(1100.0)
    assert done is not None
    assert done["decision"] == "timed_out"
    assert seen == ["approval.requested", "approval.requested", "approval.rejected"]


# -- the CLI ----------------------------------------------------------------------------------
def _cli_env(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    monkeypatch.setenv("FIRELINE_RUNS_DIR", str(tmp / "runs"))
    monkeypatch.setenv("FIRELINE_PLAYBOOKS_DIR", str(tmp / "playbooks"))
    monkeypatch.setenv("FIRELINE_HOME", str(tmp / "home"))


def test_approve_refuses_a_claim_the_directory_does_not_allow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _cli_env(monkeypatch, tmp_path)
    run = Waiting(tmp_path, [APPROVE, TOUCH])
    login = getpass.getuser()
    assert main(["approve", run.run_id, "approve", "--as", "bob"]) == 1
    err = capsys.readouterr().err
    assert f"OS user {login!r} may not act for bob" in err
    assert err.count("\n") == 1
    assert run.answer("bob", "reject").accepted
    run.finish()
    refused = events(run.run_dir, "approval.refused")
    assert refused[0]["detail"]["authenticated_as"] == login
    assert refused[0]["detail"]["claim"] == "bob"


def test_approve_accepts_a_claim_the_directory_allows_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _cli_env(monkeypatch, tmp_path)
    login = getpass.getuser()
    people = {**PEOPLE, "people": [{**p, "unix_logins": [*p["unix_logins"], login]} if p["id"] == "bob" else p
                                   for p in PEOPLE["people"]]}  # fmt: skip
    run = Waiting(tmp_path, [APPROVE, TOUCH], people=people)
    assert main(["approve", run.run_id, "approve", "--as", "Bob", "--reason", "ok"]) == 0
    assert f"approve from bob (claimed with --as by OS user {login}) recorded" in capsys.readouterr().out
    assert run.finish().outcome == "succeeded"
    answered = events(run.run_dir, "approval.answered")[0]["detail"]
    assert (answered["by"], answered["claim"], answered["authenticated_as"]) == ("bob", "Bob", login)


def test_approve_without_any_approvers_configured_says_how_to_set_them_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _cli_env(monkeypatch, tmp_path)
    run = Waiting(tmp_path, [APPROVE, TOUCH], people=False)
    assert main(["approve", run.run_id, "approve", "--as", "bob"]) == 1
    err = capsys.readouterr().err
    assert "bob is not an approver of this step, and no approvers are configured" in err
    assert "playbooks/people.yaml" in err
    assert "approvers_file" in err
    run.clock.advance(3601)  # nobody can approve: the approval times out
    assert run.finish().outcome == "rejected"
    assert events(run.run_dir, "approval.refused")[0]["detail"]["by"] == "bob"
