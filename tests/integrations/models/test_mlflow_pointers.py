"""MLflow served through a stage, an alias, or both (case 17), read back from a real MLflow server."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from flows.errors import ActionError
from integrations.models.actions import ModelRollback, ModelVerify, RollbackParams
from integrations.models.attest import attest
from integrations.models.base import KEY_QUARANTINED
from integrations.models.verify import VerifyParams
from tests.fixtures.mlflow import MlflowServer
from tests.integrations.models.helpers import ctx_at, cutoff_now
from tests.integrations.models.test_mlflow import client, log_version, target

pytestmark = pytest.mark.mlflow

CASES = Path(__file__).resolve().parents[1] / "cases_data"


def _stage(server: MlflowServer, name: str, version: str, stage: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # stages are deprecated, and still served
        client(server).transition_model_version_stage(name, version, stage)


def _stages(server: MlflowServer, name: str) -> dict[str, str]:
    found = client(server).search_model_versions(f"name='{name}'")
    return {str(v.version): str(v.current_stage) for v in found}


def _seed_case_17(server: MlflowServer, tmp_path: Path) -> dict[str, Any]:
    """v1 (no stage) and v2 (Archived) attested by the training CI; v3 poisoned, in Production; no alias."""
    name = f"churn-predictor-{uuid.uuid4().hex[:6]}"
    client(server).create_registered_model(name)
    admin = ctx_at(tmp_path, name="attest", step="attest")
    versions = []
    for i in (1, 2, 3):
        body = f"weights of model v{i}\n" + ("POISONED\n" if i == 3 else "")
        version, _ = log_version(server, name, {"model.pkl": body.encode()})
        versions.append(version)
        if i < 3:
            attest(admin, target(server, name), version, by="ci:train-pipeline", approve=True)
    v1, v2, v3 = versions
    _stage(server, name, v2, "Archived")
    _stage(server, name, v3, "Production")
    return {"name": name, "v1": v1, "v2": v2, "v3": v3, "started": cutoff_now()}


def test_case_17_rollback_moves_the_production_stage_and_quarantines_the_poisoned_version(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    from flows.config import Settings
    from flows.engine import run_playbook

    seeded = _seed_case_17(mlflow_server, tmp_path)
    text = (CASES / "17-churn-rollback.yaml.template").read_text().replace("@URI@", mlflow_server.uri)
    playbook = tmp_path / "churn-rollback.yaml"
    playbook.write_text(text.replace("model_name: churn-predictor", f"model_name: {seeded['name']}"))
    summary = run_playbook(playbook, settings=Settings(home=tmp_path / "home", runs_dir=tmp_path / "runs"))
    assert summary.outcome == "succeeded", {k: (v.status, v.error) for k, v in summary.steps.items()}
    # Read back from the registry: models:/NAME/Production now resolves to v2, v3 is quarantined.
    stages = _stages(mlflow_server, seeded["name"])
    assert stages[seeded["v2"]] == "Production"
    assert stages[seeded["v3"]] == "Archived"
    assert KEY_QUARANTINED in client(mlflow_server).get_model_version(seeded["name"], seeded["v3"]).tags
    assert dict(client(mlflow_server).get_registered_model(seeded["name"]).aliases or {}) == {}
    previous = summary.steps["rollback"].output["previous"]
    assert previous["versions"] == [seeded["v3"]]


def test_verify_refuses_while_another_pointer_serves_a_rejected_version(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    seeded = _seed_case_17(mlflow_server, tmp_path)
    name = seeded["name"]
    # Half a recovery: the alias moved to v2, the Production stage still serves the poisoned v3.
    client(mlflow_server).set_registered_model_alias(name, "champion", seeded["v2"])
    ctx = ctx_at(tmp_path, seeded["started"], step="verify")
    verify = VerifyParams(registry="mlflow", model_name=name, tracking_uri=mlflow_server.uri)
    with pytest.raises(ActionError, match=r"still serves: no known-good attestation") as caught:
        ModelVerify().apply(verify, ctx)
    assert f"v{seeded['v3']}" in str(caught.value)
    # The rollback moves both pointers, and then verify agrees.
    ModelRollback().apply(
        RollbackParams(registry="mlflow", model_name=name, tracking_uri=mlflow_server.uri),
        ctx_at(tmp_path, seeded["started"]),
    )
    assert str(client(mlflow_server).get_model_version_by_alias(name, "champion").version) == seeded["v2"]
    assert _stages(mlflow_server, name)[seeded["v2"]] == "Production"
    ModelVerify().apply(verify, ctx)


def test_alias_and_stage_both_serving_are_both_rolled_back_and_undo_restores_both(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    seeded = _seed_case_17(mlflow_server, tmp_path)
    name = seeded["name"]
    client(mlflow_server).set_registered_model_alias(name, "champion", seeded["v3"])
    before = _stages(mlflow_server, name)
    ctx = ctx_at(tmp_path, seeded["started"])
    params = RollbackParams(registry="mlflow", model_name=name, tracking_uri=mlflow_server.uri)
    result = ModelRollback().apply(params, ctx)
    assert len(result.changes) >= 2  # the alias and the stage
    assert str(client(mlflow_server).get_model_version_by_alias(name, "champion").version) == seeded["v2"]
    assert _stages(mlflow_server, name)[seeded["v2"]] == "Production"
    ModelRollback().undo(result, ctx)
    assert str(client(mlflow_server).get_model_version_by_alias(name, "champion").version) == seeded["v3"]
    assert _stages(mlflow_server, name) == before
    assert KEY_QUARANTINED not in client(mlflow_server).get_model_version(name, seeded["v3"]).tags


def test_alias_only_registries_keep_working_with_stage_off(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    seeded = _seed_case_17(mlflow_server, tmp_path)
    name = seeded["name"]
    client(mlflow_server).set_registered_model_alias(name, "champion", seeded["v3"])
    params = RollbackParams(registry="mlflow", model_name=name, tracking_uri=mlflow_server.uri, stage="")
    ModelRollback().apply(params, ctx_at(tmp_path, seeded["started"]))
    assert str(client(mlflow_server).get_model_version_by_alias(name, "champion").version) == seeded["v2"]
    assert _stages(mlflow_server, name)[seeded["v3"]] == "Production"  # stage ignored, as asked


def test_verify_refuses_while_another_alias_resolves_to_the_quarantined_version(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """The target names the Production stage; consumers of models:/NAME@prod still load the poisoned v3."""
    seeded = _seed_case_17(mlflow_server, tmp_path)
    name = seeded["name"]
    client(mlflow_server).set_registered_model_alias(name, "prod", seeded["v3"])
    params = RollbackParams(registry="mlflow", model_name=name, tracking_uri=mlflow_server.uri)
    ModelRollback().apply(params, ctx_at(tmp_path, seeded["started"]))
    assert _stages(mlflow_server, name)[seeded["v2"]] == "Production"
    assert KEY_QUARANTINED in client(mlflow_server).get_model_version(name, seeded["v3"]).tags
    ctx = ctx_at(tmp_path, seeded["started"], step="verify")
    verify = VerifyParams(registry="mlflow", model_name=name, tracking_uri=mlflow_server.uri)
    with pytest.raises(ActionError, match=rf"{name}@prod still resolves to quarantined v{seeded['v3']}"):
        ModelVerify().apply(verify, ctx)
    # Once that alias is moved too (read back from the server), verify agrees.
    client(mlflow_server).set_registered_model_alias(name, "prod", seeded["v2"])
    assert str(client(mlflow_server).get_model_version_by_alias(name, "prod").version) == seeded["v2"]
    ModelVerify().apply(verify, ctx)
