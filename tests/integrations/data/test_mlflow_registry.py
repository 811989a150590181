"""Blast radius and taint-aware rollback over a real MLflow registry on loopback.

One version is reached only through MLflow's own lineage: its run logged the tainted prefix as a
dataset input (``log_inputs``), and its attestation names no training data.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from integrations.data.radius import BlastRadiusParams, DataBlastRadius
from integrations.models.actions import ModelRollback, RollbackParams
from integrations.models.attest import attest
from integrations.models.base import KEY_QUARANTINED, TargetParams
from tests.fixtures.mlflow import MlflowServer
from tests.integrations.data.helpers import DATA, POISONED, client, context, train

pytestmark = pytest.mark.mlflow


@pytest.fixture
def history(mlflow_server: MlflowServer, tmp_path: Path) -> dict[str, str]:
    name = f"fraud-{uuid.uuid4().hex[:8]}"
    c = client(mlflow_server)
    c.create_registered_model(name)
    admin = context(tmp_path, "attest", step="attest")
    target = TargetParams(registry="mlflow", model_name=name, tracking_uri=mlflow_server.uri)
    clean = train(mlflow_server, name, b"clean", f"s3://{DATA}/curated/")
    attest(admin, target, clean, by="ci:train", approve=True)
    via_mlflow = train(mlflow_server, name, b"via mlflow inputs", f"s3://{DATA}/shards/")
    attest(admin, target, via_mlflow, by="ci:train", approve=True)  # names no training data
    attested = train(mlflow_server, name, b"attested shards", None)
    attest(admin, target, attested, by="ci:train", approve=True, training_data=[f"s3://{DATA}/shards/@{'b' * 64}"])
    c.set_registered_model_alias(name, "champion", via_mlflow)
    c.set_registered_model_alias(name, "challenger", attested)
    return {"name": name, "clean": clean, "via_mlflow": via_mlflow, "attested": attested}


def test_blast_radius_finds_the_version_known_only_through_mlflow_dataset_inputs(
    mlflow_server: MlflowServer, history: dict[str, str], tmp_path: Path
) -> None:
    target = {"registry": "mlflow", "model_name": history["name"], "tracking_uri": mlflow_server.uri}
    params = BlastRadiusParams.model_validate({"datasets": [POISONED], "registries": [target]})

    found = DataBlastRadius().apply(params, context(tmp_path, "radius", step="radius"))

    by_version = {m["version"]: m for m in found.models}
    assert set(by_version) == {history["via_mlflow"], history["attested"]}
    assert by_version[history["via_mlflow"]]["serving_via"] == ["alias champion"]
    assert by_version[history["attested"]]["serving_via"] == ["alias challenger"]
    assert by_version[history["via_mlflow"]]["trained_on"][0]["source"].startswith("mlflow_dataset_input:fraud-train@")
    assert found.unknown == []


def test_rollback_moves_the_alias_past_both_tainted_versions(
    mlflow_server: MlflowServer, history: dict[str, str], tmp_path: Path
) -> None:
    params = RollbackParams.model_validate(
        {
            "registry": "mlflow",
            "model_name": history["name"],
            "tracking_uri": mlflow_server.uri,
            "known_good": {"exclude_training_data": [POISONED]},
        }
    )

    result = ModelRollback().apply(params, context(tmp_path, "rollback", step="rollback"))

    assert result.chosen["id"] == history["clean"]
    assert (
        str(client(mlflow_server).get_model_version_by_alias(history["name"], "champion").version) == history["clean"]
    )
    reasons = {r.version: r.message for r in result.rejections}
    assert reasons[history["attested"]].endswith(f"(attestation), inside the tainted dataset {POISONED}")
    assert reasons[history["via_mlflow"]].endswith(f"(mlflow_dataset_input), inside the tainted dataset {POISONED}")
    tags = client(mlflow_server).get_model_version(history["name"], history["via_mlflow"]).tags
    assert tags[KEY_QUARANTINED].startswith("inc-7: ")


def registry_state(server: MlflowServer, name: str) -> dict[str, Any]:
    """Every version's tags and the model's aliases, read from the MLflow server."""
    c = client(server)
    versions = c.search_model_versions(f"name='{name}'")
    return {
        "tags": {str(v.version): dict(v.tags) for v in versions},
        "aliases": dict(c.get_registered_model(name).aliases),
    }


def test_dry_run_plans_name_the_clean_choice_and_tag_nothing(
    mlflow_server: MlflowServer, history: dict[str, str], tmp_path: Path
) -> None:
    from flows.errors import ActionError
    from integrations.models.actions import ModelQuarantine, QuarantineParams

    target = {"registry": "mlflow", "model_name": history["name"], "tracking_uri": mlflow_server.uri}
    found = DataBlastRadius().apply(
        BlastRadiusParams.model_validate({"datasets": [POISONED], "registries": [target]}),
        context(tmp_path, "radius", step="radius"),
    )
    before = registry_state(mlflow_server, history["name"])
    rollback = RollbackParams.model_validate({**target, "known_good": {"exclude_training_data": [POISONED]}})
    quarantine = QuarantineParams.model_validate(
        {**target, "reason": "trained on poisoned data", "blast_radius": found.model_dump(mode="json")}
    )
    dry = context(tmp_path, "dry", mode="dry-run", step="rollback")

    plan = ModelRollback().plan(rollback, dry)
    quarantine_plan = ModelQuarantine().plan(quarantine, dry)
    with pytest.raises(ActionError, match="refused in dry-run mode"):
        ModelRollback().apply(rollback, dry)

    assert any(f"{history['name']} v{history['clean']} would be chosen" in line for line in plan.reads), plan.reads
    which = quarantine_plan.summary.removeprefix("quarantine ").split(" of ")[0]
    assert sorted(which.split(", ")) == sorted([history["via_mlflow"], history["attested"]])
    assert registry_state(mlflow_server, history["name"]) == before  # no tag, no alias moved


def test_a_malformed_training_data_tag_rejects_that_version_alone(
    mlflow_server: MlflowServer, history: dict[str, str], tmp_path: Path
) -> None:
    from integrations.models.base import KEY_TRAINING_DATA

    client(mlflow_server).set_model_version_tag(history["name"], history["attested"], KEY_TRAINING_DATA, '{"s3://')
    target = {"registry": "mlflow", "model_name": history["name"], "tracking_uri": mlflow_server.uri}

    found = DataBlastRadius().apply(
        BlastRadiusParams.model_validate({"datasets": [POISONED], "registries": [target]}),
        context(tmp_path, "radius", step="radius"),
    )
    result = ModelRollback().apply(
        RollbackParams.model_validate({**target, "known_good": {"exclude_training_data": [POISONED]}}),
        context(tmp_path, "rollback", step="rollback"),
    )

    assert [m["version"] for m in found.models] == [history["via_mlflow"]]
    assert [u["version"] for u in found.unknown] == [history["attested"]]
    assert "fireline.training_data is malformed" in found.unknown[0]["message"]
    assert result.chosen["id"] == history["clean"]
    assert {r.version: r.reason for r in result.rejections}[history["attested"]] == "training_data_unreadable"
    champion = client(mlflow_server).get_model_version_by_alias(history["name"], "champion")
    assert str(champion.version) == history["clean"]
