"""The model actions' registration, plans and IAM statements (no cloud calls)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.actions.registry import Registry
from integrations.models.actions import ModelQuarantine, ModelRollback, ModelVerify, QuarantineParams, RollbackParams
from integrations.models.verify import VerifyParams
from tests.integrations.models.helpers import ctx_at


def test_registered_from_the_builtin_module() -> None:
    registry = Registry()
    registry.register_module("integrations.models.actions")
    registry.register_module("integrations.models.registry_actions")
    assert {"model.rollback", "model.quarantine", "model.verify"} <= set(registry.names())
    assert ModelRollback.undoable()
    assert ModelQuarantine.undoable()
    assert not ModelVerify.undoable()


def test_iam_statements_follow_the_registry() -> None:
    s3 = ModelRollback().policy_statements(RollbackParams(registry="s3", bucket="b", key="k"))
    assert all(a.startswith("s3:") for a in s3[0]["Action"])
    sagemaker = ModelRollback().policy_statements(RollbackParams(registry="sagemaker", endpoint="e"))
    assert "sagemaker:UpdateEndpoint" in sagemaker[0]["Action"]
    assert "s3:PutObject" not in sagemaker[0]["Action"]
    assert ModelRollback().policy_statements(RollbackParams(registry="mlflow", model_name="m")) == []
    everything = ModelRollback().policy_statements(None)
    assert {"sagemaker:UpdateEndpoint", "s3:PutObject"} <= set(everything[0]["Action"])


def test_plans_need_no_credentials(tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path)
    rollback = ModelRollback().plan(RollbackParams(registry="mlflow", model_name="churn"), ctx)
    assert rollback.targets[0].id == "churn@champion"
    assert any("artifact sha256 recomputed" in c for c in rollback.changes)
    quarantine = ModelQuarantine().plan(QuarantineParams(registry="s3", bucket="b", key="k", reason="tampered"), ctx)
    assert "inc-42: tampered" in quarantine.changes[0]
    verify = ModelVerify().plan(VerifyParams(registry="sagemaker", endpoint="ep"), ctx)
    assert not verify.mutating


def test_serving_actions_need_the_endpoint() -> None:
    with pytest.raises(ValidationError, match="needs endpoint"):
        RollbackParams(registry="sagemaker", model_package_group="g")
    with pytest.raises(ValidationError, match="needs endpoint"):
        VerifyParams(registry="sagemaker", model_package_group="g")
    with pytest.raises(ValidationError, match="needs bucket, key"):
        RollbackParams(registry="s3")
