"""Kill test: a live run SIGKILLed at 23 points, then resumed, applies every effect exactly once.

The counting action (``test.counter.bump``) records each effect at a target outside the process,
check-then-act under the idempotency key, and logs every call. Kill points: inside the action just
before or just after its effect (``FIRELINE_TEST_KILL_AT``, calls 1..10), and from outside once the
event log reaches a given number of lines. Runs and resumes are separate interpreters (46 of them,
four at a time), so every exit code is the operating system's own.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flows.engine.state import RunState
from flows.record.store import verify_events
from tests.flows.engine.engine_helpers import write_playbook

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]


def _book(tmp: Path, target: Path) -> Path:
    def bump(step_id: str, name: str, **extra: Any) -> dict[str, Any]:
        # A short pause after each effect keeps the run alive long enough for the outside killer.
        params = {"target": str(target), "name": name, "delay": 0.03}
        return {"id": step_id, "action": "test.counter.bump", "with": params, **extra}

    steps = [
        bump("s1", "a"),
        {**bump("s2", "{{ item }}"), "for_each": ["x", "y", "z"], "concurrency": 2},
        bump("s3", "p", needs=[]),
        bump("s4", "b", needs=["s2"]),
        {**bump("s5", "{{ item }}"), "for_each": ["m", "n"], "needs": ["s3", "s4"], "concurrency": 2},
        bump("s6", "c"),
        bump("s7", "d"),
    ]
    return write_playbook(tmp, steps, name="kill-book")


EFFECTS = 10  # apply calls of one full run: 1 + 3 + 1 + 1 + 2 + 1 + 1


class _Child:
    """A run or resume in its own interpreter, so its exit code is the operating system's own."""

    def __init__(self, args: list[str], kill_at: str | None) -> None:
        env = {k: v for k, v in os.environ.items() if k != "FIRELINE_TEST_KILL_AT"}
        if kill_at:
            env["FIRELINE_TEST_KILL_AT"] = kill_at
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.flows.engine.kill_runner", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
        )

    def is_alive(self) -> bool:
        return self._proc.poll() is None

    def kill(self) -> None:
        self._proc.kill()

    def join(self, timeout: float) -> None:
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    @property
    def exitcode(self) -> int | None:
        return self._proc.returncode


def _scenario(base: Path, point: tuple[str, str]) -> dict[str, Any]:
    kind, value = point
    tmp = base / f"{kind}-{value.replace(':', '-')}"
    target = tmp / "target"
    target.mkdir(parents=True)
    book = _book(tmp, target)
    run_dir = tmp / "runs" / "r"
    if kind == "action":
        proc = _Child(["run", str(tmp), "r", str(book)], value)
        proc.join(60)
    else:
        proc = _Child(["run", str(tmp), "r", str(book)], None)
        events = run_dir / "events.jsonl"
        deadline = time.monotonic() + 30
        while proc.is_alive() and time.monotonic() < deadline:
            if events.exists() and events.read_bytes().count(b"\n") >= int(value):
                proc.kill()
                break
            time.sleep(0.002)
        proc.join(60)
    killed = proc.exitcode == -signal.SIGKILL
    exit_code = proc.exitcode
    done_before = {p.name for p in (run_dir / "state" / "results").glob("*.json")} if run_dir.exists() else set()
    calls_before = len((target / "calls").read_text().splitlines()) if (target / "calls").exists() else 0
    resume = _Child(["resume", str(tmp), "r"], None)
    resume.join(60)
    return {
        "tmp": tmp,
        "target": target,
        "run_dir": run_dir,
        "killed": killed,
        "exit_code": exit_code,
        "resume_rc": resume.exitcode,
        "resume_out": "(child output is on the test's stderr)",
        "done_before": done_before,
        "calls_before": calls_before,
    }


POINTS = [("action", f"{n}:{phase}") for n in range(1, EFFECTS + 1) for phase in ("before", "after")]
POINTS += [("events", str(n)) for n in (3, 12, 20)]  # a full run writes 26 lines


def test_kill_anywhere_then_resume_applies_each_effect_once(tmp_path: Path) -> None:
    assert len(POINTS) >= 20
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: _scenario(tmp_path, p), POINTS))
    for point, r in zip(POINTS, results, strict=True):
        where = f"{point}: {r['resume_out'][-500:]}"
        assert r["killed"], f"{point}: the run was not killed (exit code {r['exit_code']})"
        assert r["resume_rc"] == 0, where
        data = json.loads((r["run_dir"] / "run.json").read_text())
        assert (data["status"], data["outcome"]) == ("finished", "succeeded"), where
        # Dot-files are staged copies a kill left behind before the atomic link made the effect.
        markers = sorted(m for m in (r["target"] / "effects").iterdir() if not m.name.startswith("."))
        keys = [json.loads(m.read_text())["key"] for m in markers]
        assert len(keys) == EFFECTS == len(set(keys)), f"{point}: effects {keys}"
        # Step-items completed before the kill were not applied again by the resume.
        calls = len((r["target"] / "calls").read_text().splitlines())
        assert calls - r["calls_before"] == EFFECTS - len(r["done_before"]), f"{point}: {calls=} {r}"
        saga_keys = {entry["idempotency_key"] for entry in RunState(r["run_dir"]).saga()}
        assert len(saga_keys) == EFFECTS, point
        assert (
            verify_events(r["run_dir"] / "events.jsonl", (data["events"]["count"], data["events"]["head_sha256"])) == []
        )
        types = [json.loads(line)["type"] for line in (r["run_dir"] / "events.jsonl").read_text().splitlines()]
        tail = [t for t in types if not t.startswith("report.")]  # the reports are written after the run ends
        assert (types.count("run.resumed"), tail[-1]) == (1, "run.finished"), point
