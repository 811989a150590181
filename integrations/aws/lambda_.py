"""Lambda containment: throttle a function to zero reserved concurrency (undo restores the prior value).

A function whose state is ``Pending`` or whose last update is ``InProgress`` answers configuration
changes with ``ResourceConflictException`` (AWS Lambda Developer Guide, "Lambda function states"):
the action waits for it to settle within the step's timeout, and the refusal is retryable.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Target, UndoResult, action
from integrations.aws.common import arn, live_read, plan_read
from integrations.aws.session import aws_errors, client, known
from integrations.aws.stable import LAMBDA_FUNCTION, wait_stable

FUNCTION = r"^[A-Za-z0-9_:.-]{1,140}$"


class ThrottleParams(ActionParams):
    function_name: str = Field(pattern=FUNCTION)
    region: str | None = None


class ThrottleResult(ActionResult):
    function_name: str
    region: str | None = None
    previous_reserved_concurrency: int | None = Field(description="None when the function had no reservation.")


def _function(ctx: ActionContext, name: str, region: str | None) -> dict[str, Any]:
    fn = client(ctx, "lambda", region)
    found: dict[str, Any] = live_read(f"read function {name}", lambda: fn.get_function(FunctionName=name))
    return found


def _settle(ctx: ActionContext, name: str, region: str | None) -> None:
    """Wait until the function is neither ``Pending`` nor mid-update."""

    def read() -> str:
        config = _function(ctx, name, region)["Configuration"]
        if config.get("LastUpdateStatus") == "InProgress":
            return "InProgress"
        return str(config.get("State") or "Active")

    wait_stable(ctx, LAMBDA_FUNCTION, name, read)


@action(
    "aws.lambda.throttle",
    kind=ActionKind.CONTAINMENT,
    params=ThrottleParams,
    result=ThrottleResult,
    permissions=("lambda:GetFunction", "lambda:GetFunctionConcurrency", "lambda:PutFunctionConcurrency"),
    undo_permissions=("lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency"),
)
class Throttle(Action[ThrottleParams, ThrottleResult]):
    """Stop a function from running: reserved concurrency 0 (invocations are throttled, nothing is deleted)."""

    guidance = ("AWS Lambda Developer Guide, Configuring reserved concurrency (0 throttles every invocation)",)
    caveats = (
        "Invocations already running finish; asynchronous events are retried by Lambda and may land in "
        "the function's dead-letter queue or destination.",
        "Not covered: the function's execution role (quarantine it with aws.iam.quarantine_principal), "
        "event source mappings, other versions' provisioned concurrency, copies of the code.",
    )

    def plan(self, params: ThrottleParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        found = plan_read(
            ctx,
            f"read function {params.function_name}",
            lambda: _function(ctx, params.function_name, params.region),
            warnings,
        )
        target = Target(
            type="aws:lambda:function",
            id=params.function_name,
            region=params.region,
            arn=found["Configuration"]["FunctionArn"] if found else None,
            tags=(found.get("Tags") or {}) if found else None,
        )
        return Plan(
            action=self.name,
            summary=f"throttle {params.function_name} to 0 concurrent executions",
            targets=[target],
            changes=[f"{params.function_name}: reserved concurrency -> 0"],
            warnings=warnings,
        )

    def apply(self, params: ThrottleParams, ctx: ActionContext) -> ThrottleResult:
        fn = client(ctx, "lambda", params.region)
        _settle(ctx, params.function_name, params.region)
        with aws_errors(f"read the concurrency of {params.function_name}"):
            previous = fn.get_function_concurrency(FunctionName=params.function_name).get(
                "ReservedConcurrentExecutions"
            )
        if previous == 0:
            return ThrottleResult(
                changed=False,
                function_name=params.function_name,
                region=params.region,
                previous_reserved_concurrency=_remembered(ctx, params.function_name),
                summary=f"{params.function_name} was already throttled (no change)",
            )
        with aws_errors(f"throttle {params.function_name}"):
            fn.put_function_concurrency(FunctionName=params.function_name, ReservedConcurrentExecutions=0)
        return ThrottleResult(
            function_name=params.function_name,
            region=params.region,
            previous_reserved_concurrency=previous,
            summary=f"throttled {params.function_name} (reserved concurrency was {previous})",
        )

    def undo(self, result: ThrottleResult, ctx: ActionContext) -> UndoResult:
        fn = client(ctx, "lambda", result.region)
        _settle(ctx, result.function_name, result.region)
        with aws_errors(f"restore the concurrency of {result.function_name}"):
            if result.previous_reserved_concurrency is None:
                fn.delete_function_concurrency(FunctionName=result.function_name)
            else:
                fn.put_function_concurrency(
                    FunctionName=result.function_name, ReservedConcurrentExecutions=result.previous_reserved_concurrency
                )
        previous = result.previous_reserved_concurrency
        shown = "unreserved" if previous is None else str(previous)
        return UndoResult(summary=f"{result.function_name}: reserved concurrency back to {shown}")

    def policy_statements(self, params: ThrottleParams | None) -> list[dict[str, Any]]:
        name = known(params, "function_name")
        resource = arn("lambda", f"function:{name}", region="*") if name else "*"
        actions = sorted({*self.permissions, *self.undo_permissions})
        return [{"Effect": "Allow", "Action": actions, "Resource": resource}]


def _remembered(ctx: ActionContext, name: str) -> int | None:
    """A function found at 0 was throttled before (by an earlier attempt or by hand): the prior value is unknown."""
    ctx.log(f"{name} already had reserved concurrency 0; undo will remove the reservation")
    return None
