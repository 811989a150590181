"""No later write seals an edited record again, and a late line of an untouched record still verifies.

Each case edits a finished run's files as a forger would, then lets fireline write the record again
the way it does in normal use (a crash sweep, a resume, an undo, alert notes for a finished run),
and reads ``audit verify``'s answer from the files.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Registry, action
from flows.config import Settings
from flows.engine import resume_run, run_playbook, undo_run
from flows.engine.runs import list_runs
from flows.record.verify import verify_record
from flows.triggers.record import append_to_finished
from tests.flows.engine.engine_helpers import events, make_registry, make_settings, write_playbook


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _run(tmp_path: Path) -> tuple[Path, Settings]:
    settings = make_settings(tmp_path)
    target = tmp_path / "target"
    target.mkdir()
    steps = [{"id": "bump", "action": "test.counter.bump", "with": {"target": str(target), "name": "one"}}]
    summary = run_playbook(write_playbook(tmp_path, steps), settings=settings, registry=make_registry(),
                           trigger={"by": "user:oncall"})  # fmt: skip
    assert summary.outcome == "succeeded"
    assert verify_record(summary.run_dir, settings) == []
    return summary.run_dir, settings


def _edit_doc(run_dir: Path, **changes: Any) -> None:
    doc = json.loads((run_dir / "run.json").read_text())
    doc["trigger"]["by"] = "user:someone-else"
    doc.update(changes)
    (run_dir / "run.json").write_text(json.dumps(doc))


def _recompute_chain(run_dir: Path, **changes: Any) -> None:
    """Edit the first line, re-chain the log and stamp the new head: verifies only if resealed."""
    lines = [json.loads(raw) for raw in (run_dir / "events.jsonl").read_bytes().splitlines()]
    lines[0]["detail"]["trigger"] = {"by": "user:someone-else"}
    out: list[bytes] = []
    for event in lines:
        event["prev_sha256"] = hashlib.sha256(out[-1]).hexdigest() if out else "0" * 64
        out.append(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())
    (run_dir / "events.jsonl").write_bytes(b"\n".join(out) + b"\n")
    doc = json.loads((run_dir / "run.json").read_text())
    doc.update(events={"count": len(out), "head_sha256": hashlib.sha256(out[-1]).hexdigest()}, **changes)
    (run_dir / "run.json").write_text(json.dumps(doc))


def _crashed(run_dir: Path) -> dict[str, Any]:
    """What makes a run look crashed: running in run.json, its owner gone."""
    lock = {"pid": _dead_pid(), "start_time": "1", "host": None}
    (run_dir / "state" / "lock.json").write_text(json.dumps(lock))
    return {"status": "running", "outcome": None}


def _sweep(run_dir: Path, settings: Settings) -> None:
    assert [r["status"] for r in list_runs(settings)] == ["crashed"]


def _resume(run_dir: Path, settings: Settings) -> None:
    list_runs(settings)
    assert resume_run(run_dir.name, settings=settings, registry=make_registry()).outcome == "succeeded"


def _undo(run_dir: Path, settings: Settings) -> None:
    (outcome,) = undo_run(run_dir.name, settings=settings, registry=make_registry(), by="user:oncall")
    assert outcome.status == "undone"


def _notes(run_dir: Path, settings: Settings) -> None:
    assert append_to_finished(run_dir, [(1, "alert.resolved", {"alert": {"fingerprint": "f1"}})])


WRITES: dict[str, tuple[Callable[[Path, Settings], None], bool]] = {
    "crash sweep": (_sweep, True),
    "resume": (_resume, True),
    "undo": (_undo, False),
    "alert notes": (_notes, False),
}
EDITS: dict[str, Callable[..., None]] = {"run.json edited": _edit_doc, "chain recomputed": _recompute_chain}


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("write", list(WRITES))
def test_no_later_write_seals_an_edit_again(tmp_path: Path, edit: str, write: str) -> None:
    run_dir, settings = _run(tmp_path)
    operation, needs_crash = WRITES[write]
    EDITS[edit](run_dir, **(_crashed(run_dir) if needs_crash else {}))
    assert verify_record(run_dir, settings) != []
    operation(run_dir, settings)
    problems = verify_record(run_dir, settings)
    assert any("written over a record that had failed its checks" in p for p in problems), problems
    seal = json.loads((run_dir / "run.json").read_text())["seal"]
    assert "hmac" not in seal
    assert seal["unverified"]
    assert len(events(run_dir, "record.unverified")) == 1


@pytest.mark.parametrize("write", list(WRITES))
def test_an_untouched_record_is_sealed_again_as_usual(tmp_path: Path, write: str) -> None:
    run_dir, settings = _run(tmp_path)
    operation, needs_crash = WRITES[write]
    if needs_crash:  # the crash as the dying process left it: run.json written by fireline itself
        from flows.record.seal import sealer_for
        from flows.record.store import RunRecord

        RunRecord(run_dir, sealer=sealer_for(settings)).update_run(**_crashed(run_dir))
    operation(run_dir, settings)
    assert verify_record(run_dir, settings) == []
    assert events(run_dir, "record.unverified") == []


GATE = threading.Event()
ENDED = threading.Event()


class HeldParams(ActionParams):
    name: str


class HeldResult(ActionResult):
    pass


@action("test.held_evidence", kind=ActionKind.EVIDENCE, params=HeldParams, result=HeldResult)
class HeldEvidence(Action[HeldParams, HeldResult]):
    """Store evidence once :data:`GATE` opens (an SDK call that outlives its step's timeout)."""

    def plan(self, params: HeldParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="held", mutating=False)

    def apply(self, params: HeldParams, ctx: ActionContext) -> HeldResult:
        GATE.wait()
        try:
            ctx.store_evidence_bytes(params.name, b"late bytes", content_type="text/plain")
        finally:
            ENDED.set()
        return HeldResult()


def test_a_late_line_after_the_run_ended_still_verifies(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    registry: Registry = make_registry()
    registry.register_module(__name__)
    steps = [{"id": "keep", "action": "test.held_evidence", "timeout": "100ms", "with": {"name": "late.txt"}}]
    summary = run_playbook(write_playbook(tmp_path, steps), settings=settings, registry=registry)
    assert summary.steps["keep"].status == "timed_out"
    assert verify_record(summary.run_dir, settings) == []
    GATE.set()  # the abandoned attempt ends after the run has ended
    assert ENDED.wait(60)  # set after the evidence (its late line and the reseal) was recorded
    late = events(summary.run_dir, "attempt.late", "keep")
    assert [e["detail"]["event"] for e in late] == ["evidence.stored"]
    assert events(summary.run_dir)[-1]["type"] == "attempt.late"
    assert verify_record(summary.run_dir, settings) == []
