"""The data side of the Impact section: the shipped training-data-poisoning playbook, live on the loopback moto server.

The report's quarantined object versions and reached model versions are compared with what moto holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.engine.approvals import Answer, Responders
from flows.engine.runner import run_playbook
from flows.report import build
from integrations.aws.sandbox import seed_buckets
from integrations.data.seed import DATA_BUCKET, POISONED_PREFIX, poisoning_alert, seed_training_data
from integrations.models.base import KEY_QUARANTINED
from tests.fixtures.moto import AwsEnv
from tests.fixtures.moto import aws as aws  # the loopback moto server, reset per test
from tests.fixtures.moto import moto as moto
from tests.integrations.data.helpers import all_tags

pytestmark = pytest.mark.moto_server
PLAYBOOK = Path(__file__).resolve().parents[3] / "playbooks" / "training-data-poisoning.yaml"


def test_the_report_names_the_data_and_model_versions_involved(aws: AwsEnv, tmp_path: Path) -> None:
    world = aws.seed(seed_buckets, seed_training_data)
    approvers = tmp_path / "approvers.yaml"
    approvers.write_text(yaml.safe_dump({"groups": {"ml-security": ["alice"], "ml-platform-oncall": ["bob"]}}))
    settings = aws.settings.model_copy(update={"approvers_file": approvers})
    responders = Responders(
        approvals={"approve-containment": [Answer(by="alice", decision="approve")]},
        acks={"page-on-call": [("bob", 0.0)]},
    )
    summary = run_playbook(PLAYBOOK, alert=poisoning_alert(world), settings=settings, responders=responders)
    assert summary.outcome == "succeeded"

    s3 = world.client("s3")
    s3.delete_bucket_policy(Bucket=DATA_BUCKET)  # moto applies the Deny to every caller; lift it to read tags
    marked = {f"s3://{DATA_BUCKET}/{k}" for k, tags in all_tags(s3, DATA_BUCKET).items() if KEY_QUARANTINED in tags}
    assert len(marked) == 2

    doc = build(summary.run_dir)  # the context report.json is (the playbook writes md and html)
    [quarantine] = [d for d in doc["impact"]["data"] if d["uri"]]
    assert set(quarantine["versions"]) == marked  # exactly the versions moto holds marked
    assert quarantine["uri"] == f"s3://{DATA_BUCKET}/{POISONED_PREFIX}"
    assert quarantine["denied_by"].startswith("FirelineQuarantine")
    [radius] = [d for d in doc["impact"]["data"] if d["reached"]]
    versions = world.data["credit_risk_versions"]
    assert {m["version"] for m in radius["reached"]} == {versions["v3"], versions["v4"]}
    assert any(m["serving"] for m in radius["reached"] if m["version"] == versions["v3"])  # canary served v3

    sm = world.client("sagemaker")
    marked_models = {
        f"credit-risk-models {name}" for name, arn in versions.items()
        if sm.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties", {}).get(KEY_QUARANTINED)
    }  # fmt: skip
    [quarantine_step] = [m for m in doc["impact"]["models"] if m["step"] == "quarantine-models"]
    assert set(quarantine_step["quarantined"]) == marked_models == {"credit-risk-models v3", "credit-risk-models v4"}

    md = (summary.run_dir / "report.md").read_text()
    assert "2 version(s) quarantined: credit-risk-models v3, credit-risk-models v4" in md
    assert "2 model version(s) trained on tainted data, 1 serving" in md
    assert f"2 data version(s) quarantined under s3://{DATA_BUCKET}/{POISONED_PREFIX}" in md.replace("\\", "")
    for location in marked:
        assert location.split("?versionId=")[1] in md
