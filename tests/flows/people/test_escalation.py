"""contacts.page end to end: real HTTP pages to a loopback receiver, virtual time, acks through the inbox."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from flows.engine import run_playbook
from flows.engine.outcomes import RunSummary
from flows.engine.waits import VirtualClock
from flows.people.answers import submit_ack
from flows.people.identity import Identity
from tests.flows.engine.engine_helpers import events
from tests.flows.people.helpers import T0, WAIT, Receiver, registry, settings, tree, wait_until, write_library

MIN5 = "5m"


def _hooks(*names: str) -> list[dict[str, Any]]:
    return [{"targets": [f"webhook:secret:HOOK_{n.upper()}"], "ack_timeout": MIN5} for n in names]


class Run:
    """A live run in a thread, on a virtual clock the test moves."""

    def __init__(self, tmp: Path, book: Path, mode: str = "live") -> None:
        self.tmp, self.clock = tmp, VirtualClock(start=T0)
        self.run_id = f"run-{tmp.name}"[:60]
        self.run_dir = settings(tmp).runs_dir / self.run_id
        self.summary: RunSummary | None = None
        self.thread = threading.Thread(target=self._go, args=(book, mode), daemon=True)
        self.thread.start()

    def _go(self, book: Path, mode: str) -> None:
        self.summary = run_playbook(book, settings=settings(self.tmp), registry=registry(), run_id=self.run_id,
                                    clock=self.clock, mode=mode)  # type: ignore[arg-type]  # fmt: skip

    def finish(self) -> RunSummary:
        self.thread.join(WAIT)
        assert self.summary is not None, "the run did not finish"
        return self.summary

    def ack(self, person: str) -> None:
        receipt = submit_ack(self.run_dir, Identity(person, "script", "script"), settings(self.tmp))
        assert receipt.accepted, receipt.reason


def test_an_ack_at_level_2_stops_escalation(tmp_path: Path, hooks: Receiver) -> None:
    book = write_library(tmp_path, tree(_hooks("l0", "l1", "l2", "l3"), fallback=["webhook:secret:HOOK_FALLBACK"]))
    run = Run(tmp_path, book)
    hooks.wait_for(lambda p: p == ["l0"], "level 0 paged")
    run.clock.advance(301)
    hooks.wait_for(lambda p: p == ["l0", "l1"], "level 1 paged after level 0's ack_timeout")
    run.clock.advance(301)
    hooks.wait_for(lambda p: p == ["l0", "l1", "l2"], "level 2 paged")
    run.ack("bob")
    summary = run.finish()
    run.clock.advance(3600)  # long after: nothing more may be sent
    assert summary.outcome == "succeeded"
    assert hooks.paths() == ["l0", "l1", "l2"]
    acked = events(run.run_dir, "page.acked")
    assert [(e["detail"]["by"], e["detail"]["level"]) for e in acked] == [("bob", 2)]
    assert len(events(run.run_dir, "page.escalated")) == 2
    assert not events(run.run_dir, "page.exhausted")
    bodies = [b for _, b in hooks.received]
    assert [b["level"] for b in bodies] == [0, 1, 2]
    assert all(b["text"] == "host on fire" and b["ack"].startswith("fireline ack ") for b in bodies)


def test_nobody_acks_so_the_tree_is_exhausted_and_the_fallbacks_fire(tmp_path: Path, hooks: Receiver) -> None:
    doc = tree(_hooks("l0", "l1"), fallback=["webhook:secret:HOOK_FALLBACK"], reminder_interval="10m",
               reminders=1, ack_slo="8m")  # fmt: skip
    run = Run(tmp_path, write_library(tmp_path, doc))
    hooks.wait_for(lambda p: p == ["l0"], "level 0")
    run.clock.advance(301)
    hooks.wait_for(lambda p: p == ["l0", "l1"], "level 1")
    run.clock.advance(301)
    hooks.wait_for(lambda p: p == ["l0", "l1", "fallback"], "the fallback when every level is exhausted")
    run.clock.advance(601)
    hooks.wait_for(lambda p: p == ["l0", "l1", "fallback", "fallback"], "a reminder to the fallback")
    run.clock.advance(601)
    summary = run.finish()
    assert summary.steps["page"].status == "failed"
    assert "nobody acknowledged" in (summary.steps["page"].error or "")
    assert len(events(run.run_dir, "page.exhausted")) == 1
    breach = events(run.run_dir, "page.ack_slo_breached")
    assert [e["detail"]["ack_slo"] for e in breach] == [480]
    assert len(events(run.run_dir, "page.reminder")) == 1
    here = [e for e in events(run.run_dir, "page.delivery_failed") if e["detail"]["recipient"]["id"] == "incident"]
    assert here  # @here in the incident channel was tried (no chat is configured here, so it failed, recorded)


def test_an_empty_or_filtered_level_is_skipped_and_logged(tmp_path: Path, hooks: Receiver) -> None:
    from tests.flows.people.helpers import PEOPLE

    people = {**PEOPLE, "groups": {"nobody": []}}
    levels: list[dict[str, Any]] = [
        {"targets": ["webhook:secret:HOOK_L0"], "ack_timeout": MIN5, "when": {"severity": ["critical"]}},
        {"targets": ["webhook:secret:HOOK_L1"], "ack_timeout": MIN5,
         "active_hours": {"timezone": "UTC", "start": "20:00", "end": "22:00"}},
        {"targets": ["group:nobody"], "ack_timeout": MIN5},
        {"targets": ["webhook:secret:HOOK_L3"], "ack_timeout": MIN5},
    ]  # fmt: skip
    run = Run(tmp_path, write_library(tmp_path, tree(levels), people=people))
    hooks.wait_for(lambda p: p == ["l3"], "the first level that applies")
    run.ack("alice")
    assert run.finish().outcome == "succeeded"
    skipped = [(e["detail"]["level"], e["detail"]["reason"]) for e in events(run.run_dir, "page.level_skipped")]
    assert skipped == [
        (0, "its when does not match the incident"),
        (1, "outside its active hours"),
        (2, "no target resolves"),
    ]
    assert hooks.paths() == ["l3"]


def test_a_failed_delivery_escalates_at_once_and_is_recorded(tmp_path: Path, hooks: Receiver) -> None:
    hooks.status = 500
    run = Run(tmp_path, write_library(tmp_path, tree(_hooks("l0", "l1"))))
    hooks.wait_for(lambda p: p == ["l0", "l1"], "both levels, without waiting for the first's ack_timeout")
    hooks.status = 200
    summary = run.finish()
    failed = events(run.run_dir, "page.delivery_failed")
    assert any("HTTP 500" in e["detail"]["error"] for e in failed)
    assert summary.steps["page"].status == "failed"
    assert "nobody could be reached" in (summary.steps["page"].error or "")


def test_email_without_an_smtp_relay_fails_loudly(tmp_path: Path, hooks: Receiver) -> None:
    levels = [{"targets": ["email:pager@example.com"], "ack_timeout": MIN5}, *_hooks("l1")]
    run = Run(tmp_path, write_library(tmp_path, tree(levels)))
    hooks.wait_for(lambda p: p == ["l1"], "the next level after the e-mail failed")
    run.ack("bob")
    run.finish()
    failed = events(run.run_dir, "page.delivery_failed")
    assert [e["detail"]["error"] for e in failed] == ["no SMTP relay configured ([people] smtp_host)"]


@pytest.mark.parametrize("mode", ["dry-run", "drill"])
def test_dry_run_and_drill_send_nothing_and_record_would_send(tmp_path: Path, hooks: Receiver, mode: str) -> None:
    levels = [{"targets": ["person:alice", "person:bob", "webhook:secret:HOOK_L0"], "ack_timeout": MIN5}]
    run = Run(tmp_path, write_library(tmp_path, tree(levels)), mode=mode)
    if mode == "drill":
        log = run.run_dir / "events.jsonl"
        wait_until(lambda: log.exists() and bool(events(run.run_dir, "page.sent")), "the drill page")
        run.ack("alice")
    summary = run.finish()
    assert summary.outcome == "succeeded"
    sent = events(run.run_dir, "page.sent")
    who = sorted(e["detail"]["recipient"]["id"] for e in sent)
    # A drill pages only drill_ok people (alice), never a webhook; a dry-run records everyone it would page.
    assert who == (["alice"] if mode == "drill" else ["HOOK_L0", "alice", "bob"])
    assert all(e["detail"]["channel"] == "would_send" for e in sent)
    assert hooks.received == []


def test_fireline_ack_is_the_terminal_login_and_refuses_a_claim_it_may_not_make(
    tmp_path: Path, hooks: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import getpass

    from flows.cli import main
    from tests.flows.people.helpers import PEOPLE

    login = getpass.getuser()
    people = {**PEOPLE, "people": [{**p, "unix_logins": [login]} if p["id"] == "carol" else p
                                   for p in PEOPLE["people"]]}  # fmt: skip
    run = Run(tmp_path, write_library(tmp_path, tree(_hooks("l0", "l1")), people=people))
    monkeypatch.setenv("FIRELINE_RUNS_DIR", str(tmp_path / "runs"))
    hooks.wait_for(lambda p: p == ["l0"], "level 0")
    assert main(["ack", run.run_id, "--as", "alice"]) == 1  # alice's logins do not include this one
    assert f"OS user {login!r} may not act for alice" in capsys.readouterr().err
    assert main(["ack", run.run_id]) == 0
    assert f"ack from carol recorded for {run.run_id}" in capsys.readouterr().out
    summary = run.finish()
    assert summary.outcome == "succeeded"
    assert [e["detail"]["by"] for e in events(run.run_dir, "page.acked")] == ["carol"]
    assert [e["detail"]["by"] for e in events(run.run_dir, "page.ack_refused")] == ["alice"]
    assert hooks.paths() == ["l0"]
