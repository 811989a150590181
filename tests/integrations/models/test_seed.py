"""The sandbox's model registry and the model rollback demo step, on in-process moto."""

from __future__ import annotations

from pathlib import Path

from moto import mock_aws

from flows.record.store import read_events
from flows.sandbox import DEMO_STEPS, demo_settings, run_demo
from integrations.aws.sandbox import SEEDERS, World
from integrations.models.seed import endpoint_weights, seed_model_registry


def test_model_seeder_and_demo_step_are_listed() -> None:
    assert seed_model_registry in SEEDERS
    assert "model-poisoning-rollback" in [s.playbook for s in DEMO_STEPS]


def test_demo_rolls_the_endpoint_back(tmp_path: Path, repo_root: Path) -> None:
    with mock_aws():
        world = World(endpoint_url="")
        object.__setattr__(world, "endpoint_url", None)  # in-process moto: no endpoint URL
        seed_model_registry(world)
        assert endpoint_weights(world) == {"stable": 0.0, "canary": 1.0}
        settings = demo_settings("", tmp_path, tmp_path / "runs", repo_root / "playbooks")
        settings = settings.model_copy(update={"aws": settings.aws.model_copy(update={"endpoint_url": None})})
        step = next(s for s in DEMO_STEPS if s.playbook == "model-poisoning-rollback")

        [result] = run_demo(world, settings, [step])

    assert result["outcome"] == "succeeded", result["steps"]
    assert result["endpoint_weights"] == {
        "before": {"stable": 0.0, "canary": 1.0},
        "after": {"stable": 1.0, "canary": 0.0},
    }
    assert sorted(result["quarantined"]) == ["poisoned", "tampered"]  # the one it replaced, the one tampered with
    tampering = [
        e for e in read_events(Path(result["run_dir"]) / "events.jsonl") if e["type"] == "model.tampering_detected"
    ]
    assert [e["detail"]["version"] for e in tampering] == [world.data["model_versions"]["tampered"]]
