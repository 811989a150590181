"""Fixtures of the AWS tests: the shared moto server (see tests/fixtures/moto.py), and the loopback
Slack Web API for the shipped playbooks' incident channel (see tests/fixtures/slack_fake.py)."""

from tests.fixtures.moto import aws, moto, moto_server
from tests.fixtures.slack_fake import slack, slack_loopback

__all__ = ["aws", "moto", "moto_server", "slack", "slack_loopback"]
