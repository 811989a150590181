"""Run lifecycle rails: bad inputs leave nothing, orphans are adopted, stale owners, Ctrl-C, plan time limits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.engine import resume_run, run_playbook
from flows.engine.inputs import InputError
from flows.engine.runs import list_runs, read_run_json
from flows.engine.state import RunState
from flows.errors import ConfigError, RunError
from tests.flows.engine.engine_helpers import events, make_registry, make_settings, run_json, write_playbook

REPO = Path(__file__).resolve().parents[3]
INPUTS = {"name": {"type": "string", "required": True}, "ratio": {"type": "float", "default": 1.0},
          "tags": {"type": "dict", "default": {}}}  # fmt: skip


def _book(tmp_path: Path, steps: list[dict[str, Any]] | None = None) -> Path:
    steps = steps or [{"id": "say", "action": "log", "with": {"message": "{{ inputs.name }}"}}]
    return write_playbook(tmp_path, steps, inputs=INPUTS)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"name": "bad-\udcff-bytes"}, "not valid Unicode"),  # how a shell passes bytes that are not UTF-8
        ({"name": "x", "ratio": "nan"}, "not a finite number"),
        ({"name": "x", "ratio": "-inf"}, "not a finite number"),
        ({"name": "x", "tags": '{"a": NaN}'}, "not a finite number"),
        ({"name": "x", "tags": '{"a": "\\ud800"}'}, "not valid Unicode"),
    ],
    ids=["surrogate", "nan", "inf", "nan-in-json", "lone-surrogate-in-json"],
)
def test_inputs_json_cannot_hold_are_refused_before_anything_is_written(
    tmp_path: Path, inputs: dict[str, str], message: str
) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(InputError, match=message):
        run_playbook(_book(tmp_path), inputs=inputs, settings=settings, registry=make_registry())
    assert not settings.runs_dir.exists() or list(settings.runs_dir.iterdir()) == []


def test_a_run_that_died_before_its_record_is_listed_and_resumable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    book = _book(tmp_path)
    run_dir = settings.runs_dir / "orphan-1"
    meta = {"run_id": "orphan-1", "playbook_path": str(book.resolve()), "inputs": {"name": "n"}, "alert": {},
            "trigger": {"by": "user:oncall"}, "mode": "live",
            "incident": {"id": "orphan-1", "started_at": "2026-01-01T00:00:00.000000Z"}}  # fmt: skip
    from flows.language.loader import load_playbook

    meta["sha256"] = load_playbook(book).sha256
    creating = RunState(run_dir)
    creating.create(meta)
    assert list_runs(settings) == []  # its creator holds it: not an orphan yet
    creating.unclaim()  # ...and the process died here, before run.json
    rows = list_runs(settings)
    assert [(r["run_id"], r["status"]) for r in rows] == [("orphan-1", "crashed")]
    assert events(run_dir, "run.crashed")[0]["detail"]["note"].startswith("the process died before")
    summary = resume_run("orphan-1", settings=settings, registry=make_registry())
    assert summary.outcome == "succeeded"
    assert summary.steps["say"].output["message"] == "n"


def _stale_lock(run_dir: Path, lease_until: float) -> None:
    """lock.json as a process under another kernel (a machine since replaced) left it."""
    lock = {"pid": 1, "start_time": "1", "boot_id": "another-kernel", "host": "old-host",
            "at": "2026-01-01T00:00:00Z", "lease_until": lease_until}  # fmt: skip
    (run_dir / "state" / "lock.json").write_text(json.dumps(lock))
    doc = read_run_json(run_dir)
    from flows.record.store import RunRecord

    RunRecord(run_dir).write_run({**doc, "status": "running", "outcome": None})


def test_a_lapsed_lease_from_another_host_is_a_crash_and_resumes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    first = run_playbook(_book(tmp_path), inputs={"name": "n"}, settings=settings, registry=make_registry())
    _stale_lock(first.run_dir, lease_until=time.time() - 1)
    assert [r["status"] for r in list_runs(settings)] == ["crashed"]
    assert resume_run(first.run_id, settings=settings, registry=make_registry()).outcome == "succeeded"


def test_a_live_lease_needs_force_with_a_recorded_reason(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    first = run_playbook(_book(tmp_path), inputs={"name": "n"}, settings=settings, registry=make_registry())
    _stale_lock(first.run_dir, lease_until=time.time() + 3600)
    assert [r["status"] for r in list_runs(settings)] == ["running"]
    with pytest.raises(RunError, match="still running"):
        resume_run(first.run_id, settings=settings, registry=make_registry())
    with pytest.raises(RunError, match="--reason"):
        resume_run(first.run_id, settings=settings, registry=make_registry(), force_reason=" ")
    reason = "container replaced after the node was drained"
    summary = resume_run(first.run_id, settings=settings, registry=make_registry(), force_reason=reason)
    assert summary.outcome == "succeeded"
    (forced,) = events(first.run_dir, "run.force_resumed")
    assert forced["detail"]["reason"] == reason
    assert forced["detail"]["previous_owner"]["host"] == "old-host"


def test_a_hanging_plan_fails_its_step_at_the_step_timeout(tmp_path: Path) -> None:
    target = tmp_path / "applied.txt"
    steps = [
        {"id": "hang", "action": "test.stuck_plan", "timeout": "200ms", "with": {"seconds": 3, "target": str(target)}},
        {"id": "after", "action": "log", "needs": [], "with": {"message": "independent"}},
    ]
    path = write_playbook(tmp_path, steps)
    summary = run_playbook(path, settings=make_settings(tmp_path), registry=make_registry())
    assert summary.steps["hang"].status == "failed"
    assert "plan of steps[hang].with timed out" in (summary.steps["hang"].error or "")
    assert summary.steps["after"].status == "succeeded"
    assert not target.exists()


def test_ctrl_c_records_the_interruption_keeps_the_approval_waiting_and_says_how_to_resume(tmp_path: Path) -> None:
    approvers = tmp_path / "approvers.yaml"
    approvers.write_text(yaml.safe_dump({"groups": {"ml-security": ["alice"]}}))
    steps = [
        {"id": "approve", "action": "approval", "with": {"approvers": ["group:ml-security"], "timeout": "10m"}},
        {"id": "after", "action": "log", "with": {"message": "approved"}},
    ]
    book = write_playbook(tmp_path, steps)
    env = {**os.environ, "FIRELINE_RUNS_DIR": str(tmp_path / "runs"), "FIRELINE_HOME": str(tmp_path / "home"),
           "FIRELINE_APPROVERS_FILE": str(approvers)}  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-m", "flows", "run", str(book), "--as", "bob", "--local"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    runs = tmp_path / "runs"
    deadline = time.monotonic() + 60
    run_dir = None
    while time.monotonic() < deadline and child.poll() is None:
        found = list(runs.glob("*/run.json")) if runs.is_dir() else []
        if found and json.loads(found[0].read_text() or "{}").get("waiting") == ["approve"]:
            run_dir = found[0].parent
            break
        time.sleep(0.05)  # polling the target file, not synchronising on time
    assert run_dir is not None, child.communicate()
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert f"fireline resume {run_dir.name}" in err
    data = run_json(run_dir)
    assert (data["status"], data["outcome"], data["waiting"]) == ("crashed", "interrupted", ["approve"])
    (interrupted,) = events(run_dir, "run.interrupted")
    assert interrupted["detail"]["waiting"] == ["approve"]
    approve = subprocess.run(
        [sys.executable, "-m", "flows", "approve", run_dir.name, "approve", "--as", "alice"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    # The step is still waiting: the answer reaches the approver checks (which may ask who the OS user is).
    assert "not waiting" not in approve.stderr


def test_a_playbook_of_aliases_to_long_text_is_refused_before_a_dry_run(tmp_path: Path) -> None:
    from flows.errors import SpecError

    long = "x" * 60_000  # an 80 KB file whose aliases would expand to 12 MB of text
    path = tmp_path / "playbooks" / "bomb.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(
        "apiVersion: fireline/v1\nkind: Playbook\nmetadata: {name: bomb, version: 1, title: t}\n"
        f"x-text: &t {long}\nsteps:\n  - id: say\n    action: log\n    with:\n"
        f"      message: [{', '.join(['*t'] * 200)}]\n"
    )
    settings = make_settings(tmp_path)
    with pytest.raises(SpecError, match="E106"):
        run_playbook(path, settings=settings, registry=make_registry(), mode="dry-run")
    assert not settings.runs_dir.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ("groups: [unclosed\n", "approvers.yaml:2:1: the approvers file is not valid YAML"),
     ("groups: {sec: alice}\n", "expected 'groups")],
    ids=["missing", "malformed", "wrong-shape"],
)  # fmt: skip
def test_a_bad_approvers_file_refuses_the_run_before_it_starts(
    tmp_path: Path, content: str | None, message: str
) -> None:
    from flows.errors import ConfigError

    approvers = tmp_path / "approvers.yaml"
    if content is not None:
        approvers.write_text(content)
    settings = make_settings(tmp_path).model_copy(update={"approvers_file": approvers})
    steps = [{"id": "ok", "action": "approval", "with": {"approvers": ["group:sec"], "timeout": "1s"}}]
    with pytest.raises(ConfigError, match=message):
        run_playbook(write_playbook(tmp_path, steps), settings=settings, registry=make_registry())
    assert not settings.runs_dir.exists() or list(settings.runs_dir.iterdir()) == []


def test_a_playbook_is_parsed_once_per_content_and_again_once_edited(tmp_path: Path) -> None:
    from flows.engine.requests import resolve_playbook

    settings = make_settings(tmp_path)
    path = _book(tmp_path)
    first, again = resolve_playbook(path, settings), resolve_playbook(path, settings)
    assert again.playbook is first.playbook  # parsed once: a warm server resolves it several times per run
    edited = path.read_text().replace("{{ inputs.name }}", "edited {{ inputs.name }}")
    path.write_text(edited)  # same path, perhaps the same mtime: the bytes decide
    changed = resolve_playbook(path, settings)
    assert changed.playbook is not first.playbook
    assert changed.sha256 != first.sha256
    assert changed.playbook.steps[0].with_["message"].startswith("edited")


def test_the_engine_warm_up_leaves_nothing_behind(tmp_path: Path) -> None:
    from flows.engine.serve import _warm_engine

    settings = make_settings(tmp_path)
    assert _warm_engine(settings) > 0
    assert not settings.runs_dir.exists()  # its run went to a scratch directory, removed after
    assert list_runs(settings) == []


def test_the_engine_warm_up_does_not_stop_serve_on_a_configuration_every_run_refuses(tmp_path: Path) -> None:
    from flows.engine.serve import _warm_engine

    settings = make_settings(tmp_path).model_copy(update={"approvers_file": tmp_path / "missing.yaml"})
    with pytest.raises(ConfigError, match="no such file"):  # what each run says
        run_playbook(_book(tmp_path), inputs={"name": "x"}, mode="dry-run", settings=settings)
    assert _warm_engine(settings) > 0  # serve still starts; its runs refuse, one line each
