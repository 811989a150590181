"""A model action's plan reads its registry (read-only) so a dry-run or drill foresees apply():

- ``model.rollback`` fails its dry-run/drill plan when by metadata no version qualifies (the live
  plan only warns: its apply keeps the evidence and drains), names the version it would choose
  otherwise, and reads nothing without credentials;
- ``model.verify``, ``model.capture_registry`` and ``model.rollback`` fail their plan when the
  configured MLflow server does not answer, as apply would, and only warn without a tracking URI.

S3 and SageMaker reads run against in-process moto; what moto holds is read back unchanged.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.actions.context import ActionContext, make_context
from flows.actions.registry import Plan
from flows.errors import ActionError, IntegrationError
from integrations.models.actions import ModelCaptureRegistry, ModelRollback, ModelVerify, RollbackParams
from integrations.models.registry_actions import CaptureParams
from integrations.models.verify import VerifyParams
from tests.integrations.models.helpers import attest_s3, put_version, versioned_bucket

BUCKET, KEY = "ml-models", "fraud/model.tar.gz"


def _ctx(tmp_path: Path, mode: Any = "dry-run") -> ActionContext:
    later = datetime.now(UTC) + timedelta(minutes=5)  # every version seeded below is older
    return make_context(tmp_path / mode, mode=mode, step_id="rollback", incident_id="inc-7", started_at=later)


@pytest.fixture
def s3() -> Iterator[Any]:
    with versioned_bucket(BUCKET) as client:
        yield client


def _versions(s3: Any) -> list[tuple[str, bool]]:
    listing = s3.list_object_versions(Bucket=BUCKET)
    return sorted(
        (v["VersionId"], v["IsLatest"]) for v in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
    )


def test_rollback_plan_fails_in_dry_run_when_no_version_qualifies(s3: Any, tmp_path: Path) -> None:
    put_version(s3, BUCKET, KEY, b"unattested weights")
    before = _versions(s3)
    params = RollbackParams(registry="s3", bucket=BUCKET, key=KEY)
    for mode in ("dry-run", "drill"):
        with pytest.raises(
            ActionError, match=r"qualifies as known-good .*\(by their metadata\) — a live run would drain"
        ):
            ModelRollback().plan(params, _ctx(tmp_path, mode))
    assert _versions(s3) == before  # no delete marker: the plan drained nothing


def test_live_rollback_plan_only_warns_so_apply_keeps_evidence_and_drains(s3: Any, tmp_path: Path) -> None:
    put_version(s3, BUCKET, KEY, b"unattested weights")
    plan = ModelRollback().plan(RollbackParams(registry="s3", bucket=BUCKET, key=KEY), _ctx(tmp_path, "live"))
    assert any("no version qualifies now" in w for w in plan.warnings), plan.warnings


def test_rollback_plan_names_the_version_metadata_would_choose(s3: Any, tmp_path: Path) -> None:
    good = put_version(s3, BUCKET, KEY, b"attested weights")
    attest_s3(_ctx(tmp_path, "live"), BUCKET, KEY, good)
    put_version(s3, BUCKET, KEY, b"backdoored weights")
    plan = ModelRollback().plan(RollbackParams(registry="s3", bucket=BUCKET, key=KEY), _ctx(tmp_path))
    assert any(good in line and "would be chosen" in line for line in plan.reads), plan.reads
    verify = ModelVerify().plan(VerifyParams(registry="s3", bucket=BUCKET, key=KEY), _ctx(tmp_path))
    assert verify.reads[0].endswith("serves " + s3.head_object(Bucket=BUCKET, Key=KEY)["VersionId"] + " now")


def test_without_credentials_the_plan_reads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    plan = ModelRollback().plan(RollbackParams(registry="s3", bucket=BUCKET, key=KEY), _ctx(tmp_path))
    assert plan.reads == []
    assert any("credentials" in w for w in plan.warnings), plan.warnings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("mode", ["dry-run", "drill", "live"])
def test_unreachable_mlflow_fails_every_model_plan_as_apply_would(tmp_path: Path, mode: str) -> None:
    target: dict[str, Any] = {"registry": "mlflow", "model_name": "churn", "alias": "champion",
              "tracking_uri": f"http://127.0.0.1:{_closed_port()}"}  # fmt: skip
    ctx = _ctx(tmp_path, mode)
    plans: list[Callable[[], Plan]] = [
        lambda: ModelVerify().plan(VerifyParams.model_validate(target), ctx),
        lambda: ModelCaptureRegistry().plan(CaptureParams.model_validate(target), ctx),
        lambda: ModelRollback().plan(RollbackParams.model_validate(target), ctx),
    ]
    for plan in plans:
        with pytest.raises(
            IntegrationError, match=r"^mlflow: .*: the MLflow server at http://127\.0\.0\.1:\d+ does not answer$"
        ):
            plan()


def test_without_a_tracking_uri_the_mlflow_plans_only_warn(tmp_path: Path) -> None:
    target: dict[str, Any] = {"registry": "mlflow", "model_name": "churn", "alias": "champion"}
    ctx = _ctx(tmp_path)
    assert not ctx.settings.models.mlflow_tracking_uri
    for plan in (ModelVerify().plan(VerifyParams.model_validate(target), ctx),
                 ModelCaptureRegistry().plan(CaptureParams.model_validate(target), ctx)):  # fmt: skip
        assert any("no MLflow tracking URI" in w for w in plan.warnings), plan.warnings
