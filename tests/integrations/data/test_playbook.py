"""The shipped training-data-poisoning playbook against the sandbox on the loopback moto server
(and, for its MLflow branch, the real MLflow server on loopback).

A dry-run changes nothing at the target; a live run quarantines the poisoned shard and the model
versions trained on it, rolls the endpoint back past the newest attested (tainted) version to the
clean one, and starts the reprocessing pipeline: every effect is read back from moto.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.config import Settings
from flows.engine.approvals import Answer, Responders
from flows.engine.runner import run_playbook
from flows.record.store import read_events
from integrations.aws.sandbox import World, seed_buckets
from integrations.data.seed import DATA_BUCKET, ENDPOINT, PIPELINE, POISONED_PREFIX, poisoning_alert, seed_training_data
from integrations.models.attest import attest
from integrations.models.base import KEY_QUARANTINED, TargetParams
from tests.fixtures.mlflow import MlflowServer
from tests.fixtures.moto import AwsEnv
from tests.integrations.data.helpers import all_tags, client, context, train

pytestmark = pytest.mark.moto_server
REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "playbooks" / "training-data-poisoning.yaml"


def responders() -> Responders:
    """The on-call acknowledges the page at once (no Slack here); an approver approves.

    A fresh script per run: a run consumes the answers it is given.
    """
    return Responders(
        approvals={"approve-containment": [Answer(by="alice", decision="approve")]},
        acks={"page-on-call": [("bob", 0.0)]},
    )


def settings(aws: AwsEnv, tmp_path: Path) -> Settings:
    approvers = tmp_path / "approvers.yaml"
    approvers.write_text(yaml.safe_dump({"groups": {"ml-security": ["alice"], "ml-platform-oncall": ["bob"]}}))
    return aws.settings.model_copy(update={"approvers_file": approvers})


def snapshot(world: World) -> dict[str, Any]:
    """Everything the playbook may change, read from moto."""
    s3, sm = world.client("s3"), world.client("sagemaker")
    try:
        policy = s3.get_bucket_policy(Bucket=DATA_BUCKET)["Policy"]
    except s3.exceptions.ClientError:
        policy = None
    packages = {
        name: sm.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties", {}).get(KEY_QUARANTINED)
        for name, arn in world.data["credit_risk_versions"].items()
    }
    weights = {
        v["VariantName"]: v.get("CurrentWeight")
        for v in sm.describe_endpoint(EndpointName=ENDPOINT)["ProductionVariants"]
    }
    executions = sm.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"]
    evidence = s3.list_object_versions(Bucket="ml-evidence").get("Versions", [])
    return {
        "policy": policy,
        "quarantined": packages,
        "weights": weights,
        "executions": [e["PipelineExecutionArn"] for e in executions],
        "evidence": len(evidence),
    }


def test_dry_run_changes_nothing(aws: AwsEnv, tmp_path: Path) -> None:
    world = aws.seed(seed_buckets, seed_training_data)
    tags, before = all_tags(world.client("s3"), DATA_BUCKET), snapshot(world)

    summary = run_playbook(PLAYBOOK, alert=poisoning_alert(world), mode="dry-run", settings=settings(aws, tmp_path))

    assert summary.outcome == "succeeded", [
        (k, v.status, v.error) for k, v in summary.steps.items() if v.status != "succeeded"
    ]
    assert all_tags(world.client("s3"), DATA_BUCKET) == tags
    assert snapshot(world) == before
    plans = [e for e in read_events(summary.run_dir / "events.jsonl") if e["type"] == "dryrun.refused"]
    assert plans == []  # nothing even tried to write


def test_live_run_rolls_back_past_the_tainted_version_and_reprocesses(aws: AwsEnv, tmp_path: Path) -> None:
    world = aws.seed(seed_buckets, seed_training_data)
    versions = world.data["credit_risk_versions"]

    summary = run_playbook(
        PLAYBOOK,
        alert=poisoning_alert(world),
        settings=settings(aws, tmp_path),
        responders=responders(),
    )

    assert summary.outcome == "succeeded", [
        (k, v.status, v.error) for k, v in summary.steps.items() if v.status != "succeeded"
    ]
    after = snapshot(world)
    assert after["weights"] == {"stable": 1.0, "canary": 0.0}  # v2 (clean) serves, not v3
    assert {k for k, v in after["quarantined"].items() if v} == {"v3", "v4"}
    assert after["quarantined"]["v3"].endswith(": trained on poisoned data")
    deny = json.loads(after["policy"])["Statement"][-1]
    assert deny["Principal"] == {"AWS": [world.data["training_role_arn"]]}
    assert deny["Resource"] == f"arn:aws:s3:::{DATA_BUCKET}/{POISONED_PREFIX}*"
    assert len(after["executions"]) == 1
    assert after["evidence"] == 2  # the poisoned shard's two object versions, in the Object Lock bucket
    sm = world.client("sagemaker")
    params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=after["executions"][0])
    assert {p["Name"]: p["Value"] for p in params["PipelineParameters"]}["ExcludePrefix"] == (
        f"s3://{DATA_BUCKET}/{POISONED_PREFIX}"
    )
    radius = summary.steps["radius"].output
    assert {m["version"] for m in radius["models"]} == {versions["v3"], versions["v4"]}
    rollback = summary.steps["rollback"].output
    outputs = rollback if isinstance(rollback, list) else [rollback]
    [chosen] = [o["chosen"]["id"] for o in outputs]
    assert chosen == versions["v2"]
    reasons = {r["version"]: r["reason"] for o in outputs for r in o["rejections"]}
    # v3 is the newest attested version: only its training data disqualifies it.
    assert reasons == {versions["v4"]: "not_attested", versions["v3"]: "tainted_training_data"}
    s3 = world.client("s3")
    s3.delete_bucket_policy(Bucket=DATA_BUCKET)  # moto applies the Deny to every caller; lift it to read tags
    marked = {k for k, tags in all_tags(s3, DATA_BUCKET).items() if KEY_QUARANTINED in tags}
    assert {k.split("?")[0] for k in marked} == {f"{POISONED_PREFIX}part-0.csv", f"{POISONED_PREFIX}part-1.csv"}


def test_sandbox_demo_step_shows_the_rollback_skipping_the_tainted_version(
    aws: AwsEnv, tmp_path: Path, repo_root: Path
) -> None:
    from flows.sandbox import demo_settings, demo_steps, run_demo

    world = aws.seed(seed_buckets, seed_training_data)
    settings = demo_settings(aws.endpoint, tmp_path, tmp_path / "runs", repo_root / "playbooks")
    step = next(s for s in demo_steps() if s.playbook == "training-data-poisoning")

    [result] = run_demo(world, settings, [step])

    assert result["outcome"] == "succeeded", result["steps"]
    assert result["endpoint_weights"]["after"] == {"stable": 1.0, "canary": 0.0}
    lines = "\n".join(result["lines"])
    assert "rolled back to credit-risk-models v2" in lines
    assert f"refused credit-risk-models v3: trained on s3://{DATA_BUCKET}/datasets/fraud/shards/ (attestation)" in lines
    assert "trained on the poisoned shard: v3" in lines
    assert "trained on the poisoned shard: v4" in lines


def test_taint_reaching_no_serving_version_leaves_the_endpoint_alone(aws: AwsEnv, tmp_path: Path) -> None:
    world = aws.seed(seed_buckets, seed_training_data)
    alert = poisoning_alert(world)
    alert["labels"]["prefix"] = "datasets/fraud/curated/"  # only v1 was trained on it, and v1 serves nowhere
    del alert["labels"]["reprocess_pipeline"]
    before = snapshot(world)

    summary = run_playbook(
        PLAYBOOK,
        alert=alert,
        settings=settings(aws, tmp_path),
        responders=responders(),
    )

    statuses = {k: v.status for k, v in summary.steps.items()}
    errors = {k: str(v.error)[:300] for k, v in summary.steps.items() if v.error}
    assert summary.outcome == "succeeded", (statuses, errors)
    assert (statuses["rollback"], statuses["reprocess"]) == ("skipped", "skipped")
    after = snapshot(world)
    assert after["weights"] == before["weights"]  # canary (v3) still serves: it was not trained on curated/
    assert {k for k, v in after["quarantined"].items() if v} == {"v1"}
    assert after["executions"] == []


@pytest.mark.mlflow
def test_live_run_also_rolls_an_mlflow_model_back_past_the_taint(
    aws: AwsEnv, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """With ``mlflow_model`` set, the MLflow branch plans (dry-run) and runs too: read back from MLflow.

    v1 was trained on curated data; v2's run logged the whole shards prefix as a dataset input;
    v3, the newest attested version and the champion, is attested as trained on it.
    """
    world = aws.seed(seed_buckets, seed_training_data)
    name = f"fraud-{uuid.uuid4().hex[:8]}"
    mlflow = client(mlflow_server)
    mlflow.create_registered_model(name)
    admin = context(tmp_path, "attest", step="attest")
    target = TargetParams(registry="mlflow", model_name=name, tracking_uri=mlflow_server.uri)
    shards = f"s3://{DATA_BUCKET}/datasets/fraud/shards/"
    clean = train(mlflow_server, name, b"clean", f"s3://{DATA_BUCKET}/datasets/fraud/curated/")
    via_inputs = train(mlflow_server, name, b"via inputs", shards)
    attested = train(mlflow_server, name, b"attested", None)
    for version, data in ((clean, []), (via_inputs, []), (attested, [f"{shards}@{'b' * 64}"])):
        attest(admin, target, version, by="ci:train-pipeline", approve=True, training_data=data)
    mlflow.set_registered_model_alias(name, "champion", attested)
    alert = poisoning_alert(world)
    alert["labels"]["mlflow_model"] = name
    base = settings(aws, tmp_path)
    models = base.models.model_copy(update={"mlflow_tracking_uri": mlflow_server.uri})

    configured = base.model_copy(update={"models": models})

    def registry() -> dict[str, Any]:
        versions = {str(v.version): dict(v.tags) for v in mlflow.search_model_versions(f"name='{name}'")}
        return {"tags": versions, "aliases": dict(mlflow.get_registered_model(name).aliases)}

    before = registry()
    dry = run_playbook(PLAYBOOK, alert=alert, mode="dry-run", settings=configured)
    assert dry.outcome == "succeeded", {k: str(v.error)[:300] for k, v in dry.steps.items() if v.error}
    assert dry.steps["rollback-mlflow"].status == "succeeded"  # planned, with the registry read
    assert registry() == before

    summary = run_playbook(PLAYBOOK, alert=alert, settings=configured, responders=responders())

    statuses = {k: v.status for k, v in summary.steps.items()}
    errors = {k: str(v.error)[:300] for k, v in summary.steps.items() if v.error}
    assert summary.outcome == "succeeded", (statuses, errors)
    assert (statuses["rollback-mlflow"], statuses["quarantine-mlflow-models"]) == ("succeeded", "succeeded")
    assert str(mlflow.get_model_version_by_alias(name, "champion").version) == clean
    marks = {v: mlflow.get_model_version(name, v).tags.get(KEY_QUARANTINED) for v in (clean, via_inputs, attested)}
    assert marks[clean] is None
    assert marks[via_inputs] is not None
    assert marks[attested] is not None
    reached = {(m["registry"], m["version"]) for m in summary.steps["radius"].output["models"]}
    assert {("mlflow", via_inputs), ("mlflow", attested)} <= reached
    rejected = {r["version"]: r["reason"] for r in summary.steps["rollback-mlflow"].output["rejections"]}
    assert rejected == {attested: "tainted_training_data", via_inputs: "tainted_training_data"}
    assert snapshot(world)["weights"] == {"stable": 1.0, "canary": 0.0}  # the SageMaker branch ran as well


def test_a_reprocess_pipeline_that_does_not_exist_fails_that_step_alone(aws: AwsEnv, tmp_path: Path) -> None:
    world = aws.seed(seed_buckets, seed_training_data)
    alert = poisoning_alert(world)
    alert["labels"]["reprocess_pipeline"] = "no-such-pipeline"

    summary = run_playbook(PLAYBOOK, alert=alert, settings=settings(aws, tmp_path), responders=responders())

    statuses = {k: v.status for k, v in summary.steps.items()}
    assert statuses["reprocess"] == "failed"
    assert str(summary.steps["reprocess"].error).endswith("sagemaker pipeline no-such-pipeline does not exist")
    assert "Traceback" not in str(summary.steps["reprocess"].error)
    assert (statuses["rollback"], statuses["verify"], statuses["quarantine-models"]) == ("succeeded",) * 3
    assert snapshot(world)["weights"] == {"stable": 1.0, "canary": 0.0}  # the rollback happened all the same


def test_a_protected_data_bucket_is_never_quarantined(aws: AwsEnv, tmp_path: Path) -> None:
    """data.quarantine is guarded like every containment: a protected bucket is refused, untouched."""
    world = aws.seed(seed_buckets, seed_training_data)
    s3 = world.client("s3")
    s3.put_bucket_tagging(Bucket=DATA_BUCKET, Tagging={"TagSet": [{"Key": "fireline/protected", "Value": "true"}]})
    book = tmp_path / "quarantine.yaml"
    step = {"uri": f"s3://{DATA_BUCKET}/{POISONED_PREFIX}", "reason": "poisoned", "deny_roles": ["{{ inputs.role }}"]}
    book.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "fireline/v1",
                "kind": "Playbook",
                "metadata": {"name": "quarantine-only", "version": 1, "title": "t"},
                "inputs": {"role": {"type": "string"}},
                "steps": [{"id": "quarantine-data", "action": "data.quarantine", "with": step}],
            }
        )
    )
    tags = all_tags(s3, DATA_BUCKET)

    role = world.data["training_role_arn"]
    summary = run_playbook(book, inputs={"role": role}, settings=settings(aws, tmp_path))

    assert summary.steps["quarantine-data"].status == "failed"
    assert "protected tag fireline/protected=true" in str(summary.steps["quarantine-data"].error)
    assert all_tags(s3, DATA_BUCKET) == tags
    assert snapshot(world)["policy"] is None
