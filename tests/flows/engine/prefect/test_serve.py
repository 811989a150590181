"""``fireline serve`` end to end, and the client side of the handoff."""

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

from flows.config import Settings
from flows.engine.handoff import serve_status, try_handoff, wait_for_run
from flows.engine.prefect_env import process_alive
from flows.engine.handoff import STATE_FILE, write_state
from tests.flows.engine.prefect.conftest import PARALLEL


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", runs_dir=tmp_path / "runs", playbooks_dir=tmp_path / "playbooks")


def test_no_server_means_none_and_costs_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    started = time.perf_counter()
    assert try_handoff({"playbook": "x"}, settings) is None
    assert (time.perf_counter() - started) < 0.02


def test_stale_state_file_is_ignored(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    write_state(settings.home / STATE_FILE, {"pid": int(dead.stdout), "start": None, "port": 9, "token": "t"})
    assert (settings.home / STATE_FILE).stat().st_mode & 0o777 == 0o600
    started = time.perf_counter()
    assert try_handoff({"playbook": "x"}, settings) is None
    assert (time.perf_counter() - started) < 0.02
    assert serve_status(settings) is None


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.prefect
@pytest.mark.slow
@pytest.mark.e2e
def test_serve_runs_a_handed_over_playbook_and_stops_cleanly(tmp_path: Path) -> None:
    from flows.engine.prefect_env import default_template_dir, prefect_home, prepare_database

    settings = _settings(tmp_path)
    settings.playbooks_dir.mkdir(parents=True)
    (settings.playbooks_dir / "prefect-check.yaml").write_text(PARALLEL, encoding="utf-8")
    prepare_database(prefect_home(settings), template=default_template_dir())
    env = {
        **os.environ,
        "FIRELINE_HOME": str(settings.home),
        "FIRELINE_RUNS_DIR": str(settings.runs_dir),
        "FIRELINE_PLAYBOOKS_DIR": str(settings.playbooks_dir),
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "flows", "serve", "--port", "0", "--grace", "5", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        state = _wait_for(lambda: serve.poll() is not None or serve_status(settings), 60, "serve to start")
        assert serve.poll() is None, serve.stderr.read() if serve.stderr else ""
        servers = list((prefect_home(settings) / "servers").glob("*.json"))
        prefect_pid = json.loads(servers[0].read_text())["pid"]

        answer = try_handoff({"playbook": "prefect-check", "mode": "live"}, settings)
        assert answer is not None
        assert answer["status"] in ("accepted", "running")
        run_dir = Path(answer["run_dir"])
        assert run_dir == (settings.runs_dir / answer["run_id"]).resolve()
        doc = wait_for_run(run_dir, timeout=30)
        assert doc["outcome"] == "succeeded"
        assert state["pid"] == serve.pid

        with pytest.raises(Exception, match="refused the run"):
            try_handoff({"playbook": "no-such-playbook"}, settings)
    finally:
        serve.send_signal(signal.SIGTERM)
        out, err = serve.communicate(timeout=30)
    assert serve.returncode == 0, err
    assert json.loads(out)["port"] == state["port"]
    assert not (settings.home / STATE_FILE).exists()
    _wait_for(lambda: not process_alive(prefect_pid, None), 10, "the Prefect server to stop")
