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
    from botocore.exceptions import ClientError

    iam = client(ctx, "iam")
    current: Any = None
    with aws_errors(f"read policy {policy} of {kind} {name}"):
        try:
            current = (
                iam.get_user_policy(UserName=name, PolicyName=policy)
                if kind == "user"
                else iam.get_role_policy(RoleName=name, PolicyName=policy)
            )["PolicyDocument"]
        except ClientError as e:
            if error_code(e) != "NoSuchEntity":
                raise
    if isinstance(current, str):
        current = json.loads(unquote(current))
    if current is not None and (current == doc or not replace):
        return False
    text = json.dumps(doc)
    with aws_errors(f"put policy {policy} on {kind} {name}"):
        if kind == "user":
            iam.put_user_policy(UserName=name, PolicyName=policy, PolicyDocument=text)
        else:
            iam.put_role_policy(RoleName=name, PolicyName=policy, PolicyDocument=text)
    return True
