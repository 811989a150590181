"""Drill tests: the shared moto server and loopback Slack (one each per session) for the fidelity tests."""

from tests.fixtures.moto import aws, moto, moto_server
from tests.fixtures.slack_fake import slack, slack_loopback

__all__ = ["aws", "moto", "moto_server", "slack", "slack_loopback"]
