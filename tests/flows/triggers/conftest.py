"""Helpers of the trigger tests: a small library, payload builders, a test CA for SNS."""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path
from typing import Any

import pytest

GROUPED_BOOK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: egress-group, version: 1, title: Egress group}
triggers:
  - source: alertmanager
    match: {alertname: GroupEgress}
    group_by: [alertname]
steps:
  - id: note
    action: log
    with: {message: "hosts {{ alerts | map(attribute='labels') | map(attribute='instance_id') | join(',') }}"}
"""

HOST_BOOK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: egress-host, version: 1, title: Egress host}
triggers:
  - source: alertmanager
    match: {alertname: InferenceHostSuspiciousEgress}
    matchers: ['severity=~"critical|high"', 'env!=dev']
    dedup_window: 30m
inputs:
  instance_id: {type: string, default: "{{ alert.labels.instance_id }}"}
steps:
  - id: note
    action: log
    with: {message: "isolate {{ inputs.instance_id }}"}
"""


def am_alert(instance: str, fingerprint: str, status: str = "firing", alertname: str = "GroupEgress") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": alertname, "severity": "critical", "instance_id": instance},
        "annotations": {"summary": "egress"},
        "startsAt": "2026-11-27T00:58:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-27T01:10:00Z",
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": fingerprint,
    }


def am_payload(*alerts: dict[str, Any], truncated: int = 0) -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": truncated, "status": status, "receiver": "fireline",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": list(alerts),
    }  # fmt: skip


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    folder.mkdir()
    (folder / "egress-group.yaml").write_text(GROUPED_BOOK)
    (folder / "egress-host.yaml").write_text(HOST_BOOK)
    return folder


class SnsCA:
    """A self-signed certificate standing in for SNS's, and a signer of SNS messages."""

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(self.key, hashes.SHA256())
        )  # fmt: skip
        self.pem = cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        from flows.triggers.adapters.sns import canonical

        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # SNS SignatureVersion 1 is SHA1withRSA
        signed = {**message, "SignatureVersion": version}
        signature = self.key.sign(canonical(signed), padding.PKCS1v15(), algorithm)
        return {**signed, "Signature": base64.b64encode(signature).decode()}


@pytest.fixture(scope="session")
def sns_ca() -> SnsCA:
    return SnsCA()


TOPIC = "arn:aws:sns:eu-west-1:123456789012:ml-alarms"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"


def alarm_message(state: str = "ALARM", topic: str = TOPIC, cert_url: str = CERT_URL) -> dict[str, Any]:
    alarm = {
        "AlarmName": "InferenceErrors", "AlarmDescription": "5xx on the endpoint", "AWSAccountId": "123456789012",
        "NewStateValue": state, "NewStateReason": "threshold crossed", "StateChangeTime": "2026-11-27T00:58:00Z",
        "Region": "EU (Ireland)", "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:InferenceErrors",
        "Trigger": {"MetricName": "Invocation5XXErrors", "Namespace": "AWS/SageMaker",
                    "Dimensions": [{"name": "EndpointName", "value": "fraud-v3"}]},
    }  # fmt: skip
    return {
        "Type": "Notification", "MessageId": "m-1", "TopicArn": topic, "Subject": "ALARM: InferenceErrors",
        "Message": json.dumps(alarm), "Timestamp": "2026-11-27T00:58:01.000Z", "SigningCertURL": cert_url,
    }  # fmt: skip
