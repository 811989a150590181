"""A real Prometheus Alertmanager delivers a firing group, then its resolution, to the receiver.

Exactly one run starts, with both alerts of the group in it, and the resolution is recorded against
that run. The receiver and dispatcher run here on loopback (uvicorn in a thread; runs go to the
engine in-process, the Prefect layer has tests of its own). Under ``CI=true`` a missing
``prometheus-alertmanager`` fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flows.triggers.config import SourceSettings, TriggersSettings
from flows.triggers.dispatcher import Dispatcher
from flows.triggers.receiver import Receiver, routes
from flows.triggers.routing import load_library
from flows.triggers.spool import Spool
from tests.flows.triggers.test_dispatcher import EngineStarter

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
TOKEN = "am-token"
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def receiver_url(tmp_path: Path, library: Path) -> Iterator[tuple[str, EngineStarter, Spool]]:
    import uvicorn
    from starlette.applications import Starlette

    settings = TriggersSettings(sources={"alertmanager": SourceSettings(auth="bearer", secret=SecretStr(TOKEN))})
    spool = Spool(tmp_path / "spool.db")
    receiver = Receiver(settings, spool, load_library(library))
    starter = EngineStarter(tmp_path / "runs")
    dispatcher = Dispatcher(spool, starter, playbooks_dir=library, runs_dir=tmp_path / "runs")
    dispatcher.start()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=routes(receiver)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "the receiver to listen")
    yield f"http://127.0.0.1:{port}", starter, spool
    server.should_exit = True
    thread.join(10)
    dispatcher.stop()
    starter.join()
    spool.close()


@pytest.fixture
def alertmanager(tmp_path: Path, receiver_url: tuple[str, EngineStarter, Spool]) -> Iterator[str]:
    if BINARY is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
        pytest.skip("prometheus-alertmanager is not installed")
    url = receiver_url[0]
    config = tmp_path / "alertmanager.yml"
    config.write_text(f"""
global: {{resolve_timeout: 5m}}
route:
  receiver: fireline
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: fireline
    webhook_configs:
      - url: {url}/alerts/alertmanager
        send_resolved: true
        http_config: {{authorization: {{credentials: {TOKEN}}}}}
""")
    port = free_port()
    proc = subprocess.Popen(
        [BINARY, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{api}/-/ready"), 60, "Alertmanager to be ready")
        yield api
    finally:
        proc.terminate()
        proc.wait(20)


def _get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _post_alerts(api: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{api}/api/v2/alerts", data=json.dumps(alerts).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _alerts(ends: str | None = None) -> list[dict[str, Any]]:
    out = []
    for host in ("i-0aaa", "i-0bbb"):
        alert: dict[str, Any] = {
            "labels": {"alertname": "GroupEgress", "severity": "critical", "instance_id": host},
            "annotations": {"summary": f"egress from {host}"},
        }
        if ends is not None:
            alert["endsAt"] = ends
        out.append(alert)
    return out


def test_firing_group_then_resolution_from_a_real_alertmanager(
    alertmanager: str, receiver_url: tuple[str, EngineStarter, Spool]
) -> None:
    _, starter, _spool = receiver_url
    _post_alerts(alertmanager, _alerts())
    wait_for(lambda: starter.started, 90, "the firing group to start a run")
    (run_id,) = starter.started
    run_dir = starter.runs_dir / run_id
    wait_for(lambda: (run_dir / "run.json").exists() and json.loads((run_dir / "run.json").read_text())
             .get("status") == "finished", 90, "the run to finish")  # fmt: skip
    doc = json.loads((run_dir / "run.json").read_text())
    assert sorted(a["labels"]["instance_id"] for a in doc["alerts"]) == ["i-0aaa", "i-0bbb"]
    assert doc["alert"]["raw"]["receiver"] == "fireline"

    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    _post_alerts(alertmanager, _alerts(ends=now))

    def resolved() -> list[dict[str, Any]]:
        lines = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
        return [e for e in lines if e["type"] == "alert.resolved"]

    def recorded() -> bool:
        # run.json is the append's last write, after the events: until then the chain runs ahead of it
        doc = json.loads((run_dir / "run.json").read_text())
        return len(doc.get("alerts_resolved", [])) >= 2

    wait_for(recorded, 90, "the resolution to reach run.json")
    events = resolved()
    assert len(events) == 2
    assert sorted(e["detail"]["alert"]["labels"]["instance_id"] for e in events) == ["i-0aaa", "i-0bbb"]
    assert starter.started == [run_id]  # the resolution started nothing
    assert sorted(p.name for p in starter.runs_dir.iterdir()) == [run_id]
    from flows.record.store import RunRecord

    assert RunRecord(run_dir).verify() == []
