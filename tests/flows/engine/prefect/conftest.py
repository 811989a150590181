"""Fixtures of the Prefect layer's tests: the session runtime and small playbooks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.prefect import prefect_session

__all__ = ["prefect_session"]

PARALLEL = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: prefect-check, version: 1, title: Prefect layer check}
steps:
  - id: left
    action: wait
    needs: []
    with: {duration: 600ms}
  - id: right
    action: wait
    needs: []
    with: {duration: 600ms}
  - id: each
    action: log
    needs: [left, right]
    for_each: ["a", "b"]
    with: {message: "item {{ item }}"}
    retries: {attempts: 3, initial: 1s}
    timeout: 30s
"""


@pytest.fixture
def parallel_playbook(tmp_path: Path) -> Path:
    path = tmp_path / "prefect-check.yaml"
    path.write_text(PARALLEL, encoding="utf-8")
    return path


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    """Poll ``predicate`` every 0.1 s until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
