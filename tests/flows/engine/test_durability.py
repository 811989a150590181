"""Durable results, crash detection, resume rules and the saga-driven undo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.engine import resume_run, run_playbook, undo_run
from flows.engine.owner import pid_alive, process_start_time
from flows.engine.runs import detect_crash, list_runs
from flows.engine.state import RunState
from flows.errors import RunError
from tests.flows.engine.engine_helpers import events, make_registry, make_settings, run_json, write_playbook


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _book(tmp: Path, target: Path) -> Path:
    steps = [
        {"id": "one", "action": "test.counter.bump", "with": {"target": str(target), "name": "one"}},
        {
            "id": "fan",
            "action": "test.counter.bump",
            "for_each": ["a", "b"],
            "with": {"target": str(target), "name": "{{ item }}"},
        },
        {"id": "last", "action": "test.counter.bump", "with": {"target": str(target), "name": "last"}},
    ]
    return write_playbook(tmp, steps)


def _crash(run_dir: Path, *, drop: list[str]) -> None:
    """Make a finished run look like its process died mid-way, with some step-items not done."""
    data = run_json(run_dir)
    data.update(status="running", outcome=None)
    (run_dir / "run.json").write_text(json.dumps(data))
    (run_dir / "state" / "lock.json").write_text(json.dumps({"pid": _dead_pid(), "start_time": "1", "host": None}))
    for path in (run_dir / "state" / "results").glob("*.json"):
        if json.loads(path.read_text())["step"] in drop:
            path.unlink()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    folder = tmp_path / "target"
    folder.mkdir()
    return folder


def _calls(target: Path) -> int:
    return len((target / "calls").read_text().splitlines())


def test_resume_reuses_completed_items_and_redoes_the_rest(tmp_path: Path, target: Path) -> None:
    settings, registry = make_settings(tmp_path), make_registry()
    first = run_playbook(_book(tmp_path, target), settings=settings, registry=registry)
    assert first.outcome == "succeeded"
    assert _calls(target) == 4
    _crash(first.run_dir, drop=["last"])
    assert [r["status"] for r in list_runs(settings)] == ["crashed"]
    assert events(first.run_dir, "run.crashed")
    summary = resume_run(first.run_id, settings=settings, registry=registry)
    assert summary.outcome == "succeeded"
    assert _calls(target) == 5  # only "last" was applied again
    assert summary.steps["last"].output["changed"] is False  # the target already had it: idempotent
    assert events(first.run_dir, "step.started", "fan")[-1]["detail"]["reused"] == ["a", "b"]
    assert run_json(first.run_dir)["status"] == "finished"
    assert len(run_json(first.run_dir)["resumed"]) == 1


def test_resume_refuses_finished_and_live_runs(tmp_path: Path, target: Path) -> None:
    settings, registry = make_settings(tmp_path), make_registry()
    first = run_playbook(_book(tmp_path, target), settings=settings, registry=registry)
    before = sorted(p.name for p in first.run_dir.rglob("*"))
    with pytest.raises(RunError, match="already finished") as caught:
        resume_run(first.run_id, settings=settings, registry=registry)
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in first.run_dir.rglob("*")) == before
    data = run_json(first.run_dir)
    data["status"] = "running"
    (first.run_dir / "run.json").write_text(json.dumps(data))
    holder = RunState(first.run_dir)
    holder.acquire()  # this very process owns it: alive
    try:
        assert detect_crash(first.run_dir) is False
        with pytest.raises(RunError, match="still running"):
            resume_run(first.run_dir, settings=settings, registry=registry)
        with pytest.raises(RunError, match="driven by another live process"):
            RunState(first.run_dir).acquire()
    finally:
        holder.release()
    assert detect_crash(first.run_dir) is True  # the owner let go without finishing: crashed


def test_resume_refuses_a_changed_playbook(tmp_path: Path, target: Path) -> None:
    settings, registry = make_settings(tmp_path), make_registry()
    book = _book(tmp_path, target)
    first = run_playbook(book, settings=settings, registry=registry)
    _crash(first.run_dir, drop=["last"])
    book.write_text(book.read_text().replace("name: last", "name: other"))
    with pytest.raises(RunError, match="changed since"):
        resume_run(first.run_id, settings=settings, registry=registry)


def test_liveness_checks() -> None:
    import os

    me = os.getpid()
    assert pid_alive(me, process_start_time(me))
    assert not pid_alive(me, "not-my-start-time")  # a reused pid is not the owner
    assert not pid_alive(_dead_pid(), None)


def test_undo_reverses_effects_newest_first_once(tmp_path: Path, target: Path) -> None:
    settings, registry = make_settings(tmp_path), make_registry()
    first = run_playbook(_book(tmp_path, target), settings=settings, registry=registry)
    only_fan = undo_run(first.run_id, "fan", settings=settings, registry=registry)
    assert [(o.step, o.item_key, o.status) for o in only_fan] == [("fan", "b", "undone"), ("fan", "a", "undone")]
    everything = undo_run(first.run_id, settings=settings, registry=registry)
    assert [(o.step, o.status) for o in everything] == [
        ("last", "undone"),
        ("fan", "already_undone"),
        ("fan", "already_undone"),
        ("one", "undone"),
    ]
    again = undo_run(first.run_id, settings=settings, registry=registry)
    assert {o.status for o in again} == {"already_undone"}
    assert len(list((target / "effects").glob("*.undone"))) == 4
    assert len(events(first.run_dir, "undo.succeeded")) == 4
    assert run_json(first.run_dir)["events"]["count"] == len(events(first.run_dir))  # head kept in step


def test_dry_run_leaves_nothing_to_undo(tmp_path: Path, target: Path) -> None:
    settings, registry = make_settings(tmp_path), make_registry()
    summary = run_playbook(_book(tmp_path, target), settings=settings, registry=registry, mode="dry-run")
    assert not (target / "calls").exists()
    assert undo_run(summary.run_id, settings=settings, registry=registry) == []


def test_undo_of_unknown_step_is_an_error(tmp_path: Path, target: Path) -> None:
    settings, registry = make_settings(tmp_path), make_registry()
    first = run_playbook(_book(tmp_path, target), settings=settings, registry=registry)
    with pytest.raises(RunError, match="no step 'nope'"):
        undo_run(first.run_id, "nope", settings=settings, registry=registry)


def test_the_start_up_sweep_passes_over_runs_this_process_drives(tmp_path: Path, target: Path) -> None:
    from flows.engine.runs import mark_crashed_runs
    from flows.triggers import live

    settings, registry = make_settings(tmp_path), make_registry()
    first = run_playbook(_book(tmp_path, target), settings=settings, registry=registry)
    _crash(first.run_dir, drop=["last"])
    live.register(first.run_id, record=None, scope={})  # type: ignore[arg-type]  # driven here: not crashed
    try:
        assert mark_crashed_runs(settings) == []
    finally:
        live.unregister(first.run_id)
    assert mark_crashed_runs(settings) == [first.run_id]  # nobody drives it: its dead owner makes it crashed
