"""Scale-out: alerts through the receiver's dispatcher become flow runs of the ``respond`` deployment.

20 alerts on 10 incident keys give exactly 10 flow runs (the incident key is Prefect's idempotency
key), run by two real ``prefect worker`` processes, each run with a complete run record. Once on a
real ``prefect server`` backed by PostgreSQL (127.0.0.1:5432, database ``test``, a fresh schema
dropped afterwards), once on the embedded SQLite server of the test session. Under ``CI=true`` a
missing PostgreSQL fails the test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.config import PrefectSettings, Settings
from flows.triggers.config import TriggersSettings
from tests.fixtures.prefect import PrefectSession

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BOOK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: scale-check, version: 1, title: Scale-out check}
triggers:
  - source: generic
    match: {alertname: ScaleOut}
    group_by: [service]
steps:
  - id: note
    action: log
    with: {message: "service {{ alert.labels.service }}, {{ alerts | length }} alert(s)"}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-v", "ON_ERROR_STOP=1", "-qc", sql],
                   check=True, capture_output=True, timeout=60)  # fmt: skip


@pytest.fixture(scope="session")
def postgres_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``prefect server`` on PostgreSQL, in a schema of its own, for the session."""
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432")
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    schema = f"fireline_scaleout_{os.getpid()}"
    # Schemas left by an interrupted session go first (with anything in them, such as an extension
    # that would then be missing from this session's search path); pg_trgm, which Prefect's
    # migrations need, lives in public, which follows this session's schema on the search path.
    listed = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-At", "-c",
         "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'fireline_scaleout_%'"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.split()  # fmt: skip
    stale = [name for name in listed if not Path(f"/proc/{name.rsplit('_', 1)[-1]}").exists()]
    drops = "".join(f"DROP SCHEMA IF EXISTS {name} CASCADE; " for name in stale)
    _psql(f"{drops}CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public; CREATE SCHEMA {schema}")
    home = tmp_path_factory.mktemp("prefect-pg")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": PG_URL,
        "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_SEARCH_PATH": f"{schema},public",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
        "PREFECT_LOGGING_SERVER_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        _wait(lambda: _healthy(api_url) or server.poll() is not None, 180, "prefect server on PostgreSQL")
        assert server.poll() is None, server.stderr.read().decode()[-2000:] if server.stderr else ""
        yield api_url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        _psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["postgres", "sqlite"])
def api_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_prefect"))
    session: PrefectSession = request.getfixturevalue("prefect_session")
    return session.api_url


def _workers(api_url: str, pool: str, tmp_path: Path, library: Path, runs: Path) -> list[subprocess.Popen[bytes]]:
    workers = []
    for name in ("w1", "w2"):
        env = {
            **os.environ,
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(tmp_path / f"{name}-home"),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "FIRELINE_RUNS_DIR": str(runs),
            "FIRELINE_PLAYBOOKS_DIR": str(library),
            "FIRELINE_HOME": str(tmp_path / f"{name}-fireline"),
        }
        cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
               "--name", f"{pool}-{name}", "--limit", "3"]  # fmt: skip
        workers.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return workers


def test_twenty_alerts_on_ten_keys_make_ten_runs_over_two_workers(api_url: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.engine.prefect_deploy import register_deployment
    from flows.engine.prefect_env import prefect_runtime
    from flows.engine.serve_runs import RunManager
    from flows.triggers.dispatcher import Dispatcher
    from flows.triggers.service import ManagerStarter
    from flows.triggers.spool import Spool

    library, runs = tmp_path / "library", tmp_path / "runs"
    library.mkdir()
    (library / "scale-check.yaml").write_text(BOOK)
    pool = f"scale-{os.getpid()}-{tmp_path.name[-12:]}".replace("_", "-")
    settings = Settings(
        home=tmp_path / "home", runs_dir=runs, playbooks_dir=library,
        prefect=PrefectSettings(api_url=api_url, work_pool=pool), triggers=TriggersSettings(mode="dry-run"),
    )  # fmt: skip
    deployed = register_deployment(settings, name=pool)
    workers = _workers(api_url, pool, tmp_path, library, runs)
    spool = Spool(tmp_path / "spool.db")
    try:
        with prefect_runtime(settings):
            manager = RunManager(settings, deployment=deployed["deployment"])
            dispatcher = Dispatcher(spool, ManagerStarter(manager, settings), playbooks_dir=library, runs_dir=runs)
            for round_ in range(2):
                for key in range(10):
                    alert = {"labels": {"alertname": "ScaleOut", "service": f"svc-{key}", "round": str(round_)}}
                    spool.append("generic", {"alerts": [{"source": "generic", **alert}], "raw": alert})
            dispatcher.drain()
            assert spool.depth() == 0
        with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
            flt = DeploymentFilter(id=DeploymentFilterId(any_=[deployed["deployment_id"]]))

            def finished() -> list[Any]:
                found = client.read_flow_runs(deployment_filter=flt, limit=50)
                return found if found and all(r.state is not None and r.state.is_final() for r in found) else []

            flow_runs = _wait(finished, 300, "the flow runs to finish on the workers")
        assert len(flow_runs) == 10
        assert all(r.state is not None and r.state.is_completed() for r in flow_runs), [r.state for r in flow_runs]
        parents = set()
        for flow_run in flow_runs:
            run_dir = runs / flow_run.parameters["run_id"]
            doc = json.loads((run_dir / "run.json").read_text())
            assert (doc["status"], doc["outcome"], doc["mode"]) == ("finished", "succeeded", "dry-run")
            kinds = [json.loads(line)["type"] for line in (run_dir / "events.jsonl").read_text().splitlines()]
            assert kinds[0] == "run.started"
            assert "run.finished" in kinds
            assert doc["trigger"]["idempotency_key"].endswith("#1")
            parents.add(doc["trigger"]["ran_on"]["parent_pid"])
        assert parents == {w.pid for w in workers}  # both workers ran some
        assert len({r.parameters["run_id"] for r in flow_runs}) == 10
        assert sorted(p.name for p in runs.iterdir()) == sorted(r.parameters["run_id"] for r in flow_runs)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        spool.close()
