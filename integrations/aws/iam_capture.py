"""Read everything about an IAM user or role that an investigation needs, as one JSON document."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from flows.actions.context import ActionContext
from integrations.aws.common import live_read, strip_metadata
from integrations.aws.session import aws_errors, client, paginate


def _document(doc: Any) -> Any:
    """Policy documents come back URL-encoded from some endpoints and parsed from others."""
    import json

    if isinstance(doc, str):
        return json.loads(unquote(doc))
    return doc


def capture(ctx: ActionContext, kind: str, name: str) -> dict[str, Any]:
    """The principal, its tags, inline and attached policies with documents, and for users keys, groups, MFA."""
    iam = client(ctx, "iam")
    if kind == "user":
        base = live_read(f"read user {name}", lambda: iam.get_user(UserName=name))["User"]
    else:
        base = live_read(f"read role {name}", lambda: iam.get_role(RoleName=name))["Role"]
    doc: dict[str, Any] = {kind: base}
    arg = {"UserName": name} if kind == "user" else {"RoleName": name}
    cap = "User" if kind == "user" else "Role"
    with aws_errors(f"capture {kind} {name}"):
        doc["tags"] = list(paginate(iam, f"list_{kind}_tags", "Tags", **arg))
        doc["inline_policies"] = {
            policy: _document(getattr(iam, f"get_{kind}_policy")(**arg, PolicyName=policy)["PolicyDocument"])
            for policy in paginate(iam, f"list_{kind}_policies", "PolicyNames", **arg)
        }
        doc["attached_policies"] = [
            _managed(iam, p) for p in paginate(iam, f"list_attached_{kind}_policies", "AttachedPolicies", **arg)
        ]
        if kind == "user":
            doc.update(_user_extras(iam, name))
        else:
            doc["instance_profiles"] = [
                strip_metadata(p)
                for p in paginate(iam, "list_instance_profiles_for_role", "InstanceProfiles", RoleName=name)
            ]
    doc["captured_with"] = f"iam:Get{cap}"
    return doc


def _managed(iam: Any, attached: dict[str, Any]) -> dict[str, Any]:
    policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
    version = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"])
    return {
        **attached,
        "default_version": policy["DefaultVersionId"],
        "document": _document(version["PolicyVersion"]["Document"]),
    }


def _user_extras(iam: Any, name: str) -> dict[str, Any]:
    keys = list(paginate(iam, "list_access_keys", "AccessKeyMetadata", UserName=name))
    for key in keys:
        key["last_used"] = strip_metadata(iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])).get(
            "AccessKeyLastUsed", {}
        )
    return {
        "access_keys": keys,
        "groups": [g["GroupName"] for g in paginate(iam, "list_groups_for_user", "Groups", UserName=name)],
        "mfa_devices": list(paginate(iam, "list_mfa_devices", "MFADevices", UserName=name)),
    }
