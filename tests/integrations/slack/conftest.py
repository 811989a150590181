"""Fixtures of the Slack tests: the loopback Slack Web API (see tests/fixtures/slack_fake.py)."""

from tests.fixtures.slack_fake import slack, slack_loopback

__all__ = ["slack", "slack_loopback"]
