"""Built-in control actions: ``log``, ``wait``, ``fail`` and ``approval``.

``approval`` is only declared here; the engine pauses the run for it (its plan says who must answer).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, action
from flows.errors import ActionError
from flows.language.durations import Duration

APPROVER_PATTERN = r"^(user|group):[A-Za-z0-9._@-]+$"


class LogParams(ActionParams):
    message: str = Field(max_length=10_000)
    level: Literal["info", "warning", "error"] = "info"


class LogResult(ActionResult):
    message: str


@action("log", kind=ActionKind.CONTROL, params=LogParams, result=LogResult)
class Log(Action[LogParams, LogResult]):
    """Record a line in the run record."""

    def plan(self, params: LogParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary=f"log: {params.message}", mutating=False)

    def apply(self, params: LogParams, ctx: ActionContext) -> LogResult:
        ctx.log(params.message, level=params.level)
        return LogResult(changed=False, summary=params.message, message=params.message)


class WaitParams(ActionParams):
    duration: Duration


class WaitResult(ActionResult):
    waited_seconds: float


@action("wait", kind=ActionKind.CONTROL, params=WaitParams, result=WaitResult)
class Wait(Action[WaitParams, WaitResult]):
    """Pause the branch for a duration (interrupted by the step's timeout)."""

    def plan(self, params: WaitParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary=f"wait {params.duration:g}s", mutating=False)

    def apply(self, params: WaitParams, ctx: ActionContext) -> WaitResult:
        ctx.sleep(params.duration)
        return WaitResult(changed=False, summary=f"waited {params.duration:g}s", waited_seconds=params.duration)


class FailParams(ActionParams):
    message: str = Field(max_length=10_000)


class FailResult(ActionResult):
    pass


@action("fail", kind=ActionKind.CONTROL, params=FailParams, result=FailResult)
class Fail(Action[FailParams, FailResult]):
    """Always fail with the message; for drills and tests of on_failure."""

    def plan(self, params: FailParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary=f"fail: {params.message}", mutating=False)

    def apply(self, params: FailParams, ctx: ActionContext) -> FailResult:
        raise ActionError(params.message)


class ApprovalParams(ActionParams):
    approvers: list[str] = Field(min_length=1, description="user:NAME or group:NAME entries.")
    min_approvals: int = Field(default=1, ge=1, le=20)
    timeout: Duration = 3600.0
    on_timeout: Literal["reject", "escalate"] = "reject"
    reason: str | None = Field(default=None, description="Shown to approvers.")

    @field_validator("approvers")
    @classmethod
    def _approver_form(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not re.match(APPROVER_PATTERN, entry):
                raise ValueError(f"approver {entry!r} must look like user:NAME or group:NAME")
        return value


class ApprovalResult(ActionResult):
    decision: Literal["approved", "rejected", "timed_out"]
    answers: list[dict[str, str]] = Field(default_factory=list)


@action("approval", kind=ActionKind.CONTROL, params=ApprovalParams, result=ApprovalResult)
class Approval(Action[ApprovalParams, ApprovalResult]):
    """Wait until enough authorised approvers answer; the engine pauses the run for it."""

    def plan(self, params: ApprovalParams, ctx: ActionContext) -> Plan:
        who = ", ".join(params.approvers)
        return Plan(
            action=self.name,
            summary=f"wait for {params.min_approvals} approval(s) from {who} within {params.timeout:g}s "
            f"(on timeout: {params.on_timeout})",
            mutating=False,
        )

    def apply(self, params: ApprovalParams, ctx: ActionContext) -> ApprovalResult:
        # The engine intercepts approval steps; reaching this means no engine is driving the call.
        raise ActionError("approval steps are answered through the engine (fireline approve RUN STEP)")
