"""A SIGKILLed process leaves no Prefect server behind, and its RUNNING flow run is marked Crashed.

Two subprocesses run side by side to keep the test short: one owns an embedded server (killed, the
server must die with it), the other drives a flow run on the session server (killed mid-step, its
flow run must be marked Crashed by the next start-up's sweep).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flows.config import PrefectSettings, Settings
from flows.engine.prefect_env import mark_crashed_flow_runs, prefect_home
from flows.engine.prefect_server import default_template_dir, prepare_database, process_alive
from tests.fixtures.prefect import PrefectSession
from tests.flows.engine.prefect.conftest import wait_for

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

SLOW = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: slow-one, version: 1, title: Waits long enough to be killed}
steps:
  - {id: hold, action: wait, with: {duration: 60s}}
"""

OWNER = """
import sys, time
from pathlib import Path
from flows.engine.prefect_server import start_server
start_server(Path(sys.argv[1]))
time.sleep(120)
"""

DRIVER = """
import sys
from pathlib import Path
from flows.config import PrefectSettings, Settings
from flows.engine.prefect_flow import run_with_prefect
settings = Settings(home=Path(sys.argv[1]), runs_dir=Path(sys.argv[2]), prefect=PrefectSettings(api_url=sys.argv[4]))
run_with_prefect(sys.argv[3], settings=settings, run_id="killed-run")
"""


def _server_pid(home: Path) -> int | None:
    for record in (home / "servers").glob("*.json"):
        doc = json.loads(record.read_text())
        if process_alive(doc["pid"], None):
            return int(doc["pid"])
    return None


def test_killed_process_leaves_no_server_and_its_flow_run_is_marked_crashed(
    prefect_session: PrefectSession, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    settings = Settings(home=tmp_path / "home", runs_dir=tmp_path / "runs", prefect=PrefectSettings())
    home = prefect_home(settings)
    prepare_database(home, template=default_template_dir())
    playbook = tmp_path / "slow.yaml"
    playbook.write_text(SLOW, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(home)], env=env, stderr=subprocess.DEVNULL)
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            DRIVER,
            str(settings.home),
            str(settings.runs_dir),
            str(playbook),
            prefect_session.api_url,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        events = settings.runs_dir / "killed-run" / "events.jsonl"
        wait_for(lambda: events.exists() and b'"step.started"' in events.read_bytes(), 60, "the step to start")
        server_pid = wait_for(lambda: _server_pid(home), 60, "the embedded server to start")
    finally:
        for process in (owner, driver):
            process.send_signal(signal.SIGKILL)
            process.wait()
    # PR_SET_PDEATHSIG: the kernel stops the server when its owner dies, even by SIGKILL.
    wait_for(lambda: not process_alive(server_pid, None), 10, "the orphaned server to stop")

    marked = mark_crashed_flow_runs()  # what every start-up of the runtime does
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["run:killed-run"])))
    assert [r.state.type.value for r in runs if r.state] == ["CRASHED"]
    assert str(runs[0].id) in marked
    assert mark_crashed_flow_runs() == []  # a second sweep finds nothing left to mark
