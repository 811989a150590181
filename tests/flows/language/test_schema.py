"""The editor schema: generated from the models, each step's with checked by its action."""

from __future__ import annotations

from typing import Any

import pytest

from flows.language.schema import playbook_schema
from tests.flows.fake_actions import registry

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (a Prefect dependency) checks the schema")


def _doc(**step: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fireline/v1",
        "kind": "Playbook",
        "metadata": {"name": "s", "version": 1, "title": "S"},
        "steps": [{"id": "a", **step}],
    }


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = playbook_schema(registry())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: Any, doc: dict[str, Any]) -> set[str]:
    return {".".join(map(str, e.absolute_path)) + ": " + e.validator for e in validator.iter_errors(doc)}


def test_a_valid_playbook_passes(validator: Any) -> None:
    doc = _doc(action="demo.evidence.collect", with_={})
    doc["steps"][0] = {"id": "a", "action": "demo.evidence.collect", "with": {"target": "x", "window": "5m"}}
    assert _errors(validator, doc) == set()


def test_with_is_checked_against_the_actions_params(validator: Any) -> None:
    doc = _doc(action="demo.box.isolate")
    doc["steps"][0]["with"] = {"instance_id": "web-1", "reson": "x"}
    assert _errors(validator, doc) == {"steps.0.with: additionalProperties", "steps.0.with.instance_id: anyOf"}
    doc["steps"][0]["with"] = {}
    assert _errors(validator, doc) == {"steps.0.with: required"}


def test_templates_are_accepted_for_any_parameter(validator: Any) -> None:
    doc = _doc(action="demo.evidence.collect")
    doc["steps"][0]["with"] = {"target": "{{ item }}", "depth": "{{ inputs.depth }}"}
    assert _errors(validator, doc) == set()


def test_on_failure_handlers_are_checked_too(validator: Any) -> None:
    doc = _doc(action="log")
    doc["steps"][0]["with"] = {"message": "hi"}
    doc["steps"][0]["on_failure"] = [{"action": "wait", "with": {"duration": 5}}]
    assert _errors(validator, doc) == {"steps.0.on_failure.0.with.duration: anyOf"}


def test_unknown_keys_and_durations_are_caught(validator: Any) -> None:
    doc = _doc(action="log", timeout="5 minutes")
    doc["steps"][0]["with"] = {"message": "hi"}
    doc["steps"][0]["need"] = []
    assert _errors(validator, doc) == {"steps.0: additionalProperties", "steps.0.timeout: anyOf"}


def test_every_action_has_a_conditional() -> None:
    schema = playbook_schema(registry())
    conditions = schema["$defs"]["Step"]["allOf"]
    names = sorted(c["if"]["properties"]["action"]["const"] for c in conditions)
    assert names == registry().names()


def test_shipped_playbooks_pass_the_schema_of_the_real_catalogue() -> None:
    from pathlib import Path

    from flows.actions.registry import default_registry
    from flows.cli.spec_cmds import collect_playbooks
    from flows.language.loader import load_yaml

    validator = jsonschema.Draft202012Validator(playbook_schema(default_registry()))
    repo = Path(__file__).resolve().parents[3]
    for path in collect_playbooks([repo / "playbooks"]):
        data, _ = load_yaml(path)
        errors = [f"{path.name}: {list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
        assert errors == []
