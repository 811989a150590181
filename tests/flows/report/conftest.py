"""Shared fixtures of the report tests: the fixed run records of ``tests/data/run-records/``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.slack_fake import slack, slack_loopback

__all__ = ["CASES", "NOW", "RUNS", "record", "slack", "slack_loopback"]

RUNS = Path(__file__).resolve().parents[2] / "data" / "run-records"
CASES = sorted(p.name for p in RUNS.iterdir() if (p / "run.json").is_file())
NOW = "2026-12-01T09:00:00.000000Z"  # the report time of every golden report


@pytest.fixture
def record(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A writable copy of the fixed record named by the test's ``case`` parameter."""
    target = tmp_path / str(request.param)
    shutil.copytree(RUNS / str(request.param), target)
    return target
