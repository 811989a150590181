"""What the IAM actions share: naming a user or role, reading its tags, scoping statements."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from flows.actions.context import ActionContext
from flows.actions.registry import ActionParams, Target
from integrations.aws.common import arn, live_read, plan_read
from integrations.aws.session import client, tag_dict

# The length goes in max_length=IAM_NAME_MAX: a Unicode \w repeated {1,128} takes pydantic-core's
# regex engine ~40 ms to compile, at every cold start of `fireline validate`.
IAM_NAME = r"^[\w+=,.@-]+$"
IAM_NAME_MAX = 128
QUARANTINE_POLICY = "fireline-quarantine"
REVOKE_POLICY = "fireline-revoke-older-sessions"
QUARANTINE_TAG = "fireline:quarantined"


class PrincipalParams(ActionParams):
    user_name: str | None = Field(default=None, pattern=IAM_NAME, max_length=IAM_NAME_MAX)
    role_name: str | None = Field(default=None, pattern=IAM_NAME, max_length=IAM_NAME_MAX)

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


def principal_kind(params: Any) -> str | None:
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
