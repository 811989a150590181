"""``aws.iam.restore_principal``: give a contained user or role its access back, explicitly.

Undoing an IAM containment never re-opens access for credentials that may have been stolen before
the incident: the keys stay inactive and sessions issued before the containment stay denied. When
the investigation has shown that a principal's credentials were not stolen (or they have been
rotated), this action gives back exactly what it is asked for, each part named, with a reason that
goes into the run record (``iam.access_restored``) and onto the principal as a tag. Being a playbook
step, it runs behind the playbook's approvals and guards like any other.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionResult, Plan, action
from flows.errors import ActionError
from flows.record.store import iso, utcnow
from integrations.aws.iam_inline import delete_inline_policy
from integrations.aws.iam_principal import (
    QUARANTINE_POLICY,
    QUARANTINE_TAG,
    REVOKE_POLICY,
    PrincipalParams,
    principal_kind,
    principal_tags,
    principal_target,
    scoped,
)
from integrations.aws.session import aws_errors, client, known, tag_list

RESTORED_TAG = "fireline:access-restored"


class RestoreParams(PrincipalParams):
    reason: str = Field(min_length=10, max_length=500, description="Why giving access back is safe; recorded.")
    lift_quarantine: bool = Field(default=True, description=f"Delete the {QUARANTINE_POLICY} deny-all policy.")
    lift_session_revocation: bool = Field(
        default=False,
        description=f"Delete {REVOKE_POLICY}: sessions issued before the containment work again.",
    )
    reactivate_access_keys: list[str] = Field(
        default_factory=list, description="users: the key ids to make active again (none by default)."
    )


class RestoreResult(ActionResult):
    kind: str
    name: str
    reason: str
    policies_removed: list[str] = Field(default_factory=list)
    keys_reactivated: list[str] = Field(default_factory=list)


_RESTORE = {
    "user": ("iam:ListUserTags", "iam:GetUserPolicy", "iam:DeleteUserPolicy", "iam:TagUser", "iam:UntagUser"),
    "role": ("iam:ListRoleTags", "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:TagRole", "iam:UntagRole"),
}


@action(
    "aws.iam.restore_principal",
    kind=ActionKind.RECOVERY,
    params=RestoreParams,
    result=RestoreResult,
    permissions=(*_RESTORE["user"], *_RESTORE["role"], "iam:ListAccessKeys", "iam:UpdateAccessKey"),
)
class RestorePrincipal(Action[RestoreParams, RestoreResult]):
    """Lift an IAM containment part by part, with a recorded reason (the only way keys come back).

    Lifting the session revocation or reactivating a key re-opens access for credentials that
    existed before the incident; neither happens unless named.
    """

    guidance = ("AWS IAM User Guide, Disabling permissions for temporary security credentials",)
    caveats = (
        "Reactivating a key or lifting the session revocation trusts every credential issued before the "
        "containment: rotate keys instead where in doubt.",
    )

    def plan(self, params: RestoreParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        changes = []
        if params.lift_quarantine:
            changes.append(f"delete inline policy {QUARANTINE_POLICY} of {params.kind} {params.principal}")
        if params.lift_session_revocation:
            changes.append(f"delete inline policy {REVOKE_POLICY}: sessions issued before the containment work again")
            warnings.append("lifting the session revocation re-opens access for session tokens minted before it")
        for key in params.reactivate_access_keys:
            changes.append(f"{params.principal}: {key} -> Active")
        if params.reactivate_access_keys:
            warnings.append("a reactivated key works for whoever holds it, the attacker included if it was stolen")
        changes.append(f"tag {params.kind} {params.principal} {RESTORED_TAG}: {params.reason!r}")
        return Plan(
            action=self.name,
            summary=f"restore access of {params.kind} {params.principal}",
            targets=[principal_target(ctx, params.kind, params.principal, warnings)],
            changes=changes,
            warnings=warnings,
        )

    def apply(self, params: RestoreParams, ctx: ActionContext) -> RestoreResult:
        kind, name = params.kind, params.principal
        if params.reactivate_access_keys and kind != "user":
            raise ActionError("reactivate_access_keys applies to users only")
        principal_tags(ctx, kind, name)  # a missing principal is a clear error before anything changes
        result = RestoreResult(changed=False, kind=kind, name=name, reason=params.reason)
        if params.lift_quarantine and delete_inline_policy(ctx, kind, name, QUARANTINE_POLICY):
            result.policies_removed.append(QUARANTINE_POLICY)
        if params.lift_session_revocation and delete_inline_policy(ctx, kind, name, REVOKE_POLICY):
            result.policies_removed.append(REVOKE_POLICY)
        iam = client(ctx, "iam")
        if params.reactivate_access_keys:
            with aws_errors(f"list access keys of {name}"):
                owned = {k["AccessKeyId"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]}
            unknown = [k for k in params.reactivate_access_keys if k not in owned]
            if unknown:
                raise ActionError(f"user {name} has no access key {', '.join(unknown)}")
            for key in params.reactivate_access_keys:
                with aws_errors(f"reactivate {key}"):
                    iam.update_access_key(UserName=name, AccessKeyId=key, Status="Active")
                result.keys_reactivated.append(key)
        note = f"{ctx.incident.id} {iso(utcnow())}: {params.reason}"[:256]
        with aws_errors(f"tag {kind} {name}"):
            tags = tag_list({RESTORED_TAG: note})
            if kind == "user":
                iam.tag_user(UserName=name, Tags=tags)
                iam.untag_user(UserName=name, TagKeys=[QUARANTINE_TAG])
            else:
                iam.tag_role(RoleName=name, Tags=tags)
                iam.untag_role(RoleName=name, TagKeys=[QUARANTINE_TAG])
        result.changed = bool(result.policies_removed or result.keys_reactivated)
        ctx.emit(
            "iam.access_restored",
            {
                "kind": kind,
                "name": name,
                "reason": params.reason,
                "policies_removed": result.policies_removed,
                "keys_reactivated": result.keys_reactivated,
                "by": ctx.actor,
            },
        )
        result.summary = (
            f"restored {kind} {name}: removed {result.policies_removed or 'no policy'}, "
            f"reactivated {result.keys_reactivated or 'no key'} ({params.reason})"
        )
        return result

    def policy_statements(self, params: RestoreParams | None) -> list[dict[str, Any]]:
        kind = principal_kind(params)
        out: list[dict[str, Any]] = []
        for k in [kind] if kind else ["user", "role"]:
            extra = ["iam:ListAccessKeys", "iam:UpdateAccessKey"] if k == "user" else []
            out += scoped([*_RESTORE[k], *extra], k, known(params, f"{k}_name"))
        return out
