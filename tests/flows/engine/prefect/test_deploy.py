"""``fireline deploy`` registers ``respond`` on a work pool; a real Prefect process worker runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest

from flows.cli import main
from tests.fixtures.prefect import PrefectSession
from tests.flows.engine.prefect.conftest import PARALLEL


def test_deploy_without_a_server_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "prefect.api_url" in err


@pytest.mark.prefect
@pytest.mark.slow
def test_deployment_runs_on_a_process_worker(
    prefect_session: PrefectSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("FIRELINE_PREFECT_API_URL", prefect_session.api_url)
    monkeypatch.setenv("FIRELINE_PREFECT_WORK_POOL", "fireline-test")
    assert main(["deploy", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["deployment"] == "respond/fireline-respond"
    assert result["work_pool"] == "fireline-test"

    playbook = tmp_path / "prefect-check.yaml"
    playbook.write_text(PARALLEL, encoding="utf-8")
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(result["deployment_id"])
        assert deployment.entrypoint == "flows.engine.prefect_flow.respond"
        assert deployment.parameter_openapi_schema is not None
        assert set(deployment.parameter_openapi_schema["properties"]) >= {
            "playbook",
            "alert",
            "mode",
            "run_id",
            "inputs",
        }
        from prefect.exceptions import PrefectHTTPStatusError

        with pytest.raises(PrefectHTTPStatusError, match="yolo"):  # mode is an enum the server enforces
            client.create_flow_run_from_deployment(deployment.id, parameters={"playbook": "x", "mode": "yolo"})
        flow_run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"playbook": str(playbook), "mode": "dry-run", "run_id": "from-a-worker"}
        )
    runs_dir = Path(os.environ["FIRELINE_RUNS_DIR"])
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_session.api_url,
        "PREFECT_HOME": str(tmp_path / "worker-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            "fireline-test",
            "--type",
            "process",
            "--run-once",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(flow_run.id).state
            if (state is not None and state.is_final()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert state is not None
    assert state.is_completed(), (state, worker.stdout[-2000:], worker.stderr[-2000:])
    doc = json.loads((runs_dir / "from-a-worker" / "run.json").read_text(encoding="utf-8"))
    assert doc["outcome"] == "succeeded"
    assert doc["mode"] == "dry-run"


@pytest.mark.prefect
def test_serve_in_deployed_mode_creates_flow_runs_for_workers(prefect_session: PrefectSession, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from flows.config import PrefectSettings
    from flows.engine.prefect_deploy import register_deployment
    from flows.engine.serve import RunManager, RunRequest
    from flows.errors import RunError

    settings = prefect_session.settings_for(
        tmp_path, prefect=PrefectSettings(api_url=prefect_session.api_url, work_pool="fireline-serve-test")
    )
    deployed = register_deployment(settings, name="deployed-serve")
    playbook = tmp_path / "prefect-check.yaml"
    playbook.write_text(PARALLEL, encoding="utf-8")

    manager = RunManager(settings, deployment=deployed["deployment"])
    slot = manager.start(RunRequest(playbook=str(playbook), mode="dry-run"))
    assert slot.status == "submitted"
    assert slot.flow_run_id is not None
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(slot.flow_run_id))
    assert str(flow_run.deployment_id) == deployed["deployment_id"]
    assert flow_run.parameters["run_id"] == slot.run_id
    assert flow_run.parameters["mode"] == "dry-run"
    assert {"fireline", f"run:{slot.run_id}", "playbook:prefect-check"} <= set(flow_run.tags)
    checked = manager.get(slot.run_id)
    assert checked is not None
    assert checked.status == "submitted"  # no worker polls this pool: it stays scheduled

    with pytest.raises(RunError, match="no deployment"):
        RunManager(settings, deployment="respond/missing").start(RunRequest(playbook=str(playbook)))
