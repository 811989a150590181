"""The least-privilege IAM policy a playbook needs, from its actions' declared statements.

Each step's action (and each ``on_failure`` handler's) contributes ``policy_statements(params)``,
where ``params`` holds the step's literal ``with`` values; a value that is still a template is
passed through unrendered, and actions treat it as unknown (resource ``*``). The statements of one action on the
same resources are merged (several steps may use one action), IAM actions are deduplicated and
sorted, and each statement's Sid names the fireline action it serves, so a reviewer can tell why
each permission is there. Generic: no cloud SDK is imported here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from flows.actions.registry import Action, Registry
from flows.language.spec import Playbook
from flows.language.template_refs import contains_template

POLICY_VERSION = "2012-10-17"


def partial_params(action: Action[Any, Any], with_: dict[str, Any]) -> Any:
    """``with_`` as the action's Params: validated when every value is a literal, else built unvalidated.

    Unvalidated params keep template strings as they are and defaults for what is absent; they
    exist only to let ``policy_statements`` see which literals are known.
    """
    if not contains_template(with_):
        try:
            return action.Params.model_validate(with_)
        except PydanticValidationError:
            pass  # validation reports this elsewhere; the policy falls back to the unvalidated form
    return action.Params.model_construct(**with_)


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._-]", name) if part)


def _key(statement: dict[str, Any]) -> str:
    resource = statement.get("Resource", "*")
    resources = sorted(resource) if isinstance(resource, list) else [resource]
    return json.dumps([statement.get("Effect", "Allow"), resources, statement.get("Condition")], sort_keys=True)


def merge(contributions: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Merge (action name, statement) pairs of one action on the same resources; add Sids."""
    groups: dict[str, dict[str, Any]] = {}
    sources: dict[str, set[str]] = {}
    for action_name, statement in contributions:
        key = f"{action_name} {_key(statement)}"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if key not in groups:
            resource = statement.get("Resource", "*")
            groups[key] = {
                "Effect": statement.get("Effect", "Allow"),
                "Action": set(),
                "Resource": sorted(resource) if isinstance(resource, list) else resource,
            }
            if statement.get("Condition"):
                groups[key]["Condition"] = statement["Condition"]
            sources[key] = set()
        groups[key]["Action"].update(actions)
        sources[key].add(action_name)
    merged: list[dict[str, Any]] = []
    used: set[str] = set()
    for key, group in sorted(groups.items(), key=lambda kv: (sorted(sources[kv[0]]), kv[0])):
        sid = "".join(_camel(n) for n in sorted(sources[key]))[:100] or "Fireline"
        base, n = sid, 2
        while sid in used:
            sid, n = f"{base}{n}", n + 1
        used.add(sid)
        resource = group["Resource"]
        merged.append(
            {
                "Sid": sid,
                "Effect": group["Effect"],
                "Action": sorted(group["Action"]),
                "Resource": resource[0] if isinstance(resource, list) and len(resource) == 1 else resource,
                **({"Condition": group["Condition"]} if "Condition" in group else {}),
            }
        )
    return merged


def playbook_policy(playbook: Playbook, registry: Registry) -> dict[str, Any]:
    """The IAM policy document (JSON-ready) that lets fireline run every step of ``playbook``."""
    contributions: list[tuple[str, dict[str, Any]]] = []
    calls = [(step.action, step.with_) for step in playbook.steps]
    calls += [(handler.action, handler.with_) for step in playbook.steps for handler in step.on_failure]
    for name, with_ in calls:
        action = registry.get(name)
        for statement in action.policy_statements(partial_params(action, with_)):
            contributions.append((name, statement))
    return {"Version": POLICY_VERSION, "Statement": merge(contributions)}


def actions_of(policy: dict[str, Any]) -> list[str]:
    """Every IAM action a policy document grants, sorted (for reviews and tests)."""
    return sorted(
        {a for s in policy["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    )
