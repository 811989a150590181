"""Shared helpers of the training-data tests: a data bucket with shards, a model bucket, contexts."""

from __future__ import annotations

import json
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.actions.context import ActionContext, make_context
from flows.language.spec import Mode

if TYPE_CHECKING:
    from tests.fixtures.mlflow import MlflowServer

DATA = "ml-training-data"
SHARDS = {
    "curated/2026-10/part-0.csv": b"id,amount,label\n1,10.0,0\n",
    "shards/2026-11-01/part-0.csv": b"id,amount,label\n2,12.0,0\n",
    "shards/2026-11-02/part-0.csv": b"id,amount,label\n3,99999.0,0\n",  # the poisoned shard
}
POISONED = f"s3://{DATA}/shards/2026-11-02/"


def seed_data(s3: Any, bucket: str = DATA) -> dict[str, str]:
    """A versioned data bucket holding :data:`SHARDS`; returns key -> version id."""
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return {key: str(s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"]) for key, body in SHARDS.items()}


def context(
    tmp_path: Path, name: str = "run", *, mode: Mode = "live", step: str = "step", later: bool = True, **kw: Any
) -> ActionContext:
    """A context for incident ``inc-7``; ``later``: it started after everything created so far.

    Two seconds ahead, since S3 lists whole seconds and a version of the incident's own second
    does not qualify as created before it.
    """
    started = datetime.now(UTC) + (timedelta(seconds=2) if later else timedelta(0))
    return make_context(tmp_path / name, mode=mode, step_id=step, incident_id="inc-7", started_at=started, **kw)


def all_tags(s3: Any, bucket: str) -> dict[str, dict[str, str]]:
    """``key?versionId=id`` -> tags, for every object version of the bucket (read back from S3)."""
    found: dict[str, dict[str, str]] = {}
    for v in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        tags = s3.get_object_tagging(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["TagSet"]
        found[f"{v['Key']}?versionId={v['VersionId']}"] = {t["Key"]: t["Value"] for t in tags}
    return found


def client(server: MlflowServer) -> Any:
    """An MLflow client of the loopback server (tracking and registry)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)


def train(server: MlflowServer, name: str, weights: bytes, dataset_uri: str | None) -> str:
    """A run (with ``dataset_uri`` as its training dataset input, if any) registered as a new version."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    c = client(server)
    experiment = c.get_experiment_by_name("fireline-data-tests")
    experiment_id = experiment.experiment_id if experiment else c.create_experiment("fireline-data-tests")
    run = c.create_run(experiment_id)
    if dataset_uri:
        dataset = Dataset(
            name="fraud-train", digest=uuid.uuid4().hex[:8], source_type="s3", source=json.dumps({"uri": dataset_uri})
        )
        c.log_inputs(
            run.info.run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])]
        )
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "weights.bin").write_bytes(weights)
        c.log_artifacts(run.info.run_id, scratch, "model")
    version = c.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return str(version.version)
