"""Gaps a drill finds: unreachable contacts, steps that would fail, permissions the role lacks.

The permissions check asks IAM's policy simulator (``iam:SimulatePrincipalPolicy``, read-only)
whether the identity in use may call every action of the playbook's least-privilege policy
(``fireline iam-policy``). Where the simulator cannot answer (no credentials, access denied, or
moto, which does not implement it), the gap list says that the check was not made, and why.
"""

from __future__ import annotations

import importlib
from typing import Any

from flows.drills.expect import Observed
from flows.drills.models import Scenario
from flows.language.spec import Playbook


def _principal(arn: str) -> str:
    """The simulator's source ARN: an assumed-role session becomes its role."""
    if ":assumed-role/" in arn:
        account = arn.split(":")[4]
        role = arn.split(":assumed-role/")[1].split("/")[0]
        return f"arn:aws:iam::{account}:role/{role}"
    return arn


def permission_gaps(playbook: Playbook, settings: Any) -> dict[str, Any]:
    """``{"checked": bool, "principal", "missing": [action], "note"}`` for the identity in use."""
    from flows.actions.iam_policy import actions_of, playbook_policy
    from flows.actions.registry import default_registry

    needed = actions_of(playbook_policy(playbook, default_registry()))
    if not needed:
        return {"checked": True, "principal": None, "missing": [], "note": "the playbook makes no AWS call"}
    try:
        session = importlib.import_module("integrations.aws.session").shared_botocore_session()
        kw = {"region_name": settings.aws.region, "endpoint_url": settings.aws.endpoint_url}
        arn = session.create_client("sts", **kw).get_caller_identity()["Arn"]
        iam = session.create_client("iam", **kw)
        missing: list[str] = []
        for start in range(0, len(needed), 100):  # the API takes at most 100 actions a call
            answer = iam.simulate_principal_policy(
                PolicySourceArn=_principal(arn), ActionNames=needed[start : start + 100]
            )
            missing += [r["EvalActionName"] for r in answer["EvaluationResults"] if r["EvalDecision"] != "allowed"]
    except Exception as e:
        code = getattr(e, "response", {}).get("Error", {}).get("Code") if hasattr(e, "response") else None
        reason = code or type(e).__name__
        if isinstance(e, NotImplementedError) or "NotImplemented" in str(e):
            reason = "the policy simulator is not implemented here (moto does not implement SimulatePrincipalPolicy)"
        return {"checked": False, "principal": None, "missing": [], "needed": needed, "note": f"not checked: {reason}"}
    return {"checked": True, "principal": arn, "missing": missing, "needed": needed, "note": ""}


def find_gaps(scenario: Scenario, seen: Observed, permissions: dict[str, Any]) -> list[dict[str, str]]:
    """Every gap as ``{"kind", "what", "fix"}``: the improvement plan is built from these."""
    gaps: list[dict[str, str]] = []
    for who in scenario.responders.unreachable:
        if who in seen.paged:
            gaps.append({"kind": "unreachable contact", "what": f"{who} was paged but could not be reached",
                         "fix": f"check {who}'s contact details and add a deputy to their level"})  # fmt: skip
    for step, status in seen.steps.items():
        if status == "failed":
            why = "; ".join(seen.would_refuse.get(step, [])) or seen.errors.get(step) or "the step failed"
            gaps.append({"kind": "step would fail", "what": f"{step}: {why}",
                         "fix": f"fix what makes {step} fail, or give it retries or an on_failure path"})  # fmt: skip
    for action in permissions.get("missing", []):
        gaps.append({"kind": "missing permission", "what": f"{permissions.get('principal')} lacks {action}",
                     "fix": "grant the policy printed by fireline iam-policy to the role fireline uses"})  # fmt: skip
    return gaps
