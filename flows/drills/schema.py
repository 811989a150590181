"""The scenario's JSON Schema, added to ``fireline schema`` beside the playbook's."""

from __future__ import annotations

from typing import Any


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``kind: Scenario`` document."""
    from flows.drills.models import Scenario

    return Scenario.model_json_schema(by_alias=True, ref_template="#/$defs/scenario/$defs/{model}")


def with_scenario(document: dict[str, Any]) -> dict[str, Any]:
    """The playbook schema with the scenario under ``$defs.scenario`` (``$ref: #/$defs/scenario``)."""
    defs = dict(document.get("$defs", {}))
    defs["scenario"] = scenario_schema()
    return {**document, "$defs": defs}
