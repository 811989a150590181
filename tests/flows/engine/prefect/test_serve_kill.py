"""``fireline serve`` killed (SIGKILL) right after it answered 202 to an alert, then restarted: one run.

Wherever the kill lands (before the dispatcher took the batch, while the run was starting, after it
started), the restarted server ends with exactly one run for the incident: the spooled batch is
dispatched again, the incident's run id was committed before the start, and a run whose process
died is marked crashed (``fireline resume`` continues it), never started twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flows.config import Settings
from flows.engine.handoff import serve_status
from tests.flows.engine.prefect.conftest import wait_for

pytestmark = [pytest.mark.prefect, pytest.mark.slow, pytest.mark.e2e]

BOOK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: kill-check, version: 1, title: Started by an alert then serve is killed}
triggers:
  - {source: generic, match: {alertname: KillCheck}}
steps:
  - {id: contain, action: log, with: {message: "contain {{ alert.labels.host }}"}}
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    from flows.engine.prefect_env import prefect_home
    from flows.engine.prefect_server import default_template_dir, prepare_database

    settings = Settings(home=tmp_path / "home", runs_dir=tmp_path / "runs", playbooks_dir=tmp_path / "playbooks")
    settings.playbooks_dir.mkdir(parents=True)
    (settings.playbooks_dir / "kill-check.yaml").write_text(BOOK, encoding="utf-8")
    prepare_database(prefect_home(settings), template=default_template_dir())
    return settings


def _serve(settings: Settings) -> subprocess.Popen[str]:
    env = {**os.environ, "FIRELINE_HOME": str(settings.home), "FIRELINE_RUNS_DIR": str(settings.runs_dir),
           "FIRELINE_PLAYBOOKS_DIR": str(settings.playbooks_dir)}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "flows", "serve", "--port", "0", "--grace", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)


def test_killed_after_the_202_then_restarted_starts_the_run_once(
    settings: Settings, servers: list[subprocess.Popen[str]]
) -> None:
    first = _serve(settings)
    servers.append(first)
    state = wait_for(lambda: first.poll() is not None or serve_status(settings), 90, "serve to start")
    assert first.poll() is None, first.stderr.read() if first.stderr else ""
    answer = httpx.post(
        f"http://127.0.0.1:{state['port']}/alerts/generic", json={"labels": {"alertname": "KillCheck", "host": "h1"}}
    )
    os.kill(first.pid, signal.SIGKILL)  # right after the 202: the batch is only known to be spooled
    first.wait(30)
    assert answer.status_code == 202, answer.text

    second = _serve(settings)
    servers.append(second)
    wait_for(lambda: second.poll() is not None or serve_status(settings), 90, "serve to restart")
    assert second.poll() is None, second.stderr.read() if second.stderr else ""

    def settled() -> list[dict[str, object]]:
        docs = [json.loads(p.read_text()) for p in settings.runs_dir.glob("*/run.json")]
        return docs if docs and all(d.get("status") in ("finished", "crashed") for d in docs) else []

    try:
        docs = wait_for(settled, 90, "the alert's run to settle")
    except AssertionError:
        import sqlite3

        with sqlite3.connect(settings.home / "triggers" / "spool.db") as db:
            spool = [db.execute(q).fetchall() for q in ("SELECT id, state FROM batches", "SELECT * FROM incidents")]
        listing = {str(p.relative_to(settings.runs_dir)) for p in settings.runs_dir.rglob("*")}
        raise AssertionError(f"not settled: spool {spool}, runs {sorted(listing)[:20]}") from None
    assert len(docs) == 1, docs  # started exactly once, wherever the kill landed
    assert docs[0]["trigger"]["how"] == "alert"
    run_dirs = [p for p in settings.runs_dir.iterdir() if p.is_dir()]
    assert len(run_dirs) == 1
