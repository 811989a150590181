"""Fixtures of the model registry tests."""

from tests.fixtures.mlflow import mlflow_server  # noqa: F401  (a session fixture)
