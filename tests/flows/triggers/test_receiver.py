"""The receiver over HTTP (httpx ASGITransport): good input spooled, bad input refused with nothing spooled."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from flows.triggers.auth import sign
from flows.triggers.config import SourceSettings, TriggersSettings
from flows.triggers.receiver import Receiver, routes
from flows.triggers.routing import load_library
from flows.triggers.spool import Spool
from tests.flows.triggers.conftest import TOPIC, SnsCA, alarm_message, am_alert, am_payload

KEY = "s3cret-key"


@pytest.fixture
def receiver(tmp_path: Path, library: Path, sns_ca: SnsCA) -> Iterator[Receiver]:
    sources = {
        "alertmanager": SourceSettings(auth="bearer", secret=SecretStr(KEY), max_body=4096, rate=1000, burst=1000),
        "generic": SourceSettings(auth="hmac", secret=SecretStr(KEY)),
        "cloudwatch": SourceSettings(topics=[TOPIC]),
        "pagerduty": SourceSettings(
            auth="hmac", secret=SecretStr(KEY), header="X-PagerDuty-Signature", prefix="v1=", timestamp_header=None
        ),
        "datadog": SourceSettings(rate=1, burst=2),
        "grafana": SourceSettings(enabled=False),
    }
    spool = Spool(tmp_path / "spool.db")
    yield Receiver(TriggersSettings(sources=sources), spool, load_library(library), fetch_cert=lambda url: sns_ca.pem)
    spool.close()


def post(
    receiver: Receiver, path: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> httpx.Response:
    from starlette.applications import Starlette

    app = Starlette(routes=routes(receiver))

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.request(method, path, content=body or None, headers=headers or {})

    import asyncio

    return asyncio.run(go())


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def signed(body: bytes, at: float | None = None) -> dict[str, str]:
    stamp = str(int(at if at is not None else time.time()))
    return {"X-Fireline-Timestamp": stamp, "X-Fireline-Signature": sign(SourceSettings(), KEY, body, stamp)}


def test_grouped_alertmanager_payload_is_spooled_whole(receiver: Receiver) -> None:
    body = json.dumps(am_payload(am_alert("i-1", "f1"), am_alert("i-2", "f2"), truncated=3)).encode()
    answer = post(receiver, "/alerts/alertmanager", body, bearer())
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"batch": 1, "firing": 2, "resolved": 0, "truncated": 3}
    ((_, source, doc),) = receiver.spool.pending()
    assert source == "alertmanager"
    assert [a["labels"]["instance_id"] for a in doc["alerts"]] == ["i-1", "i-2"]
    assert doc["raw"]["truncatedAlerts"] == 3


def test_signed_generic_and_pagerduty_and_sns_are_accepted(receiver: Receiver, sns_ca: SnsCA) -> None:
    body = json.dumps({"labels": {"alertname": "X"}}).encode()
    assert post(receiver, "/alerts/generic", body, signed(body)).status_code == 202
    pd = json.dumps({"event_action": "trigger", "dedup_key": "k", "payload": {"summary": "s", "severity": "info"}})
    pd_sig = sign(SourceSettings(prefix="v1="), KEY, pd.encode())
    rotated = {"X-PagerDuty-Signature": f"v1=deadbeef, {pd_sig}"}  # several signatures during key rotation
    assert post(receiver, "/alerts/pagerduty", pd.encode(), rotated).status_code == 202
    sns = json.dumps(sns_ca.sign(alarm_message())).encode()
    assert post(receiver, "/alerts/cloudwatch", sns).status_code == 202
    assert receiver.spool.depth() == 3


BAD: list[tuple[str, str, Any, int]] = [
    ("wrong signature", "/alerts/generic", lambda b: {**signed(b), "X-Fireline-Signature": "sha256=" + "0" * 64}, 401),
    ("replayed timestamp", "/alerts/generic", lambda b: signed(b, time.time() - 301), 401),
    ("future timestamp", "/alerts/generic", lambda b: signed(b, time.time() + 301), 401),
    ("no token", "/alerts/alertmanager", lambda b: {}, 401),
    ("wrong token", "/alerts/alertmanager", lambda b: {"Authorization": "Bearer nope"}, 401),
    ("unknown source", "/alerts/nagios", lambda b: {}, 404),
    ("disabled source", "/alerts/grafana", lambda b: {}, 404),
]


@pytest.mark.parametrize(("case", "path", "headers", "status"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_are_refused_and_nothing_is_spooled(
    receiver: Receiver, case: str, path: str, headers: Any, status: int
) -> None:
    body = json.dumps({"labels": {"alertname": "X"}}).encode()
    answer = post(receiver, path, body, headers(body))
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()
    assert receiver.spool.depth() == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"version": "4", "alerts": [', 400),
        (b"\xff\xfe", 400),
        (b"[" * 100_000 + b"]" * 100_000, 413),
        (b'{"version": "4", "alerts": [{"labels": {"a": NaN}}]}', 400),
        (b'{"version": "4", "alerts": [{"labels": {"a": "\\ud800"}}]}', 400),
        (json.dumps({"version": "4", "alerts": [], "x": "a" * 5000}).encode(), 413),
        (json.dumps(am_payload(am_alert("i-1", "f1", "resolved"))).encode(), 422),
    ],
    ids=["malformed", "not-utf8", "deep", "nan", "surrogate", "oversize", "resolved-only"],
)
def test_bad_payloads(receiver: Receiver, body: bytes, status: int) -> None:
    answer = post(receiver, "/alerts/alertmanager", body, bearer())
    assert answer.status_code == status, answer.text
    assert receiver.spool.depth() == 0


def test_deep_json_below_the_cap_is_a_clean_400(receiver: Receiver) -> None:
    body = b"[" * 1000 + b"]" * 1000
    answer = post(receiver, "/alerts/alertmanager", body, bearer())
    assert answer.status_code == 400
    assert "nested deeper" in answer.json()["error"]


def test_sns_foreign_host_and_unlisted_topic(receiver: Receiver, sns_ca: SnsCA) -> None:
    foreign = sns_ca.sign(alarm_message(cert_url="https://attacker.example/sns.pem"))
    assert post(receiver, "/alerts/cloudwatch", json.dumps(foreign).encode()).status_code == 403
    unlisted = sns_ca.sign(alarm_message(topic="arn:aws:sns:eu-west-1:123456789012:other"))
    assert post(receiver, "/alerts/cloudwatch", json.dumps(unlisted).encode()).status_code == 403
    assert receiver.spool.depth() == 0


def test_rate_limit_answers_429_with_retry_after(receiver: Receiver) -> None:
    body = json.dumps({"alert_id": "1", "title": "t", "alert_transition": "Triggered"}).encode()
    statuses = [post(receiver, "/alerts/datadog", body).status_code for _ in range(3)]
    assert statuses[:2] == [202, 202]
    limited = post(receiver, "/alerts/datadog", body)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert receiver.spool.depth() == 2


def test_resolution_of_a_known_incident_is_accepted(receiver: Receiver) -> None:
    firing = json.dumps(am_payload(am_alert("i-1", "f1", alertname="InferenceHostSuspiciousEgress"))).encode()
    resolved = json.dumps(am_payload(am_alert("i-1", "f1", "resolved", alertname="InferenceHostSuspiciousEgress")))
    assert post(receiver, "/alerts/alertmanager", resolved.encode(), bearer()).status_code == 422
    assert post(receiver, "/alerts/alertmanager", firing, bearer()).status_code == 202
    assert post(receiver, "/alerts/alertmanager", resolved.encode(), bearer()).status_code == 202


def test_metrics_and_healthz(receiver: Receiver) -> None:
    body = json.dumps({"labels": {"alertname": "X"}}).encode()
    post(receiver, "/alerts/generic", body, signed(body))
    post(receiver, "/alerts/generic", body, {})
    assert receiver.metrics.value("fireline_alerts_total", source="generic", outcome="accepted") == 1
    assert receiver.metrics.value("fireline_alerts_total", source="generic", outcome="unauthorised") == 1
    text = post(receiver, "/metrics", b"", method="GET").text
    assert "fireline_spool_depth 1.0" in text
    assert 'fireline_alerts_total{outcome="accepted",source="generic"} 1.0' in text
    health = post(receiver, "/healthz", b"", method="GET")
    assert health.status_code == 200
    assert health.json()["spool_depth"] == 1


def test_intake_waits_its_share_while_runs_head_for_containment(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While runs head for containment, each request first waits what Share.delay() answers."""
    import asyncio

    from flows.engine.turns import Share

    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float, *args: Any) -> Any:
        slept.append(seconds)
        return await real_sleep(0, *args)

    clocks = {"wall": 0.0, "cpu": 0.0}

    def tick(name: str, step: float) -> float:  # between two requests: 10 ms of CPU in 20 ms
        clocks[name] += step
        return clocks[name]

    receiver.share = Share(
        0.25, most=0.05, heading=lambda: True, cpu=lambda: tick("cpu", 0.010), clock=lambda: tick("wall", 0.020)
    )
    monkeypatch.setattr(asyncio, "sleep", sleep)
    body = json.dumps({"labels": {"alertname": "X"}}).encode()
    assert post(receiver, "/alerts/generic", body, signed(body)).status_code == 202  # the first: runs began heading
    assert post(receiver, "/alerts/generic", body, signed(body)).status_code == 202
    assert slept[-1] == pytest.approx(0.010 / 0.25 - 0.020)  # wait until the 10 ms are 25% of the time
    assert len(receiver.spool.pending()) == 2  # both spooled: intake waits, it never refuses
