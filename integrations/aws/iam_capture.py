"""``aws.iam.capture_principal``: all an investigation needs of an IAM user or role, as one JSON document."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import unquote

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionResult, Plan, action
from integrations.aws.common import arn, live_read, store_json, strip_metadata
from integrations.aws.iam_principal import PrincipalParams, principal_kind, principal_target, scoped
from integrations.aws.session import aws_errors, client, known, paginate


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


class CaptureResult(ActionResult):
    kind: Literal["user", "role"]
    name: str
    evidence_id: str
    sha256: str
    access_keys: list[str] = Field(default_factory=list)


_CAPTURE = {
    "user": (
        "iam:GetUser",
        "iam:ListUserTags",
        "iam:ListAccessKeys",
        "iam:GetAccessKeyLastUsed",
        "iam:ListGroupsForUser",
        "iam:ListUserPolicies",
        "iam:GetUserPolicy",
        "iam:ListAttachedUserPolicies",
        "iam:ListMFADevices",
    ),
    "role": (
        "iam:GetRole",
        "iam:ListRoleTags",
        "iam:ListRolePolicies",
        "iam:GetRolePolicy",
        "iam:ListAttachedRolePolicies",
        "iam:ListInstanceProfilesForRole",
    ),
}
_POLICY_READS = ("iam:GetPolicy", "iam:GetPolicyVersion")


@action(
    "aws.iam.capture_principal",
    kind=ActionKind.EVIDENCE,
    params=PrincipalParams,
    result=CaptureResult,
    permissions=(*_CAPTURE["user"], *_CAPTURE["role"], *_POLICY_READS),
)
class CapturePrincipal(Action[PrincipalParams, CaptureResult]):
    """Preserve a user's or role's state: policies (inline and attached, with documents), keys, groups, tags."""

    def plan(self, params: PrincipalParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        target = principal_target(ctx, params.kind, params.principal, warnings)
        return Plan(
            action=self.name,
            summary=f"capture {params.kind} {params.principal}",
            targets=[target],
            reads=[f"{params.kind} {params.principal}: policies, keys, groups, tags"],
            warnings=warnings,
            mutating=False,
        )

    def apply(self, params: PrincipalParams, ctx: ActionContext) -> CaptureResult:
        doc = capture(ctx, params.kind, params.principal)
        item = store_json(
            ctx,
            f"iam-{params.kind}-{params.principal}.json",
            doc,
            description=f"IAM {params.kind} state",
            source_arn=str(doc[params.kind].get("Arn") or arn("iam", f"{params.kind}/{params.principal}")),
        )
        keys = [k["AccessKeyId"] for k in doc.get("access_keys", [])]
        return CaptureResult(
            kind=params.kind,
            name=params.principal,
            evidence_id=item.id,
            sha256=item.sha256,
            access_keys=keys,
            summary=f"captured {params.kind} {params.principal} ({item.size} bytes)",
        )

    def policy_statements(self, params: PrincipalParams | None) -> list[dict[str, Any]]:
        kind = principal_kind(params)
        kinds = [kind] if kind else ["user", "role"]
        out: list[dict[str, Any]] = []
        for k in kinds:
            out += scoped(list(_CAPTURE[k]), k, known(params, f"{k}_name"))
        # Attached managed policies are only known at run time.
        out.append({"Effect": "Allow", "Action": list(_POLICY_READS), "Resource": "*"})
        return out
