"""The model rollback demo end to end against the loopback moto server (boto3 over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.record.store import read_events
from flows.sandbox import DEMO_STEPS, demo_settings, run_demo
from integrations.aws.moto_server import MotoServer
from integrations.aws.sandbox import seed, seed_iam
from integrations.models.seed import seed_model_registry

pytestmark = [pytest.mark.moto_server, pytest.mark.e2e]


def test_poisoning_demo_on_the_moto_server(moto: MotoServer, tmp_path: Path, repo_root: Path) -> None:
    moto.reset()
    world = seed(moto.endpoint, seeders=[seed_iam, seed_model_registry])
    settings = demo_settings(moto.endpoint, tmp_path, tmp_path / "runs", repo_root / "playbooks")
    step = next(s for s in DEMO_STEPS if s.playbook == "model-poisoning-rollback")

    [result] = run_demo(world, settings, [step])

    assert result["outcome"] == "succeeded", result["steps"]
    assert result["endpoint_weights"]["after"] == {"stable": 1.0, "canary": 0.0}
    assert sorted(result["quarantined"]) == ["poisoned", "tampered"]  # the one it replaced, the one tampered with
    events = list(read_events(Path(result["run_dir"]) / "events.jsonl"))
    tampered = [e["detail"]["version"] for e in events if e["type"] == "model.tampering_detected"]
    assert tampered == [world.data["model_versions"]["tampered"]]
    rolled = next(e for e in events if e["type"] == "model.rolled_back")
    assert rolled["detail"]["version"] == world.data["model_versions"]["known_good"]
