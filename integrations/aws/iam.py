"""IAM actions: disable access keys, quarantine a user or role, capture a principal as evidence.

Quarantine follows the AWS incident response playbooks: an inline deny-all policy (explicit deny
wins over every allow), and for roles the "revoke older sessions" policy, which denies every
request signed with credentials issued before now (``aws:TokenIssueTime``), so stolen temporary
credentials stop working while new, legitimate sessions can be issued after the clean-up.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Target, UndoResult, action
from flows.errors import ActionError
from flows.record.store import utcnow
from integrations.aws.common import arn, live_read, plan_read
from integrations.aws.iam_capture import capture
from integrations.aws.iam_inline import DENY_ALL, put_inline_policy, revoke_sessions_policy
from integrations.aws.session import aws_errors, client, known, tag_dict, tag_list

IAM_NAME = r"^[\w+=,.@-]{1,128}$"
QUARANTINE_POLICY = "fireline-quarantine"
REVOKE_POLICY = "fireline-revoke-older-sessions"
QUARANTINE_TAG = "fireline:quarantined"


class PrincipalParams(ActionParams):
    user_name: str | None = Field(default=None, pattern=IAM_NAME)
    role_name: str | None = Field(default=None, pattern=IAM_NAME)

    @model_validator(mode="after")
    def _exactly_one(self) -> PrincipalParams:
        if (self.user_name is None) == (self.role_name is None):
            raise ValueError("give exactly one of user_name and role_name")
        return self

    @property
    def kind(self) -> Literal["user", "role"]:
        return "user" if self.user_name is not None else "role"

    @property
    def principal(self) -> str:
        return self.user_name or self.role_name or ""


def _principal_kind(params: Any) -> str | None:
    if params is None:
        return None
    if getattr(params, "user_name", None) is not None:
        return "user"
    return "role" if getattr(params, "role_name", None) is not None else None


def principal_tags(ctx: ActionContext, kind: str, name: str) -> dict[str, str]:
    iam = client(ctx, "iam")
    if kind == "user":
        return tag_dict(live_read(f"read user {name}", lambda: iam.list_user_tags(UserName=name))["Tags"])
    return tag_dict(live_read(f"read role {name}", lambda: iam.list_role_tags(RoleName=name))["Tags"])


def principal_target(ctx: ActionContext, kind: str, name: str, warnings: list[str]) -> Target:
    tags = plan_read(ctx, f"read {kind} {name}", lambda: principal_tags(ctx, kind, name), warnings)
    return Target(type=f"aws:iam:{kind}", id=name, arn=arn("iam", f"{kind}/{name}"), tags=tags)


def scoped(actions: list[str], kind: str | None, name: str | None) -> list[dict[str, Any]]:
    resource = arn("iam", f"{kind}/{name}") if kind and name else "*"
    return [{"Effect": "Allow", "Action": sorted(set(actions)), "Resource": resource}]


# -- aws.iam.disable_access_keys ------------------------------------------------------------------


class DisableKeysParams(ActionParams):
    user_name: str = Field(pattern=IAM_NAME)
    access_key_ids: list[str] | None = Field(default=None, description="Default: every key of the user.")


class DisableKeysResult(ActionResult):
    user_name: str
    disabled: list[str] = Field(default_factory=list)
    already_inactive: list[str] = Field(default_factory=list)


@action(
    "aws.iam.disable_access_keys",
    kind=ActionKind.CONTAINMENT,
    params=DisableKeysParams,
    result=DisableKeysResult,
    permissions=("iam:ListUserTags", "iam:ListAccessKeys", "iam:UpdateAccessKey"),
)
class DisableAccessKeys(Action[DisableKeysParams, DisableKeysResult]):
    """Make a user's access keys inactive (all of them unless ``access_key_ids`` names some).

    Keys are deactivated, never deleted: the key id stays as evidence and ``undo`` can reactivate it.
    """

    def plan(self, params: DisableKeysParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        target = principal_target(ctx, "user", params.user_name, warnings)
        keys = params.access_key_ids or ["every access key"]
        return Plan(
            action=self.name,
            summary=f"deactivate access keys of user {params.user_name}",
            targets=[target],
            changes=[f"{params.user_name}: {k} -> Inactive" for k in keys],
            warnings=warnings,
        )

    def apply(self, params: DisableKeysParams, ctx: ActionContext) -> DisableKeysResult:
        iam = client(ctx, "iam")
        keys = live_read(
            f"list access keys of {params.user_name}",
            lambda: iam.list_access_keys(UserName=params.user_name)["AccessKeyMetadata"],
        )
        status = {k["AccessKeyId"]: k["Status"] for k in keys}
        wanted = params.access_key_ids or sorted(status)
        if not wanted:
            raise ActionError(f"user {params.user_name} has no access keys")
        unknown = [k for k in wanted if k not in status]
        if unknown:
            raise ActionError(f"user {params.user_name} has no access key {', '.join(unknown)}")
        result = DisableKeysResult(changed=False, user_name=params.user_name)
        for key_id in wanted:
            if status[key_id] == "Inactive":
                result.already_inactive.append(key_id)
                continue
            with aws_errors(f"deactivate {key_id}"):
                iam.update_access_key(UserName=params.user_name, AccessKeyId=key_id, Status="Inactive")
            result.disabled.append(key_id)
            result.changed = True
        result.summary = (
            f"deactivated {len(result.disabled)} key(s) of {params.user_name}"
            f" ({len(result.already_inactive)} already inactive)"
        )
        return result

    def undo(self, result: DisableKeysResult, ctx: ActionContext) -> UndoResult:
        iam = client(ctx, "iam")
        for key_id in result.disabled:
            with aws_errors(f"reactivate {key_id}"):
                iam.update_access_key(UserName=result.user_name, AccessKeyId=key_id, Status="Active")
        return UndoResult(changed=bool(result.disabled), summary=f"reactivated {len(result.disabled)} key(s)")

    def policy_statements(self, params: DisableKeysParams | None) -> list[dict[str, Any]]:
        return scoped(
            ["iam:ListUserTags", "iam:ListAccessKeys", "iam:UpdateAccessKey"], "user", known(params, "user_name")
        )


# -- aws.iam.quarantine_principal -----------------------------------------------------------------


class QuarantineResult(ActionResult):
    kind: Literal["user", "role"]
    name: str
    policies_added: list[str] = Field(default_factory=list)
    sessions_revoked_before: str | None = None


_QUARANTINE = {
    "user": ("iam:ListUserTags", "iam:GetUserPolicy", "iam:PutUserPolicy", "iam:TagUser"),
    "role": ("iam:ListRoleTags", "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:TagRole"),
}
_UNQUARANTINE = {"user": ("iam:DeleteUserPolicy", "iam:UntagUser"), "role": ("iam:DeleteRolePolicy", "iam:UntagRole")}


@action(
    "aws.iam.quarantine_principal",
    kind=ActionKind.CONTAINMENT,
    params=PrincipalParams,
    result=QuarantineResult,
    permissions=(*_QUARANTINE["user"], *_QUARANTINE["role"]),
    undo_permissions=(*_UNQUARANTINE["user"], *_UNQUARANTINE["role"]),
)
class QuarantinePrincipal(Action[PrincipalParams, QuarantineResult]):
    """Attach a deny-all inline policy to a user or role; for a role also revoke its older sessions."""

    def plan(self, params: PrincipalParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        target = principal_target(ctx, params.kind, params.principal, warnings)
        changes = [f"put inline policy {QUARANTINE_POLICY} (deny *) on {params.kind} {params.principal}"]
        if params.kind == "role":
            changes.append(f"put inline policy {REVOKE_POLICY}: deny sessions issued before now")
        return Plan(
            action=self.name,
            summary=f"quarantine {params.kind} {params.principal}",
            targets=[target],
            changes=changes,
            warnings=warnings,
        )

    def apply(self, params: PrincipalParams, ctx: ActionContext) -> QuarantineResult:
        kind, name = params.kind, params.principal
        result = QuarantineResult(changed=False, kind=kind, name=name)
        principal_tags(ctx, kind, name)  # a missing principal is a clear error before anything changes
        if put_inline_policy(ctx, kind, name, QUARANTINE_POLICY, DENY_ALL, replace=True):
            result.policies_added.append(QUARANTINE_POLICY)
        if kind == "role":
            before = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
            if put_inline_policy(ctx, kind, name, REVOKE_POLICY, revoke_sessions_policy(before), replace=False):
                result.policies_added.append(REVOKE_POLICY)
                result.sessions_revoked_before = before
        iam = client(ctx, "iam")
        with aws_errors(f"tag {kind} {name}"):
            tags = tag_list({QUARANTINE_TAG: ctx.incident.id})
            iam.tag_user(UserName=name, Tags=tags) if kind == "user" else iam.tag_role(RoleName=name, Tags=tags)
        result.changed = bool(result.policies_added)
        result.summary = (
            f"quarantined {kind} {name} ({', '.join(result.policies_added)})"
            if result.changed
            else f"{kind} {name} was already quarantined (no change)"
        )
        return result

    def undo(self, result: QuarantineResult, ctx: ActionContext) -> UndoResult:
        iam = client(ctx, "iam")
        with aws_errors(f"lift the quarantine of {result.kind} {result.name}"):
            for policy in result.policies_added:
                if result.kind == "user":
                    iam.delete_user_policy(UserName=result.name, PolicyName=policy)
                else:
                    iam.delete_role_policy(RoleName=result.name, PolicyName=policy)
            if result.kind == "user":
                iam.untag_user(UserName=result.name, TagKeys=[QUARANTINE_TAG])
            else:
                iam.untag_role(RoleName=result.name, TagKeys=[QUARANTINE_TAG])
        return UndoResult(changed=bool(result.policies_added), summary=f"removed {', '.join(result.policies_added)}")

    def policy_statements(self, params: PrincipalParams | None) -> list[dict[str, Any]]:
        kind = _principal_kind(params)
        kinds = [kind] if kind else ["user", "role"]
        out: list[dict[str, Any]] = []
        for k in kinds:
            name = known(params, f"{k}_name")
            out += scoped([*_QUARANTINE[k], *_UNQUARANTINE[k]], k, name)
        return out


# -- aws.iam.capture_principal --------------------------------------------------------------------


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
        from integrations.aws.common import store_json

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
        kind = _principal_kind(params)
        kinds = [kind] if kind else ["user", "role"]
        out: list[dict[str, Any]] = []
        for k in kinds:
            out += scoped(list(_CAPTURE[k]), k, known(params, f"{k}_name"))
        # Attached managed policies are only known at run time.
        out.append({"Effect": "Allow", "Action": list(_POLICY_READS), "Resource": "*"})
        return out
