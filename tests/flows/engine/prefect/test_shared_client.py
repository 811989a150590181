"""Runs handed to serve share one Prefect API client, and their flow runs still end in their true states."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from flows.engine.serve_runs import RunManager, RunRequest
from tests.fixtures.prefect import PrefectSession

pytestmark = pytest.mark.prefect

BOOK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: shared-client, version: 1, title: Shared client}
steps:
  - id: note
    action: log
    with: {message: "hello"}
"""


def test_concurrent_runs_share_one_client_and_complete(prefect_session: PrefectSession, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    book = tmp_path / "shared-client.yaml"
    book.write_text(BOOK)
    manager = RunManager(prefect_session.settings_for(tmp_path))
    slots = [manager.start(RunRequest(playbook=str(book), mode="dry-run")) for _ in range(3)]
    for slot in slots:
        assert slot.wait(300)  # a guard against a hang only
    assert [s.status for s in slots] == ["finished"] * 3, [s.error for s in slots]
    shared = manager._client
    assert shared is not None
    with get_client(sync_client=True) as client:
        for slot in slots:
            flt = FlowRunFilter(tags=FlowRunFilterTags(all_=[f"run:{slot.run_id}"]))
            (flow_run,) = client.read_flow_runs(flow_run_filter=flt, limit=5)
            assert flow_run.state is not None
            assert flow_run.state.is_completed()
    assert manager.shutdown(0.0, threading.Event()) == []
    assert shared.client._closed  # closed with the server once no run uses it
