"""A SIGKILLed CLI leaves no Prefect server behind, and its RUNNING flow run is marked Crashed at the next start."""

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
from flows.engine.prefect_env import (
    default_template_dir,
    prefect_home,
    prefect_runtime,
    prepare_database,
    process_alive,
)

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

SLOW = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: slow-one, version: 1, title: Waits long enough to be killed}
steps:
  - {id: hold, action: wait, with: {duration: 60s}}
"""

DRIVER = """
import sys
from pathlib import Path
from flows.config import Settings
from flows.engine.prefect_flow import run_with_prefect
settings = Settings(home=Path(sys.argv[1]), runs_dir=Path(sys.argv[2]))
run_with_prefect(sys.argv[3], settings=settings, run_id="killed-run")
"""


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _server_pid(home: Path) -> int | None:
    for record in (home / "servers").glob("*.json"):
        return int(json.loads(record.read_text())["pid"])
    return None


def test_killed_cli_leaves_no_server_and_its_flow_run_is_marked_crashed(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", runs_dir=tmp_path / "runs")
    home = prefect_home(settings)
    prepare_database(home, template=default_template_dir())
    playbook = tmp_path / "slow.yaml"
    playbook.write_text(SLOW, encoding="utf-8")
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(settings.home), str(settings.runs_dir), str(playbook)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        events = settings.runs_dir / "killed-run" / "events.jsonl"
        _wait_for(lambda: events.exists() and b'"step.started"' in events.read_bytes(), 60, "the step to start")
        server_pid = _server_pid(home)
        assert server_pid is not None
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    # PR_SET_PDEATHSIG: the kernel stops the server when its owner dies, even by SIGKILL.
    _wait_for(lambda: not process_alive(server_pid, None), 10, "the orphaned server to stop")

    with prefect_runtime(settings) as runtime:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

        assert len(runtime.crashed_marked) == 1
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["run:killed-run"])))
        assert [r.state.type.value for r in runs if r.state] == ["CRASHED"]
        assert str(runs[0].id) in runtime.crashed_marked
