"""The WebClient factory and pacing, against the loopback Slack Web API with the real WebClient."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.errors import ConfigError
from integrations.slack.client import Pacer, SlackCallError, build_web_client, connection, resolve_secret
from tests.fixtures.slack_fake import SlackEnv


def test_the_real_web_client_talks_to_the_loopback(slack: SlackEnv, tmp_path: Path) -> None:
    conn = connection(slack.settings(tmp_path))
    channel = conn.call("conversations.create", name="inc-1")["channel"]
    conn.call("chat.postMessage", channel=channel["id"], text="hello")
    assert [m.text for m in slack.workspace.history("inc-1")] == ["hello"]
    assert [r.method for r in slack.workspace.posted()] == ["conversations.create", "chat.postMessage"]


def test_a_wrong_token_is_an_error_naming_slacks_code(slack: SlackEnv, tmp_path: Path) -> None:
    conn = connection(slack.settings(tmp_path, token="xoxb-wrong"))
    with pytest.raises(SlackCallError, match="invalid_auth") as caught:
        conn.call("conversations.create", name="inc-1")
    assert caught.value.slack_code == "invalid_auth"
    assert slack.workspace.channels == {}


def test_token_as_a_secret_reference(slack: SlackEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-loopback")
    assert resolve_secret("secret:SLACK_BOT_TOKEN", "token") == "xoxb-loopback"
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    with pytest.raises(ConfigError, match=r"slack\.token: secret 'SLACK_BOT_TOKEN' is not set"):
        build_web_client(slack.settings(tmp_path, token="secret:SLACK_BOT_TOKEN"))


def test_without_a_token_the_factory_refuses(slack: SlackEnv, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"slack\.token is not set"):
        build_web_client(slack.settings(tmp_path, token=None))


def test_a_429_is_waited_out_and_the_message_arrives_once(slack: SlackEnv, tmp_path: Path) -> None:
    conn = connection(slack.settings(tmp_path))
    cid = conn.call("conversations.create", name="inc-1")["channel"]["id"]
    # More 429s than RateLimitErrorRetryHandler retries: the connection waits Retry-After itself.
    slack.workspace.rate_limit("chat.postMessage", times=4, retry_after=0)
    conn.call("chat.postMessage", channel=cid, text="after the storm")
    posts = slack.workspace.posted("chat.postMessage")
    assert [p.status for p in posts] == [429, 429, 429, 429, 200]
    assert [m.text for m in slack.workspace.history(cid)] == ["after the storm"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_spaces_messages_per_channel_not_across_channels() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, clock=clock, sleep=clock.sleep)
    times = []
    for channel in ["a", "a", "b", "a"]:
        pacer.wait_turn(channel)
        times.append((channel, clock.now))
    assert times == [("a", 0.0), ("a", 1.0), ("b", 1.0), ("a", 2.0)]
    pacer.hold("a", 5.0)
    pacer.wait_turn("a")
    assert clock.now == 7.0  # the last "a" went at 2.0; Retry-After 5 holds the channel until 7.0


def test_slack_settings_from_the_environment_and_the_file(tmp_path: Path) -> None:
    from flows.config import load_settings

    toml = tmp_path / "fireline.toml"
    toml.write_text(
        '[slack]\ntoken = "secret:BOT_TOKEN"\nsigning_secret = "secret:SIGNING"\ndrill_channel = "C0DRILL"\n'
    )
    environ = {"BOT_TOKEN": "xoxb-from-env", "SIGNING": "s3cr3t", "FIRELINE_SLACK_BASE_URL": "http://127.0.0.1:9/api/"}
    settings = load_settings(toml, environ)
    assert (settings.slack.token, settings.slack.signing_secret) == ("xoxb-from-env", "s3cr3t")
    assert settings.slack.base_url == "http://127.0.0.1:9/api/"
    assert settings.slack.drill_channel == "C0DRILL"
    overridden = load_settings(
        toml, {**environ, "FIRELINE_SLACK_TOKEN": "xoxb-direct", "FIRELINE_SLACK_SIGNING_SECRET": "x"}
    )
    assert overridden.slack.token == "xoxb-direct"
    with pytest.raises(ConfigError, match="SIGNING"):
        load_settings(toml, {"BOT_TOKEN": "xoxb-from-env"})
