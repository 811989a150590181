"""``fireline serve`` end to end, and the client side of the handoff."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.config import Settings
from flows.engine.handoff import STATE_FILE, serve_status, try_handoff, wait_for_run, write_state
from flows.engine.prefect_server import process_alive
from flows.engine.runs import detect_crash
from tests.flows.engine.prefect.conftest import PARALLEL, wait_for

ALERTED = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: alert-check, version: 1, title: Started by an alert}
triggers:
  - {source: generic, match: {alertname: ServeCheck}}
steps:
  - {id: note, action: log, with: {message: "host {{ alert.labels.host }}"}}
"""

SLOW = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: slow-one, version: 1, title: Still running when serve stops}
steps:
  - {id: hold, action: wait, with: {duration: 60s}}
"""


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


@pytest.mark.prefect
@pytest.mark.slow
@pytest.mark.e2e
def test_serve_runs_a_handed_over_playbook_and_stops_cleanly(tmp_path: Path) -> None:
    from flows.engine.prefect_env import prefect_home
    from flows.engine.prefect_server import default_template_dir, prepare_database

    settings = _settings(tmp_path)
    settings.playbooks_dir.mkdir(parents=True)
    (settings.playbooks_dir / "prefect-check.yaml").write_text(PARALLEL, encoding="utf-8")
    (settings.playbooks_dir / "slow-one.yaml").write_text(SLOW, encoding="utf-8")
    (settings.playbooks_dir / "alert-check.yaml").write_text(ALERTED, encoding="utf-8")
    prepare_database(prefect_home(settings), template=default_template_dir())
    env = {
        **os.environ,
        "FIRELINE_HOME": str(settings.home),
        "FIRELINE_RUNS_DIR": str(settings.runs_dir),
        "FIRELINE_PLAYBOOKS_DIR": str(settings.playbooks_dir),
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "flows", "serve", "--port", "0", "--grace", "1", "--ui", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        state = wait_for(lambda: serve.poll() is not None or serve_status(settings), 60, "serve to start")
        assert serve.poll() is None, serve.stderr.read() if serve.stderr else ""
        servers = list((prefect_home(settings) / "servers").glob("*.json"))
        prefect_pid = json.loads(servers[0].read_text())["pid"]

        ui = httpx.get(state["prefect_api_url"].removesuffix("/api") + "/ui-settings", timeout=10).json()
        assert ui["api_url"] == state["prefect_api_url"]  # the Prefect UI is served and points at this server

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
        with pytest.raises(Exception, match=r"refused the run: .*nope"):
            try_handoff({"playbook": "prefect-check", "inputs": {"nope": "1"}}, settings)

        # The alert receiver is mounted on the same server: an alert starts a respond flow run.
        base = f"http://127.0.0.1:{state['port']}"
        posted = httpx.post(f"{base}/alerts/generic", json={"labels": {"alertname": "ServeCheck", "host": "h1"}})
        assert posted.status_code == 202, posted.text
        assert httpx.post(f"{base}/alerts/nagios", json={}).status_code == 404

        def alert_run() -> dict[str, object] | None:
            # The run starts before its flow run, which attaches (trigger.flow_run_id) when it is created.
            for found in settings.runs_dir.glob("*-alert-check-*/run.json"):
                doc = json.loads(found.read_text())
                return doc if doc.get("status") == "finished" and doc["trigger"].get("flow_run_id") else None
            return None

        alerted = wait_for(alert_run, 60, "the alert's run")
        assert alerted["outcome"] == "succeeded"
        assert alerted["trigger"]["how"] == "alert"
        assert alerted["trigger"]["flow_run_id"]  # a Prefect flow run
        metrics = httpx.get(f"{base}/metrics").text
        assert 'fireline_alerts_total{outcome="started",source="generic"} 1.0' in metrics
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"

        slow = try_handoff({"playbook": "slow-one"}, settings)
        assert slow is not None
        slow_events = Path(slow["run_dir"]) / "events.jsonl"
        wait_for(lambda: slow_events.exists() and b'"step.started"' in slow_events.read_bytes(), 30, "slow step")
    finally:
        serve.send_signal(signal.SIGTERM)
        out, err = serve.communicate(timeout=30)
    assert serve.returncode == 0, err
    # The run still going after the grace period is named, and left resumable (its owner is gone).
    assert f"interrupted, resume them with fireline resume: {slow['run_id']}" in err
    assert detect_crash(Path(slow["run_dir"]))
    assert json.loads(out)["port"] == state["port"]
    assert not (settings.home / STATE_FILE).exists()
    wait_for(lambda: not process_alive(prefect_pid, None), 10, "the Prefect server to stop")


def test_follow_run_yields_events_until_the_run_ends(tmp_path: Path) -> None:
    import threading

    from flows.engine.handoff import follow_run
    from flows.record.store import RunRecord

    record = RunRecord(tmp_path / "run-1", fsync=False)
    record.write_run({"status": "running"})
    record.emit("run.started")

    def finish() -> None:
        for step in ("a", "b"):
            time.sleep(0.05)
            record.emit("step.started", step=step)
        record.emit("run.finished")
        record.update_run(status="finished", outcome="succeeded")

    writer = threading.Thread(target=finish)
    writer.start()
    seen = [(e["type"], e["step"]) for e in follow_run(record.dir, timeout=10, poll=0.02)]
    writer.join()
    assert seen == [("run.started", None), ("step.started", "a"), ("step.started", "b"), ("run.finished", None)]
