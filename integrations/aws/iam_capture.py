"""``aws.iam.capture_principal``: all an investigation needs of an IAM user or role, as one JSON document."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import unquote

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionResult, Plan, action
from integrations.aws.common import arn, live_read, store_json, strip_metadata
from integrations.aws.iam_principal import PrincipalParams, principal_kind, principal_target, scoped
from integrations.aws.pages import Gap, OnGap, partial_name, read_pages, settle_gap
from integrations.aws.session import aws_errors, client, known


def _document(doc: Any) -> Any:
    """Policy documents come back URL-encoded from some endpoints and parsed from others."""
    import json

    if isinstance(doc, str):
        return json.loads(unquote(doc))
    return doc


class _Lister:
    """IAM listings page by page; a page that cannot be read leaves a gap, never loses what was read."""

    def __init__(self, ctx: ActionContext, iam: Any) -> None:
        self.ctx, self.iam = ctx, iam
        self.gaps: list[Gap] = []

    def __call__(self, operation: str, key: str, **kwargs: Any) -> list[Any]:
        read = read_pages(
            self.ctx, getattr(self.iam, operation), kwargs, what=f"iam {operation}", items_key=key, token_in="Marker"
        )
        if read.gap is not None:
            read.gap.missing = {"listing": operation, **{k: str(v) for k, v in kwargs.items()}}
            self.gaps.append(read.gap)
        return read.items


def capture(ctx: ActionContext, kind: str, name: str) -> dict[str, Any]:
    """The principal, its tags, inline and attached policies with documents, and for users keys, groups, MFA.

    A listing page that cannot be read ends that listing: the document keeps what was read and
    lists the gaps under ``gaps``.
    """
    iam = client(ctx, "iam")
    paginate = _Lister(ctx, iam)
    if kind == "user":
        base = live_read(f"read user {name}", lambda: iam.get_user(UserName=name))["User"]
    else:
        base = live_read(f"read role {name}", lambda: iam.get_role(RoleName=name))["Role"]
    doc: dict[str, Any] = {kind: base}
    arg = {"UserName": name} if kind == "user" else {"RoleName": name}
    cap = "User" if kind == "user" else "Role"
    with aws_errors(f"capture {kind} {name}"):
        doc["tags"] = paginate(f"list_{kind}_tags", "Tags", **arg)
        doc["inline_policies"] = {
            policy: _document(getattr(iam, f"get_{kind}_policy")(**arg, PolicyName=policy)["PolicyDocument"])
            for policy in paginate(f"list_{kind}_policies", "PolicyNames", **arg)
        }
        doc["attached_policies"] = [
            _managed(iam, p) for p in paginate(f"list_attached_{kind}_policies", "AttachedPolicies", **arg)
        ]
        if kind == "user":
            doc.update(_user_extras(iam, name, paginate))
        else:
            doc["instance_profiles"] = [
                strip_metadata(p)
                for p in paginate("list_instance_profiles_for_role", "InstanceProfiles", RoleName=name)
            ]
    doc["captured_with"] = f"iam:Get{cap}"
    doc["gaps"] = [g.model_dump(mode="json") for g in paginate.gaps]
    return doc


def _managed(iam: Any, attached: dict[str, Any]) -> dict[str, Any]:
    policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
    version = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"])
    return {
        **attached,
        "default_version": policy["DefaultVersionId"],
        "document": _document(version["PolicyVersion"]["Document"]),
    }


def _user_extras(iam: Any, name: str, paginate: _Lister) -> dict[str, Any]:
    keys = paginate("list_access_keys", "AccessKeyMetadata", UserName=name)
    for key in keys:
        key["last_used"] = strip_metadata(iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])).get(
            "AccessKeyLastUsed", {}
        )
    return {
        "access_keys": keys,
        "groups": [g["GroupName"] for g in paginate("list_groups_for_user", "Groups", UserName=name)],
        "mfa_devices": paginate("list_mfa_devices", "MFADevices", UserName=name),
    }


class CaptureParams(PrincipalParams):
    on_gap: OnGap = Field(default="fail", description="When a listing page cannot be read: fail the step, or warn.")


class CaptureResult(ActionResult):
    kind: Literal["user", "role"]
    name: str
    evidence_id: str
    sha256: str
    access_keys: list[str] = Field(default_factory=list)
    gaps: list[Gap] = Field(default_factory=list, description="Listings that stopped short (what was read is kept).")
    warnings: list[str] = Field(default_factory=list)


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
    params=CaptureParams,
    result=CaptureResult,
    permissions=(*_CAPTURE["user"], *_CAPTURE["role"], *_POLICY_READS),
)
class CapturePrincipal(Action[CaptureParams, CaptureResult]):
    """Preserve a user's or role's state: policies (inline and attached, with documents), keys, groups, tags."""

    def plan(self, params: CaptureParams, ctx: ActionContext) -> Plan:
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

    def apply(self, params: CaptureParams, ctx: ActionContext) -> CaptureResult:
        doc = capture(ctx, params.kind, params.principal)
        gaps = [Gap.model_validate(g) for g in doc["gaps"]]
        item = store_json(
            ctx,
            partial_name(f"iam-{params.kind}-{params.principal}.json", gaps[0] if gaps else None, ctx),
            doc,
            description=f"IAM {params.kind} state",
            source_arn=str(doc[params.kind].get("Arn") or arn("iam", f"{params.kind}/{params.principal}")),
        )
        keys = [k["AccessKeyId"] for k in doc.get("access_keys", [])]
        what = f"IAM {params.kind} {params.principal}"
        warnings = settle_gap(ctx, gaps[0] if gaps else None, params.on_gap, what=what, evidence_id=item.id)
        return CaptureResult(
            kind=params.kind,
            name=params.principal,
            evidence_id=item.id,
            sha256=item.sha256,
            access_keys=keys,
            gaps=gaps,
            warnings=warnings,
            summary=f"captured {params.kind} {params.principal} ({item.size} bytes)"
            + (f" (INCOMPLETE: {len(gaps)} listing(s) stopped short)" if gaps else ""),
        )

    def policy_statements(self, params: CaptureParams | None) -> list[dict[str, Any]]:
        kind = principal_kind(params)
        kinds = [kind] if kind else ["user", "role"]
        out: list[dict[str, Any]] = []
        for k in kinds:
            out += scoped(list(_CAPTURE[k]), k, known(params, f"{k}_name"))
        # Attached managed policies are only known at run time.
        out.append({"Effect": "Allow", "Action": list(_POLICY_READS), "Resource": "*"})
        return out
