"""IAM containment: disable a user's access keys, quarantine a user or role; both revoke older sessions.

Deactivating an access key does not end the sessions minted from it: credentials from
``GetSessionToken`` or ``GetFederationToken`` stay valid until they expire (up to 36 hours), and
role sessions likewise (AWS IAM User Guide, "Disabling permissions for temporary security
credentials"). Permissions are evaluated on every request, so containment of a principal puts an
inline deny on it with the condition ``aws:TokenIssueTime`` earlier than now ("revoke older
sessions", as the IAM console's *Revoke active sessions* does for roles): stolen temporary
credentials stop working at once, while sessions issued after the clean-up are unaffected.
Quarantine adds an inline deny-all (an explicit deny wins over every allow).

``undo`` never silently re-opens access for credentials stolen before the incident: undoing a
quarantine keeps the session revocation, and keeps the deny-all too while the user still has an
active access key created before the containment (the deny-all is then all that stops it); undoing a
key deactivation leaves the keys inactive. Giving those back is ``aws.iam.restore_principal``: an
explicit step with a reason, recorded in the run record.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, UndoResult, action
from flows.errors import ActionError
from integrations.aws.common import live_read
from integrations.aws.iam_inline import (
    DENY_ALL,
    delete_inline_policy,
    put_inline_policy,
    revoke_older_sessions,
)
from integrations.aws.iam_principal import (
    IAM_NAME,
    IAM_NAME_MAX,
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

__all__ = ["DENY_ALL", "QUARANTINE_POLICY", "REVOKE_POLICY", "DisableAccessKeys", "QuarantinePrincipal"]

GUIDANCE = (
    "AWS IAM User Guide, Disabling permissions for temporary security credentials (aws:TokenIssueTime deny)",
    "AWS Security Incident Response Guide, containment of compromised IAM credentials",
)
SESSION_CAVEATS = (
    "Requests signed with long-term access keys carry no aws:TokenIssueTime: the session deny does not stop "
    "them; deactivate the keys (aws.iam.disable_access_keys) for that.",
    "Not covered: resource-based policies that grant the principal access by ARN from another account, "
    "sessions of roles the principal could assume (quarantine those roles too), console passwords and MFA.",
    "IAM is eventually consistent: a policy change can take a few seconds to apply everywhere.",
)


class DisableKeysParams(ActionParams):
    user_name: str = Field(pattern=IAM_NAME, max_length=IAM_NAME_MAX)
    access_key_ids: list[str] | None = Field(default=None, description="Default: every key of the user.")
    revoke_sessions: bool = Field(
        default=True,
        description="Also deny the user's sessions issued before now (aws:TokenIssueTime): tokens minted from "
        "the keys stay valid for up to 36 h otherwise.",
    )


class DisableKeysResult(ActionResult):
    user_name: str
    disabled: list[str] = Field(default_factory=list)
    already_inactive: list[str] = Field(default_factory=list)
    sessions_revoked_before: str | None = Field(default=None, description="The aws:TokenIssueTime cutoff in force.")


@action(
    "aws.iam.disable_access_keys",
    kind=ActionKind.CONTAINMENT,
    params=DisableKeysParams,
    result=DisableKeysResult,
    permissions=(
        "iam:ListUserTags",
        "iam:ListAccessKeys",
        "iam:UpdateAccessKey",
        "iam:GetUserPolicy",
        "iam:PutUserPolicy",
    ),
)
class DisableAccessKeys(Action[DisableKeysParams, DisableKeysResult]):
    """Make a user's access keys inactive and revoke the sessions minted before now.

    Keys are deactivated, never deleted: the key id stays as evidence. ``undo`` leaves them inactive
    (a stolen key must not come back by an undo); ``aws.iam.restore_principal`` reactivates them.
    """

    guidance = GUIDANCE
    caveats = (
        "Without revoke_sessions, tokens from GetSessionToken/GetFederationToken minted before stay valid "
        "for up to 36 hours.",
        *SESSION_CAVEATS,
    )

    def plan(self, params: DisableKeysParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        target = principal_target(ctx, "user", params.user_name, warnings)
        keys = params.access_key_ids or ["every access key"]
        changes = [f"{params.user_name}: {k} -> Inactive" for k in keys]
        if params.revoke_sessions:
            changes.append(f"put inline policy {REVOKE_POLICY} on {params.user_name}: deny sessions issued before now")
        else:
            warnings.append("revoke_sessions is off: session tokens minted from the keys stay valid until they expire")
        return Plan(
            action=self.name,
            summary=f"deactivate access keys of user {params.user_name}",
            targets=[target],
            changes=changes,
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
        if params.revoke_sessions:
            result.sessions_revoked_before, revoked = revoke_older_sessions(
                ctx, "user", params.user_name, REVOKE_POLICY
            )
            result.changed |= revoked
        sessions = (
            f"; sessions issued before {result.sessions_revoked_before} denied"
            if result.sessions_revoked_before
            else "; its session tokens were NOT revoked"
        )
        result.summary = (
            f"deactivated {len(result.disabled)} key(s) of {params.user_name}"
            f" ({len(result.already_inactive)} already inactive){sessions}"
        )
        return result

    def undo(self, result: DisableKeysResult, ctx: ActionContext) -> UndoResult:
        # Reactivating a key that may have been stolen re-opens the door: that is restore_principal's
        # explicit, reasoned choice, never an undo's side effect.
        ctx.log(
            f"undo leaves the keys of {result.user_name} inactive and its older sessions revoked; "
            "use aws.iam.restore_principal with a reason to reactivate them",
            keys=result.disabled,
        )
        return UndoResult(
            changed=False,
            summary=f"kept {len(result.disabled)} key(s) of {result.user_name} inactive "
            "(reactivation is aws.iam.restore_principal, with a reason)",
        )

    def policy_statements(self, params: DisableKeysParams | None) -> list[dict[str, Any]]:
        return scoped(list(self.permissions), "user", known(params, "user_name"))


class QuarantineResult(ActionResult):
    kind: Literal["user", "role"]
    name: str
    policies_added: list[str] = Field(default_factory=list)
    sessions_revoked_before: str | None = None


_QUARANTINE = {
    "user": ("iam:ListUserTags", "iam:GetUserPolicy", "iam:PutUserPolicy", "iam:TagUser"),
    "role": ("iam:ListRoleTags", "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:TagRole"),
}
_UNQUARANTINE = {
    "user": ("iam:ListAccessKeys", "iam:DeleteUserPolicy", "iam:UntagUser"),
    "role": ("iam:DeleteRolePolicy", "iam:UntagRole"),
}


@action(
    "aws.iam.quarantine_principal",
    kind=ActionKind.CONTAINMENT,
    params=PrincipalParams,
    result=QuarantineResult,
    permissions=(*_QUARANTINE["user"], *_QUARANTINE["role"]),
    undo_permissions=(*_UNQUARANTINE["user"], *_UNQUARANTINE["role"]),
)
class QuarantinePrincipal(Action[PrincipalParams, QuarantineResult]):
    """Attach a deny-all inline policy to a user or role and revoke its sessions issued before now.

    ``undo`` lifts the deny-all only: the session revocation stays, so credentials minted before the
    incident never work again (``aws.iam.restore_principal`` lifts it, explicitly, with a reason).
    """

    guidance = GUIDANCE
    caveats = SESSION_CAVEATS

    def plan(self, params: PrincipalParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        target = principal_target(ctx, params.kind, params.principal, warnings)
        return Plan(
            action=self.name,
            summary=f"quarantine {params.kind} {params.principal}",
            targets=[target],
            changes=[
                f"put inline policy {QUARANTINE_POLICY} (deny *) on {params.kind} {params.principal}",
                f"put inline policy {REVOKE_POLICY}: deny sessions issued before now (aws:TokenIssueTime)",
            ],
            warnings=warnings,
        )

    def apply(self, params: PrincipalParams, ctx: ActionContext) -> QuarantineResult:
        kind, name = params.kind, params.principal
        result = QuarantineResult(changed=False, kind=kind, name=name)
        principal_tags(ctx, kind, name)  # a missing principal is a clear error before anything changes
        if put_inline_policy(ctx, kind, name, QUARANTINE_POLICY, DENY_ALL, replace=True):
            result.policies_added.append(QUARANTINE_POLICY)
        result.sessions_revoked_before, revoked = revoke_older_sessions(ctx, kind, name, REVOKE_POLICY)
        iam = client(ctx, "iam")
        with aws_errors(f"tag {kind} {name}"):
            tags = tag_list({QUARANTINE_TAG: ctx.incident.id})
            iam.tag_user(UserName=name, Tags=tags) if kind == "user" else iam.tag_role(RoleName=name, Tags=tags)
        result.changed = bool(result.policies_added) or revoked
        result.summary = (
            f"quarantined {kind} {name} ({', '.join(result.policies_added)}); "
            f"sessions issued before {result.sessions_revoked_before} denied"
            if result.changed
            else f"{kind} {name} was already quarantined (sessions before {result.sessions_revoked_before} denied)"
        )
        return result

    def undo(self, result: QuarantineResult, ctx: ActionContext) -> UndoResult:
        iam = client(ctx, "iam")
        if result.kind == "user" and QUARANTINE_POLICY in result.policies_added:
            still_open = _older_active_keys(iam, result.name, result.sessions_revoked_before or "")
            if still_open:
                # Lifting the deny-all would hand these keys (stolen ones included) their access back.
                message = (
                    f"kept {QUARANTINE_POLICY} on user {result.name}: access key(s) {', '.join(still_open)} "
                    "created before the containment are still active; deactivate them "
                    "(aws.iam.disable_access_keys) or lift it with aws.iam.restore_principal and a reason"
                )
                ctx.log(message, keys=still_open)
                return UndoResult(changed=False, summary=message)
        lifted = QUARANTINE_POLICY in result.policies_added and delete_inline_policy(
            ctx, result.kind, result.name, QUARANTINE_POLICY
        )
        with aws_errors(f"untag {result.kind} {result.name}"):
            if result.kind == "user":
                iam.untag_user(UserName=result.name, TagKeys=[QUARANTINE_TAG])
            else:
                iam.untag_role(RoleName=result.name, TagKeys=[QUARANTINE_TAG])
        kept = f"; {REVOKE_POLICY} kept (sessions issued before {result.sessions_revoked_before} stay denied)"
        return UndoResult(changed=bool(lifted), summary=f"removed {QUARANTINE_POLICY if lifted else 'nothing'}{kept}")

    def policy_statements(self, params: PrincipalParams | None) -> list[dict[str, Any]]:
        kind = principal_kind(params)
        kinds = [kind] if kind else ["user", "role"]
        out: list[dict[str, Any]] = []
        for k in kinds:
            name = known(params, f"{k}_name")
            out += scoped([*_QUARANTINE[k], *_UNQUARANTINE[k]], k, name)
        return out


def _older_active_keys(iam: Any, user: str, cutoff: str) -> list[str]:
    """The user's active access keys created before ``cutoff`` (ISO-8601; every active key when empty).

    The cutoff has whole seconds: a key from the same second counts as older (the safe side).
    """
    from datetime import datetime, timedelta

    with aws_errors(f"list access keys of {user}"):
        keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    limit = datetime.fromisoformat(cutoff.replace("Z", "+00:00")) + timedelta(seconds=1) if cutoff else None
    return sorted(
        str(k["AccessKeyId"]) for k in keys if k["Status"] == "Active" and (limit is None or k["CreateDate"] < limit)
    )
