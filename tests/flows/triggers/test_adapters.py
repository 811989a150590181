"""Every adapter keeps every field's meaning; hypothesis feeds each one arbitrary JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.triggers.adapters import detect, parse
from flows.triggers.adapters.sns import SnsVerifier
from flows.triggers.model import SOURCES, AlertError, AlertRefused
from tests.flows.triggers.conftest import CERT_URL, TOPIC, SnsCA, alarm_message, am_alert, am_payload


def test_alertmanager_group_yields_every_alert_and_the_truncated_count() -> None:
    payload = am_payload(am_alert("i-1", "f1"), am_alert("i-2", "f2"), am_alert("i-3", "f3", "resolved"), truncated=4)
    batch = parse("alertmanager", payload)
    assert [a.labels["instance_id"] for a in batch.firing] == ["i-1", "i-2"]
    assert [a.fingerprint for a in batch.resolved] == ["f3"]
    assert batch.truncated == 4
    assert batch.firing[0].ends_at is None  # Alertmanager's zero time
    assert batch.raw == payload
    assert batch.alerts[0].raw == payload
    assert detect(payload) == "alertmanager"


def test_grafana_keeps_its_group_and_title() -> None:
    payload = {**am_payload(am_alert("i-1", "g1"), am_alert("i-2", "g2")), "version": "1", "orgId": 1, "title": "T"}
    batch = parse("grafana", payload)
    assert detect(payload) == "grafana"
    assert [a.source for a in batch.alerts] == ["grafana", "grafana"]
    assert batch.notes["title"] == "T"


def test_datadog_recovery_is_resolved_and_scope_is_part_of_the_fingerprint() -> None:
    base = {"alert_id": "123", "title": "High error rate", "alert_transition": "Triggered", "tags": "env:prod,team:ml",
            "alert_scope": "host:a", "hostname": "a", "aggreg_key": "k1"}  # fmt: skip
    fired = parse("datadog", base).alerts[0]
    other_scope = parse("datadog", {**base, "alert_scope": "host:b"}).alerts[0]
    recovered = parse("datadog", {**base, "alert_transition": "Recovered"}).alerts[0]
    assert (fired.status, recovered.status) == ("firing", "resolved")
    assert fired.labels["env"] == "prod"
    assert fired.labels["alertname"] == "High error rate"
    assert fired.fingerprint == recovered.fingerprint != other_scope.fingerprint


def test_pagerduty_v3_and_events_v2() -> None:
    v3 = {"event": {"id": "e", "event_type": "incident.triggered", "occurred_at": "2026-11-27T00:58:00Z",
                    "data": {"id": "P1", "title": "GPU node down", "incident_key": "dd-1", "urgency": "high",
                             "service": {"summary": "inference"}, "number": 7}}}  # fmt: skip
    alert = parse("pagerduty", v3).alerts[0]
    assert (alert.status, alert.fingerprint, alert.labels["service"]) == ("firing", "dd-1", "inference")
    resolved = {"event": {**v3["event"], "event_type": "incident.resolved"}}
    assert parse("pagerduty", resolved).alerts[0].status == "resolved"
    assert parse("pagerduty", {"event": {**v3["event"], "event_type": "incident.acknowledged"}}).alerts == []
    v2 = {
        "routing_key": "r",
        "event_action": "trigger",
        "dedup_key": "k-9",
        "payload": {"summary": "drift", "source": "monitor", "severity": "critical", "custom_details": {"model": "m"}},
    }
    alert = parse("pagerduty", v2).alerts[0]
    assert (alert.fingerprint, alert.labels["severity"], alert.labels["model"]) == ("k-9", "critical", "m")
    assert parse("pagerduty", {"event_action": "resolve", "dedup_key": "k-9"}).alerts[0].status == "resolved"
    with pytest.raises(AlertError, match="dedup_key"):
        parse("pagerduty", {"event_action": "resolve"})


def test_generic_one_or_many() -> None:
    assert parse("generic", {"labels": {"a": "b"}}).alerts[0].labels == {"a": "b"}
    batch = parse("generic", {"alerts": [{"labels": {"h": "1"}}, {"labels": {"h": "2"}, "status": "resolved"}]})
    assert [a.status for a in batch.alerts] == ["firing", "resolved"]
    with pytest.raises(AlertError, match="labelz"):
        parse("generic", {"labelz": {}})


@pytest.mark.parametrize("version", ["1", "2"])
def test_cloudwatch_through_sns_signature_versions(sns_ca: SnsCA, version: str) -> None:
    verifier = SnsVerifier([TOPIC], fetch=lambda url: sns_ca.pem)
    batch = parse("cloudwatch", sns_ca.sign(alarm_message(), version), sns=verifier)
    alert = batch.alerts[0]
    assert alert.status == "firing"
    assert alert.labels["dimension_EndpointName"] == "fraud-v3"
    ok = parse("cloudwatch", sns_ca.sign(alarm_message("OK"), version), sns=verifier).alerts[0]
    assert ok.status == "resolved"
    assert ok.fingerprint == alert.fingerprint


def test_sns_refusals(sns_ca: SnsCA) -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return sns_ca.pem

    verifier = SnsVerifier([TOPIC], fetch=fetch)
    tampered = {**sns_ca.sign(alarm_message()), "Subject": "changed"}
    with pytest.raises(AlertRefused, match="does not verify"):
        parse("cloudwatch", tampered, sns=verifier)
    with pytest.raises(AlertRefused, match="allowlist"):
        parse("cloudwatch", sns_ca.sign(alarm_message(topic="arn:aws:sns:eu-west-1:1:other")), sns=verifier)
    for url in ("https://evil.example/cert.pem", "https://sns.eu-west-1.amazonaws.com.evil.example/c.pem",
                "http://sns.eu-west-1.amazonaws.com/c.pem"):  # fmt: skip
        with pytest.raises(AlertRefused, match="not sns"):
            parse("cloudwatch", sns_ca.sign(alarm_message(cert_url=url)), sns=verifier)
    assert all(u == CERT_URL for u in fetched)  # a foreign host is never even contacted
    with pytest.raises(AlertRefused, match="SignatureVersion"):
        parse("cloudwatch", sns_ca.sign(alarm_message(), "3"), sns=verifier)


def test_sns_subscription_confirmed_only_for_listed_topics(sns_ca: SnsCA) -> None:
    fetched: list[str] = []
    verifier = SnsVerifier([TOPIC], fetch=lambda url: fetched.append(url) or sns_ca.pem)  # type: ignore[func-returns-value]
    confirm = {"Type": "SubscriptionConfirmation", "MessageId": "c", "Token": "t", "TopicArn": TOPIC,
               "Message": "confirm", "Timestamp": "2026-11-27T00:00:00Z", "SigningCertURL": CERT_URL,
               "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t"}  # fmt: skip
    batch = parse("cloudwatch", sns_ca.sign(confirm), sns=verifier)
    assert batch.alerts == []
    assert batch.notes == {"sns": "SubscriptionConfirmation"}
    assert fetched[-1].startswith("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription")
    fetched.clear()
    with pytest.raises(AlertRefused):
        parse("cloudwatch", sns_ca.sign({**confirm, "TopicArn": "arn:aws:sns:eu-west-1:1:x"}), sns=verifier)
    assert not any("ConfirmSubscription" in u for u in fetched)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
KEYS = st.sampled_from(
    [
        *("alerts", "version", "status", "labels", "fingerprint", "event", "event_action", "payload", "Type"),
        *("Message", "TopicArn", "alert_id", "title", "tags", "orgId", "truncatedAlerts"),
    ]
)
SHAPED = st.dictionaries(KEYS, JSON, max_size=8)


@pytest.mark.parametrize("source", SOURCES)
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(SHAPED, JSON))
def test_every_adapter_fails_only_with_a_clean_error(source: str, payload: Any, sns_ca: SnsCA) -> None:
    verifier = SnsVerifier([TOPIC], fetch=lambda url: sns_ca.pem)
    try:
        batch = parse(source, payload, sns=verifier if source == "cloudwatch" else None)
    except AlertError as e:
        message = str(e)
        batch = None
    else:
        message = ""
    assert "\n" not in message
    if batch is None:
        return
    for alert in batch.alerts:
        json.dumps(alert.brief(), allow_nan=False).encode("utf-8")  # always writable to the run record
