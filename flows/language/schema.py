"""The JSON Schema of playbooks, for editors with a YAML language server.

Generated from the pydantic models of the language and of every registered action: each step's
``with`` is validated against its action's ``Params`` through ``if``/``then`` on the action name.
Any parameter may also be a template string, which is only known at run time.
"""

from __future__ import annotations

from typing import Any

from flows.actions.registry import Registry

TEMPLATE_STRING: dict[str, Any] = {"type": "string", "pattern": r"\{\{|\{%", "description": "A template."}


def _allow_templates(schema: dict[str, Any]) -> None:
    """Let every property of a Params schema be a template string as well."""
    props = schema.get("properties", {})
    for name, prop in list(props.items()):
        props[name] = {"anyOf": [prop, TEMPLATE_STRING]}
        for key in ("title", "description", "default"):
            if key in prop:
                props[name][key] = prop[key]


def _conditionals(ref_of: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "if": {"properties": {"action": {"const": name}}, "required": ["action"]},
            "then": {"properties": {"with": {"$ref": ref}}},
        }
        for name, ref in sorted(ref_of.items())
    ]


def playbook_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a fireline/v1 playbook, with per-action ``with`` schemas."""
    from pydantic.json_schema import models_json_schema

    from flows.language.spec import FailureHandler, Playbook, Step

    actions = registry.all()
    models: list[Any] = [(Playbook, "validation")] + [(a.Params, "validation") for a in actions]
    refs, top = models_json_schema(models, by_alias=True, ref_template="#/$defs/{model}")
    defs: dict[str, Any] = top.get("$defs", {})
    ref_of: dict[str, str] = {}
    for action in actions:
        ref = refs[(action.Params, "validation")]["$ref"]
        ref_of[action.name] = ref
        target = defs[ref.rsplit("/", 1)[-1]]
        _allow_templates(target)
        target.setdefault("description", f"Parameters of the {action.name} action.")
    names = sorted(ref_of)
    for model in (Step, FailureHandler):
        entry = defs[model.__name__]
        entry["allOf"] = _conditionals(ref_of)
        action_prop = entry["properties"]["action"]
        # Known names complete in the editor; a plug-in installed elsewhere still matches the pattern.
        entry["properties"]["action"] = {
            "anyOf": [{"enum": names}, action_prop],
            "description": "The action to run (fireline actions lists them).",
        }
    playbook_ref = refs[(Playbook, "validation")]["$ref"]
    root = dict(defs.pop(playbook_ref.rsplit("/", 1)[-1]))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "fireline playbook (apiVersion fireline/v1)",
        **root,
        "$defs": defs,
    }
