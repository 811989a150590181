"""Shared helpers for the engine tests: a registry with the test actions, settings, playbook files."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from flows.actions.registry import Registry
from flows.config import Settings
from flows.record.store import read_events

PLUGIN = "tests.flows.engine.plugin_actions"


def make_registry() -> Registry:
    """Control actions plus the test plug-in; independent of the cloud integrations."""
    registry = Registry()
    registry.register_module("flows.actions.control")
    registry.register_module(PLUGIN)
    return registry


def make_settings(tmp: Path, approvers: dict[str, list[str]] | None = None) -> Settings:
    approvers_file = None
    if approvers is not None:
        approvers_file = tmp / "approvers.yaml"
        approvers_file.write_text(yaml.safe_dump({"groups": approvers}))
    return Settings(
        home=tmp / "home", runs_dir=tmp / "runs", playbooks_dir=tmp / "playbooks", approvers_file=approvers_file
    )


def write_playbook(tmp: Path, steps: list[dict[str, Any]], *, name: str = "test-book", **extra: Any) -> Path:
    """Write a playbook file into ``<tmp>/playbooks/<name>.yaml`` and return its path."""
    doc = {
        "apiVersion": "fireline/v1",
        "kind": "Playbook",
        "metadata": {"name": name, "version": 1, "title": "Test"},
        "steps": steps,
        **extra,
    }
    path = tmp / "playbooks" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def events(run_dir: Path, type_: str | None = None, step: str | None = None) -> list[dict[str, Any]]:
    found = list(read_events(run_dir / "events.jsonl"))
    return [e for e in found if (type_ is None or e["type"] == type_) and (step is None or e["step"] == step)]


def run_json(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return data


def wait_until(predicate: Callable[[], bool]) -> None:
    """Wait for a state another thread reaches (polling, no fixed sleep; pytest-timeout bounds a hang)."""
    rest = threading.Event()
    while not predicate():
        rest.wait(0.005)
