"""Blast radius and taint-aware rollback over the s3 registry, on in-process moto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flows.errors import ActionError
from integrations.data.radius import BlastRadiusParams, DataBlastRadius
from integrations.models.actions import ModelQuarantine, ModelRollback, QuarantineParams, RollbackParams
from integrations.models.attest import attest
from integrations.models.base import KEY_QUARANTINED, KEY_TRAINING_DATA, TargetParams
from tests.integrations.data.helpers import DATA, POISONED, context, seed_data

MODELS, KEY = "ml-models", "fraud/model.bin"
TARGET = {"registry": "s3", "bucket": MODELS, "key": KEY}


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=MODELS)
        client.put_bucket_versioning(Bucket=MODELS, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def history(s3: Any, tmp_path: Path) -> dict[str, Any]:
    """clean (curated data), malformed (its training-data tag broken), poisoned (trained on shards/, serving)."""
    data_versions = seed_data(s3)
    admin = context(tmp_path, "attest", step="attest")
    versions: dict[str, str] = {"data": data_versions}  # type: ignore[dict-item]
    for name, data in (("clean", f"s3://{DATA}/curated/"), ("malformed", f"s3://{DATA}/curated/")):
        vid = str(s3.put_object(Bucket=MODELS, Key=KEY, Body=name.encode() * 100)["VersionId"])
        attest(admin, TargetParams.model_validate(TARGET), vid, by="ci:train", approve=True, training_data=[data])
        versions[name] = vid
    tags = s3.get_object_tagging(Bucket=MODELS, Key=KEY, VersionId=versions["malformed"])["TagSet"]
    broken = [t if t["Key"] != KEY_TRAINING_DATA else {**t, "Value": "base64:eyJzMzovL"} for t in tags]
    s3.put_object_tagging(Bucket=MODELS, Key=KEY, VersionId=versions["malformed"], Tagging={"TagSet": broken})
    vid = str(s3.put_object(Bucket=MODELS, Key=KEY, Body=b"poisoned" * 100)["VersionId"])
    attest(
        admin,
        TargetParams.model_validate(TARGET),
        vid,
        by="ci:train",
        approve=True,
        training_data=[f"s3://{DATA}/shards/"],
    )
    versions["poisoned"] = vid
    return versions


def radius(tmp_path: Path, **extra: Any) -> Any:
    params = BlastRadiusParams.model_validate({"datasets": [POISONED], "registries": [TARGET], **extra})
    return DataBlastRadius().apply(params, context(tmp_path, "radius", step="radius"))


def test_blast_radius_finds_exactly_the_version_trained_on_the_poisoned_shard(
    history: dict[str, Any], tmp_path: Path
) -> None:
    found = radius(tmp_path)

    assert [m["version"] for m in found.models] == [history["poisoned"]]
    model = found.models[0]
    assert model["serving"] is True
    assert model["serving_via"] == [f"latest version of s3://{MODELS}/{KEY}"]
    assert model["trained_on"] == [
        {"uri": f"s3://{DATA}/shards/", "sha256": model["trained_on"][0]["sha256"], "source": "attestation"}
    ]
    assert [u["version"] for u in found.unknown] == [history["malformed"]]  # recorded, not a crash
    assert found.examined == 3
    assert [t["versions"] for t in found.serving_targets] == [[history["poisoned"]]]
    manifest = (tmp_path / "radius" / "evidence" / "manifest.json").read_text()
    assert "blast-radius.json" in manifest


def test_a_version_id_window_excludes_models_made_before_the_taint(s3: Any, tmp_path: Path) -> None:
    seed_data(s3)
    admin = context(tmp_path, "attest", step="attest", later=False)
    vid = str(s3.put_object(Bucket=MODELS, Key=KEY, Body=b"old")["VersionId"])
    attest(admin, TargetParams.model_validate(TARGET), vid, by="ci:train", training_data=[f"s3://{DATA}/shards/"])
    import time

    time.sleep(1.1)  # S3 stamps whole seconds: the later shard version must be in a later second
    later = str(s3.put_object(Bucket=DATA, Key="shards/2026-11-02/part-0.csv", Body=b"poison")["VersionId"])
    dataset = {"uri": POISONED, "version_ids": [later]}

    assert radius(tmp_path, datasets=[dataset]).models == []
    with pytest.raises(ActionError, match="no object version nope"):
        radius(tmp_path, datasets=[{"uri": POISONED, "version_ids": ["nope"]}])


def test_rollback_dates_the_taint_by_its_version_ids(s3: Any, tmp_path: Path) -> None:
    """The rollback reads the window as the blast radius does; ids it cannot date exclude more, not less."""
    seed_data(s3)
    admin = context(tmp_path, "attest", step="attest", later=False)
    target = TargetParams.model_validate(TARGET)
    clean = str(s3.put_object(Bucket=MODELS, Key=KEY, Body=b"clean")["VersionId"])
    attest(admin, target, clean, by="ci:train", approve=True, training_data=[f"s3://{DATA}/curated/"])
    old = str(s3.put_object(Bucket=MODELS, Key=KEY, Body=b"old")["VersionId"])
    attest(admin, target, old, by="ci:train", approve=True, training_data=[f"s3://{DATA}/shards/"])
    import time

    time.sleep(1.1)  # S3 stamps whole seconds: the later shard version must be in a later second
    later = str(s3.put_object(Bucket=DATA, Key="shards/2026-11-02/part-0.csv", Body=b"poison")["VersionId"])
    s3.put_object(Bucket=MODELS, Key=KEY, Body=b"serving now")  # unattested: the rollback must move off it

    def rollback(name: str, version_ids: list[str]) -> Any:
        policy = {"exclude_training_data": [{"uri": POISONED, "version_ids": version_ids}]}
        params = RollbackParams.model_validate({**TARGET, "quarantine_replaced": False, "known_good": policy})
        return ModelRollback().apply(params, context(tmp_path, name, step="rollback"))

    dated = rollback("dated", [later])
    assert dated.chosen["id"] == old  # trained before the taint was written
    assert s3.get_object(Bucket=MODELS, Key=KEY)["Body"].read() == b"old"

    undated = rollback("undated", ["nope"])
    assert undated.chosen["id"] == clean
    assert s3.get_object(Bucket=MODELS, Key=KEY)["Body"].read() == b"clean"
    assert {r.version: r.reason for r in undated.rejections}[old] == "tainted_training_data"
    selection = (tmp_path / "undated" / "evidence").rglob("*known-good-selection.json")
    assert "no object version nope" in next(selection).read_text()


def test_rollback_skips_the_tainted_attested_version_and_names_the_dataset(
    s3: Any, history: dict[str, Any], tmp_path: Path
) -> None:
    found = radius(tmp_path)
    params = RollbackParams.model_validate(
        {**TARGET, "known_good": {"exclude_training_data": found.model_dump(mode="json")}}
    )

    result = ModelRollback().apply(params, context(tmp_path, "rollback", step="rollback"))

    assert result.chosen["id"] == history["clean"]
    assert s3.get_object(Bucket=MODELS, Key=KEY)["Body"].read() == b"clean" * 100
    reasons = {r.version: (r.reason, r.message) for r in result.rejections}
    assert reasons[history["poisoned"]] == (
        "tainted_training_data",
        f"trained on s3://{DATA}/shards/ (attestation), inside the tainted dataset {POISONED}",
    )
    assert reasons[history["malformed"]][0] == "training_data_unreadable"
    assert "fireline.training_data is malformed" in reasons[history["malformed"]][1]


def test_without_the_exclusion_the_newest_attested_version_would_win(history: dict[str, Any], tmp_path: Path) -> None:
    params = RollbackParams.model_validate({**TARGET, "quarantine_replaced": False})
    result = ModelRollback().apply(params, context(tmp_path, "rollback", step="rollback"))
    assert result.chosen["id"] == history["poisoned"]  # the control: the exclusion is what skips it


def test_refusal_names_the_dataset_when_every_version_is_tainted(s3: Any, tmp_path: Path) -> None:
    seed_data(s3)
    vid = str(s3.put_object(Bucket=MODELS, Key=KEY, Body=b"only")["VersionId"])
    admin = context(tmp_path, "attest", step="attest")
    attest(
        admin, TargetParams.model_validate(TARGET), vid, by="ci:train", approve=True, training_data=[f"s3://{DATA}/"]
    )
    params = RollbackParams.model_validate(
        {**TARGET, "on_refusal": "leave", "known_good": {"exclude_training_data": [POISONED]}}
    )
    with pytest.raises(ActionError, match=f"inside the tainted dataset {POISONED}"):
        ModelRollback().apply(params, context(tmp_path, "rollback", step="rollback"))


def test_model_quarantine_takes_the_blast_radius_directly(s3: Any, history: dict[str, Any], tmp_path: Path) -> None:
    found = radius(tmp_path).model_dump(mode="json")
    params = QuarantineParams.model_validate({**TARGET, "reason": "trained on poisoned data", "blast_radius": found})
    result = ModelQuarantine().apply(params, context(tmp_path, "quarantine", step="quarantine-models"))
    assert result.quarantined == [history["poisoned"]]
    for name in ("clean", "poisoned"):
        tags = {t["Key"] for t in s3.get_object_tagging(Bucket=MODELS, Key=KEY, VersionId=history[name])["TagSet"]}
        assert (KEY_QUARANTINED in tags) == (name == "poisoned")


def test_dry_run_of_the_model_quarantine_names_the_versions_and_tags_nothing(
    s3: Any, history: dict[str, Any], tmp_path: Path
) -> None:
    found = radius(tmp_path).model_dump(mode="json")
    params = QuarantineParams.model_validate({**TARGET, "reason": "trained on poisoned data", "blast_radius": found})
    before = {
        name: s3.get_object_tagging(Bucket=MODELS, Key=KEY, VersionId=history[name])["TagSet"]
        for name in ("clean", "malformed", "poisoned")
    }

    plan = ModelQuarantine().plan(params, context(tmp_path, "plan", mode="dry-run", step="quarantine-models"))

    assert plan.summary == f"quarantine {history['poisoned']} of s3://{MODELS}/{KEY}"
    after = {name: s3.get_object_tagging(Bucket=MODELS, Key=KEY, VersionId=history[name])["TagSet"] for name in before}
    assert after == before
