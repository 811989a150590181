"""Fixtures of the model registry tests."""

from __future__ import annotations

import pytest

from tests.fixtures.mlflow import launch_if_needed
from tests.fixtures.mlflow import mlflow_server as mlflow_server  # a session fixture


def pytest_collection_finish(session: pytest.Session) -> None:
    launch_if_needed(session)
