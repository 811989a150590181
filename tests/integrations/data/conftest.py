"""Fixtures of the training-data incident tests: moto (in-process and loopback) and the real MLflow server."""

from __future__ import annotations

import pytest

from tests.fixtures.mlflow import launch_if_needed
from tests.fixtures.mlflow import mlflow_server as mlflow_server  # a session fixture
from tests.fixtures.moto import aws as aws  # the loopback moto server, reset per test
from tests.fixtures.moto import moto as moto  # the session's loopback moto server


def pytest_collection_finish(session: pytest.Session) -> None:
    launch_if_needed(session)
