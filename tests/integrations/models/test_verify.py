"""model.verify: digest, attestation, smoke inputs and drift, on in-process moto."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flows.errors import ActionError
from integrations.models.actions import ModelVerify
from integrations.models.verify import DriftCheck, SmokeCase, VerifyParams
from tests.integrations.models.helpers import attest_s3, ctx_at, put_version, versioned_bucket

BUCKET, KEY = "models", "churn/model.bin"


@pytest.fixture
def s3() -> Iterator[Any]:
    with versioned_bucket(BUCKET) as client:
        yield client


def params(**extra: Any) -> VerifyParams:
    return VerifyParams(registry="s3", bucket=BUCKET, key=KEY, **extra)


def sample(path: Path, values: list[float]) -> str:
    path.write_text(json.dumps({"score": values}))
    return str(path)


def test_attested_version_verifies(s3: Any, tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path, step="verify")
    attest_s3(ctx, BUCKET, KEY, put_version(s3, BUCKET, KEY, b"model"))

    result = ModelVerify().apply(params(), ctx)

    assert {c.name: c.ok for c in result.checks} == {"status": True, "digest": True}
    assert "verify-report.json" in [i.name for i in ctx.record.evidence.items]


def test_wrong_digest_and_missing_attestation_fail_with_figures(s3: Any, tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path, step="verify")
    put_version(s3, BUCKET, KEY, b"unattested")

    with pytest.raises(ActionError) as caught:
        ModelVerify().apply(params(), ctx)
    assert "attestation" in str(caught.value)

    with pytest.raises(ActionError, match="expected " + "0" * 64):
        ModelVerify().apply(params(expected_sha256="0" * 64, require_attested=False), ctx)


def test_drift_check_passes_and_fails_with_figures(s3: Any, tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path, step="verify")
    attest_s3(ctx, BUCKET, KEY, put_version(s3, BUCKET, KEY, b"model"))
    rng = random.Random(3)
    reference = sample(tmp_path / "ref.json", [rng.gauss(0, 1) for _ in range(2000)])
    same = sample(tmp_path / "same.json", [rng.gauss(0, 1) for _ in range(2000)])
    s3.put_object(
        Bucket=BUCKET, Key="samples/shifted.json", Body=json.dumps({"score": [rng.gauss(0.8, 1) for _ in range(2000)]})
    )

    ok = ModelVerify().apply(params(drift=DriftCheck(reference=reference, current=same)), ctx)
    assert [c.ok for c in ok.checks if c.name == "drift[score]"] == [True]

    with pytest.raises(ActionError, match=r"drift\[score\]: PSI 0\.\d+ > 0\.2") as caught:
        ModelVerify().apply(
            params(drift=DriftCheck(reference=reference, current=f"s3://{BUCKET}/samples/shifted.json")), ctx
        )
    checks = caught.value.details["checks"]
    assert isinstance(checks, list)
    drift = next(c for c in checks if c["name"] == "drift[score]")
    assert drift["figures"]["ks_p_value"] < 0.01


def test_smoke_inputs_on_sagemaker(tmp_path: Path) -> None:
    """moto runs no model: the endpoint's answers are queued through moto's endpoint-results API."""
    requests = pytest.importorskip("requests")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="art")
        s3.put_object(Bucket="art", Key="m.tar.gz", Body=b"weights")
        sm = boto3.client("sagemaker", region_name="us-east-1")
        sm.create_model(
            ModelName="m",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
            PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://art/m.tar.gz"},
        )
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                {
                    "VariantName": "a",
                    "ModelName": "m",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                    "InitialVariantWeight": 1.0,
                }
            ],
        )
        sm.create_endpoint(EndpointName="ep", EndpointConfigName="c")
        requests.post(
            "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
            json={
                "results": [
                    {"Body": '{"score": 0.12}', "ContentType": "application/json"},
                    {"Body": '{"score": 0.9}', "ContentType": "application/json"},
                ]
            },
            timeout=5,
        )
        ctx = ctx_at(tmp_path, step="verify")
        target: dict[str, Any] = {"registry": "sagemaker", "endpoint": "ep", "require_attested": False}

        ok = ModelVerify().apply(
            VerifyParams(**target, smoke=[SmokeCase(input={"x": [1]}, expected={"score": 0.1}, tolerance=0.05)]), ctx
        )
        assert [c.ok for c in ok.checks if c.name.startswith("smoke")] == [True]

        with pytest.raises(ActionError, match=r"smoke\[1\]"):
            ModelVerify().apply(
                VerifyParams(**target, smoke=[SmokeCase(input={"x": [2]}, expected={"score": 0.1}, tolerance=0.05)]),
                ctx,
            )
