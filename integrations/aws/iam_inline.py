"""Inline policies that quarantine a principal, and putting one idempotently."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from flows.actions.context import ActionContext
from integrations.aws.session import aws_errors, client, error_code

DENY_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "FirelineQuarantineDenyAll", "Effect": "Deny", "Action": "*", "Resource": "*"}],
}


def revoke_sessions_policy(before: str) -> dict[str, Any]:
    """Deny everything to sessions whose credentials were issued before ``before`` (ISO-8601 UTC)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "FirelineRevokeOlderSessions",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": before}},
            }
        ],
    }


def put_inline_policy(
    ctx: ActionContext, kind: str, name: str, policy: str, doc: dict[str, Any], *, replace: bool
) -> bool:
    """Put an inline policy unless an equal one (or, with ``replace=False``, any one) is there."""
    current = read_inline_policy(ctx, kind, name, policy)
    if current is not None and (current == doc or not replace):
        return False
    iam = client(ctx, "iam")
    text = json.dumps(doc)
    with aws_errors(f"put policy {policy} on {kind} {name}"):
        if kind == "user":
            iam.put_user_policy(UserName=name, PolicyName=policy, PolicyDocument=text)
        else:
            iam.put_role_policy(RoleName=name, PolicyName=policy, PolicyDocument=text)
    return True


def revoke_older_sessions(ctx: ActionContext, kind: str, name: str, policy: str) -> tuple[str, bool]:
    """Deny the principal's sessions issued before now; return (the cutoff in force, whether it changed).

    ``aws:TokenIssueTime`` is present only in requests signed with temporary credentials (AWS IAM
    User Guide, "Disabling permissions for temporary security credentials"; IAM condition context
    keys), so the deny hits every session token minted before the cutoff (``GetSessionToken``,
    ``GetFederationToken``, ``AssumeRole``) and never the principal's long-term keys or sessions
    issued after it. A cutoff set since the incident started is kept (a retry changes nothing); an
    older one, from an earlier incident, is moved forward, never back.
    """
    from flows.record.store import iso, utcnow

    current = read_inline_policy(ctx, kind, name, policy)
    existing = ""
    if current is not None:
        try:
            existing = str(current["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"])
        except (KeyError, IndexError, TypeError):
            existing = ""
    since = iso(ctx.incident.started_at).replace("+00:00", "Z")[:19] + "Z"
    if existing and existing[:19] + "Z" >= since:
        return existing, False
    cutoff = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    put_inline_policy(ctx, kind, name, policy, revoke_sessions_policy(cutoff), replace=True)
    return cutoff, True


def read_inline_policy(ctx: ActionContext, kind: str, name: str, policy: str) -> Any:
    """An inline policy's document, or None when the principal has no policy of that name."""
    from botocore.exceptions import ClientError

    iam = client(ctx, "iam")
    with aws_errors(f"read policy {policy} of {kind} {name}"):
        try:
            doc = (
                iam.get_user_policy(UserName=name, PolicyName=policy)
                if kind == "user"
                else iam.get_role_policy(RoleName=name, PolicyName=policy)
            )["PolicyDocument"]
        except ClientError as e:
            if error_code(e) != "NoSuchEntity":
                raise
            return None
    return json.loads(unquote(doc)) if isinstance(doc, str) else doc


def delete_inline_policy(ctx: ActionContext, kind: str, name: str, policy: str) -> bool:
    """Delete an inline policy; False when it was not there."""
    if read_inline_policy(ctx, kind, name, policy) is None:
        return False
    iam = client(ctx, "iam")
    with aws_errors(f"delete policy {policy} of {kind} {name}"):
        if kind == "user":
            iam.delete_user_policy(UserName=name, PolicyName=policy)
        else:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
    return True
