"""Fixtures of the AWS tests: the shared moto server (see tests/fixtures/moto.py)."""

from tests.fixtures.moto import aws, moto, moto_server

__all__ = ["aws", "moto", "moto_server"]
