"""A kill during escalation, then resume: no level is paged twice and the original deadlines hold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from flows.people.answers import submit_ack
from flows.people.identity import Identity
from flows.record.store import iso
from tests.conftest import REPO
from tests.flows.engine.engine_helpers import events
from tests.flows.people.helpers import T0, WAIT, FileClock, Receiver, settings, tree, wait_until, write_library


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "tests.flows.people.page_runner", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _has(run_dir: Path, type_: str) -> bool:
    return (run_dir / "events.jsonl").exists() and bool(events(run_dir, type_))


def test_kill_at_level_1_then_resume_keeps_the_deadline_and_never_repages(tmp_path: Path, hooks: Receiver) -> None:
    levels = [{"targets": [f"webhook:secret:HOOK_L{i}"], "ack_timeout": "5m"} for i in range(3)]
    book = write_library(tmp_path, tree(levels))
    clock = FileClock(tmp_path / "clock")
    clock.set(T0)
    run_id = "killed-page"
    run_dir = settings(tmp_path).runs_dir / run_id
    child = _spawn("run", str(tmp_path), run_id, str(clock.path), str(book))
    try:
        hooks.wait_for(lambda p: p == ["l0"], "level 0")
        clock.set(T0 + 301)  # level 0's ack_timeout has passed: level 1 is paged at T0+301, due T0+601
        hooks.wait_for(lambda p: p == ["l0", "l1"], "level 1")
        child.send_signal(signal.SIGKILL)
        child.wait(WAIT)
    finally:
        child.kill()
    clock.set(T0 + 450)  # resumed before level 1's deadline: a restarted clock would move it to T0+750
    resumed = _spawn("resume", str(tmp_path), run_id, str(clock.path))
    try:
        wait_until(lambda: _has(run_dir, "page.resumed"), "the resumed page")
        note = events(run_dir, "page.resumed")[0]["detail"]
        assert (note["level"], note["deadline"]) == (1, iso(datetime.fromtimestamp(T0 + 601, UTC)))
        clock.set(T0 + 601)  # the original deadline: level 2 is paged now, not at T0+750
        hooks.wait_for(lambda p: p == ["l0", "l1", "l2"], "level 2 on level 1's original deadline")
        receipt = submit_ack(run_dir, Identity("alice", "script", "script"), settings(tmp_path))
        assert receipt.accepted
        _, err = resumed.communicate(timeout=WAIT)
    finally:
        resumed.kill()
    assert resumed.returncode == 0, err.decode()[-2000:]
    assert hooks.paths() == ["l0", "l1", "l2"]  # level 0 and level 1 were each paged exactly once
    assert [e["detail"]["level"] for e in events(run_dir, "page.acked")] == [2]
