"""The mlflow registry adapter and model.rollback against a real MLflow server on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.actions.context import ActionContext
from flows.config import Settings
from flows.engine.approvals import Answer, Responders
from flows.engine.runner import run_playbook
from flows.errors import ActionError, ConfigError, IntegrationError
from flows.record.store import read_events
from integrations.models.actions import ModelRollback, RollbackParams
from integrations.models.attest import attest
from integrations.models.base import KEY_APPROVED, KEY_QUARANTINED, TargetParams, tree_digest
from integrations.models.mlflow import RETRY_DEFAULTS, MlflowAdapter
from tests.fixtures.mlflow import MlflowServer
from tests.integrations.models.helpers import ctx_at, cutoff_now, events

pytestmark = pytest.mark.mlflow


def client(server: MlflowServer) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)


def log_version(server: MlflowServer, name: str, files: dict[str, bytes]) -> tuple[str, Path]:
    """A run with the files under ``model/``, registered as a new version of ``name``."""
    c = client(server)
    experiment = c.get_experiment_by_name("fireline-tests") or None
    experiment_id = experiment.experiment_id if experiment else c.create_experiment("fireline-tests")
    run = c.create_run(experiment_id)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "model"
        for relative, data in files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(data)
        c.log_artifacts(run.info.run_id, str(root), "model")
    source = f"{run.info.artifact_uri}/model"
    version = c.create_model_version(name, source=source, run_id=run.info.run_id)
    return str(version.version), Path(source)


def target(server: MlflowServer, name: str) -> TargetParams:
    return TargetParams(registry="mlflow", model_name=name, tracking_uri=server.uri)


def attest_version(server: MlflowServer, ctx: ActionContext, name: str, version: str) -> None:
    attest(ctx, target(server, name), version, by="ci:train", approve=True)


@pytest.fixture
def history(mlflow_server: MlflowServer, tmp_path: Path) -> dict[str, Any]:
    name = f"fraud-{uuid.uuid4().hex[:8]}"
    admin = ctx_at(tmp_path, name="attest", step="attest")  # one context: its MLflow client is reused
    client(mlflow_server).create_registered_model(name)
    v1, _ = log_version(mlflow_server, name, {"weights.bin": b"good-1", "conf/params.json": b"{}"})
    attest_version(mlflow_server, admin, name, v1)
    v2, _ = log_version(mlflow_server, name, {"weights.bin": b"good-2", "conf/params.json": b"{}"})
    attest_version(mlflow_server, admin, name, v2)
    v3, _ = log_version(mlflow_server, name, {"weights.bin": b"unattested"})
    client(mlflow_server).set_model_version_tag(name, v3, KEY_APPROVED, "true")
    v4, v4_dir = log_version(mlflow_server, name, {"weights.bin": b"looks-good", "conf/params.json": b"{}"})
    attest_version(mlflow_server, admin, name, v4)
    (v4_dir / "conf" / "params.json").write_bytes(b'{"backdoor": true}')  # tampered in the artifact store
    started = cutoff_now()
    v5, _ = log_version(mlflow_server, name, {"weights.bin": b"poisoned"})
    attest_version(mlflow_server, admin, name, v5)
    client(mlflow_server).set_registered_model_alias(name, "champion", v5)
    return {"name": name, "v1": v1, "v2": v2, "v3": v3, "v4": v4, "v5": v5, "started": started}


def params(server: MlflowServer, name: str, **extra: Any) -> RollbackParams:
    return RollbackParams(registry="mlflow", model_name=name, tracking_uri=server.uri, **extra)


def alias_version(server: MlflowServer, name: str) -> str:
    return str(client(server).get_model_version_by_alias(name, "champion").version)


def test_rollback_moves_alias_to_newest_verified_version(
    mlflow_server: MlflowServer, history: dict[str, Any], tmp_path: Path
) -> None:
    ctx = ctx_at(tmp_path, history["started"])

    result = ModelRollback().apply(params(mlflow_server, history["name"]), ctx)

    assert result.chosen["id"] == history["v2"]
    assert alias_version(mlflow_server, history["name"]) == history["v2"]
    reasons = {r.version: r.reason for r in result.rejections}
    assert reasons == {
        history["v5"]: "created_after_cutoff",
        history["v4"]: "digest_mismatch",
        history["v3"]: "not_attested",
    }
    assert [e["detail"]["version"] for e in events(ctx, "model.tampering_detected")] == [history["v4"]]
    tags = client(mlflow_server).get_model_version(history["name"], history["v5"]).tags
    assert tags[KEY_QUARANTINED].startswith("inc-42: ")


def test_rerun_is_idempotent_and_undo_rolls_forward(
    mlflow_server: MlflowServer, history: dict[str, Any], tmp_path: Path
) -> None:
    ctx = ctx_at(tmp_path, history["started"])
    first = ModelRollback().apply(params(mlflow_server, history["name"]), ctx)

    again = ModelRollback().apply(params(mlflow_server, history["name"]), ctx)
    assert not again.changed
    assert again.quarantined == [history["v5"]]  # still ours to lift on undo

    ModelRollback().undo(first, ctx)
    assert alias_version(mlflow_server, history["name"]) == history["v5"]
    assert KEY_QUARANTINED not in client(mlflow_server).get_model_version(history["name"], history["v5"]).tags


def test_no_qualifying_version_refuses_and_deletes_the_alias(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    name = f"lonely-{uuid.uuid4().hex[:8]}"
    client(mlflow_server).create_registered_model(name)
    only, _ = log_version(mlflow_server, name, {"weights.bin": b"x"})
    client(mlflow_server).set_registered_model_alias(name, "champion", only)
    ctx = ctx_at(tmp_path, cutoff_now())

    with pytest.raises(ActionError, match="not approved") as caught:
        ModelRollback().apply(params(mlflow_server, name), ctx)

    assert "drained" in str(caught.value)
    assert MlflowAdapter(target(mlflow_server, name), ctx).serving().versions == []
    assert client(mlflow_server).get_model_version(name, only).status == "READY"  # the version itself stays


def test_tree_digest_matches_the_contract(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    name = f"digest-{uuid.uuid4().hex[:8]}"
    client(mlflow_server).create_registered_model(name)
    files = {"weights.bin": b"w" * 3000, "conf/params.json": b'{"a": 1}'}
    version, _ = log_version(mlflow_server, name, files)
    adapter = MlflowAdapter(target(mlflow_server, name), ctx_at(tmp_path))

    digest = adapter.compute_digest(adapter.version(version))

    lines = "".join(f"{p}\0{hashlib.sha256(files[p]).hexdigest()}\n" for p in sorted(files))
    assert (
        digest
        == hashlib.sha256(lines.encode()).hexdigest()
        == tree_digest({p: hashlib.sha256(d).hexdigest() for p, d in files.items()})
    )
    assert adapter.bytes_read == 3008


def test_missing_mlflow_gives_the_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an environment without the extra looks like
    adapter = MlflowAdapter(
        TargetParams(registry="mlflow", model_name="m", tracking_uri="http://127.0.0.1:9"), ctx_at(tmp_path)
    )
    with pytest.raises(ConfigError, match=r"pip install 'fireline\[mlflow\]'"):
        adapter.client  # noqa: B018 - the property is what imports MLflow


def test_drift_playbook_measures_then_rolls_the_alias_back(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[3]
    name = f"churn-{uuid.uuid4().hex[:8]}"
    client(mlflow_server).create_registered_model(name)
    admin = ctx_at(tmp_path, name="attest", step="attest")
    strong, _ = log_version(mlflow_server, name, {"model.pkl": b"strong"})
    attest(admin, target(mlflow_server, name), strong, by="ci:train", eval_metrics={"auc": 0.91}, approve=True)
    weak, _ = log_version(mlflow_server, name, {"model.pkl": b"weak"})
    attest(admin, target(mlflow_server, name), weak, by="ci:train", eval_metrics={"auc": 0.71}, approve=True)
    drifting, _ = log_version(mlflow_server, name, {"model.pkl": b"drifting"})
    client(mlflow_server).set_registered_model_alias(name, "champion", drifting)
    rng = random.Random(5)
    (tmp_path / "reference.csv").write_text("tenure_days\n" + "\n".join(str(rng.gauss(300, 50)) for _ in range(1500)))
    (tmp_path / "current.csv").write_text("tenure_days\n" + "\n".join(str(rng.gauss(360, 50)) for _ in range(1500)))
    alert = json.loads((repo / "playbooks" / "alerts" / "model-drift-rollback.json").read_text())
    alert["labels"].update(
        model=name,
        tracking_uri=mlflow_server.uri,
        reference_sample=str(tmp_path / "reference.csv"),
        current_sample=str(tmp_path / "current.csv"),
    )
    approvers = tmp_path / "approvers.yaml"
    approvers.write_text(yaml.safe_dump({"groups": {"ml-platform-oncall": ["bob"]}}))
    settings = Settings(
        home=tmp_path / "home", runs_dir=tmp_path / "runs", playbooks_dir=repo / "playbooks", approvers_file=approvers
    )

    summary = run_playbook(
        repo / "playbooks" / "model-drift-rollback.yaml",
        alert=alert,
        settings=settings,
        responders=Responders(
            approvals={"approve-rollback": [Answer(by="bob", decision="approve")]},
            acks={"page-on-call": [("alice", 0.0)]},
        ),
    )

    status = {k: v.status for k, v in summary.steps.items()}
    assert status["measure-drift"] == "failed"  # the drift is confirmed, with figures
    assert status["rollback"] == "succeeded"
    assert status["verify"] == "succeeded"
    assert alias_version(mlflow_server, name) == strong  # the weaker attested version fails min_eval
    drift = [e for e in events_of(summary.run_dir) if e["type"] == "step.failed" and e["step"] == "measure-drift"]
    assert "PSI" in json.dumps(drift)


def events_of(run_dir: Path) -> list[dict[str, Any]]:
    return list(read_events(run_dir / "events.jsonl"))


def test_attest_command_writes_version_tags(mlflow_server: MlflowServer, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main

    name = f"cli-{uuid.uuid4().hex[:8]}"
    client(mlflow_server).create_registered_model(name)
    version, _ = log_version(mlflow_server, name, {"model.pkl": b"weights"})

    code = main(
        [
            "attest",
            "--registry",
            "mlflow",
            f"models:/{name}/{version}",
            "--tracking-uri",
            mlflow_server.uri,
            "--by",
            "ci:train",
            "--json",
        ]
    )

    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    tags = client(mlflow_server).get_model_version(name, version).tags
    assert (
        tags["fireline.sha256"] == doc["sha256"] == tree_digest({"model.pkl": hashlib.sha256(b"weights").hexdigest()})
    )
    assert tags["fireline.attested_by"] == "ci:train"


def test_unreachable_server_fails_fast_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    for name in RETRY_DEFAULTS:
        monkeypatch.setenv(name, "unset")  # recorded, so the teardown removes what the client sets
        monkeypatch.delenv(name)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    adapter = MlflowAdapter(
        TargetParams(registry="mlflow", model_name="m", tracking_uri=f"http://127.0.0.1:{port}"), ctx_at(tmp_path)
    )
    adapter.client  # noqa: B018 - building the client bounds MLflow's retries
    assert {name: os.environ[name] for name in RETRY_DEFAULTS} == RETRY_DEFAULTS
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # keep the test fast; the bound itself is above

    with pytest.raises(IntegrationError, match="mlflow: "):
        list(adapter.versions())
