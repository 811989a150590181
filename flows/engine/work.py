"""The units of step work the scheduler hands to a :class:`~flows.engine.executor.StepExecutor`.

Each function here runs inside one executor job: plan a step's items and check guards, apply one
item (intent, attempts with retries and timeout, durable result, saga entry), wait for an approval,
run ``on_failure`` handlers. They touch the run only through :class:`RunEnv`, never global state.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from flows.actions.context import ActionContext
from flows.actions.control import ApprovalParams
from flows.actions.registry import Action, ActionParams, ActionResult, Plan, Registry
from flows.engine.approvals import AnswerSource, ApprovalWait, ApproverDirectory, dry_run_grant
from flows.engine.executor import is_retryable, run_with_timeout
from flows.engine.guards import Refusal, check_plans
from flows.engine.outcomes import FAILED, REJECTED, SUCCEEDED, TIMED_OUT
from flows.engine.redact import Redactor
from flows.engine.state import RunState, StoredResult
from flows.errors import ActionError, StepTimeoutError
from flows.language.spec import Playbook, Step
from flows.record.store import RunRecord, iso, utcnow

_SECRET_REF = re.compile(r"^secret:[A-Za-z_][A-Za-z0-9_]*$")
Progress = Callable[[str, str, dict[str, Any]], None]


class RunDoc:
    """run.json held in memory and rewritten atomically on each change, from any thread."""

    def __init__(self, record: RunRecord, data: dict[str, Any]) -> None:
        self.record = record
        self.data = data
        self._lock = threading.Lock()

    def update(self, **changes: Any) -> None:
        with self._lock:
            self.data.update(changes)
            self.record.write_run(self.data)

    def set_waiting(self, step_id: str, waiting: bool) -> None:
        with self._lock:
            current = set(self.data.get("waiting", []))
            current = current | {step_id} if waiting else current - {step_id}
            self.data["waiting"] = sorted(current)
            self.record.write_run(self.data)


@dataclass
class RunEnv:
    """Everything the units of work of one run share."""

    playbook: Playbook
    registry: Registry
    ctx: ActionContext
    state: RunState
    doc: RunDoc
    sources: list[AnswerSource] = field(default_factory=list)
    directory: ApproverDirectory = field(default_factory=ApproverDirectory)
    triggered_by: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Progress | None = None

    @property
    def live(self) -> bool:
        return self.ctx.live

    def emit(self, type_: str, step: str | None, item: Any = None, detail: dict[str, Any] | None = None) -> None:
        self.ctx.record.emit(type_, step=step, item=item, detail=detail)

    def scrub(self, value: Any) -> Any:
        """``value`` with the run's secret values masked, for anything written to disk."""
        return Redactor(set(self.ctx.services.secret_values)).scrub(value)

    def notify(self, step: str, status: str, detail: dict[str, Any] | None = None) -> None:
        if self.progress is not None:
            self.progress(step, status, detail or {})


@dataclass
class ItemResult:
    """The outcome of one step-item (or of a whole step without ``for_each``)."""

    status: str
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    reused: bool = False


@dataclass
class PlannedItem:
    """One item of a step, rendered and planned, ready to apply."""

    item: Any
    key: str
    params: ActionParams
    plan: Plan


def _error_text(error: BaseException) -> str:
    return str(error) or type(error).__name__


def build_params(action: Action[Any, Any], rendered: dict[str, Any], ctx: ActionContext) -> ActionParams:
    """Validate rendered ``with`` values against the action's Params; resolve ``secret:NAME`` values.

    Secrets are resolved in live mode only: ``plan()`` never needs a secret's value, so dry-runs and
    drills neither require the secrets to exist nor ever hold them.
    """
    resolved = {
        k: ctx.secret(v) if ctx.live and isinstance(v, str) and _SECRET_REF.match(v) else v for k, v in rendered.items()
    }
    try:
        return action.Params.model_validate(resolved)
    except PydanticValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "with"
        raise ActionError(f"{action.name}: with.{where}: {first['msg']}") from e


def plan_items(
    env: RunEnv, step: Step, pending: list[tuple[Any, str, dict[str, Any]]]
) -> list[PlannedItem] | list[Refusal]:
    """Plan every pending item of a step and check the guards on all of their targets together.

    Items are planned with the step's concurrency: a plan usually reads its target (tags for the
    guards), and one read after another would dominate a large fan-out.
    """
    action = env.registry.get(step.action)

    def plan_one(entry: tuple[Any, str, dict[str, Any]]) -> PlannedItem:
        item, key, rendered = entry
        ictx = env.ctx.for_step(step.id, item, key)
        params = build_params(action, rendered, ictx)
        return PlannedItem(item, key, params, action.plan(params, ictx))

    workers = min(step.concurrency or 1, len(pending))
    if workers > 1:
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix=f"plan-{step.id}") as pool:
            planned = list(pool.map(plan_one, pending))  # in item order; the first error propagates
    else:
        planned = [plan_one(entry) for entry in pending]
    refusals = check_plans(env.playbook.guards, [p.plan for p in planned], live=env.live)
    if refusals:
        for refusal in refusals:
            detail: dict[str, Any] = {**refusal.as_detail(), "mode": env.ctx.mode}
            if not env.live:
                detail["would_refuse"] = True
            env.emit("guard.refused", step.id, None, detail)
        if env.live:
            return refusals
    return planned


def _store(env: RunEnv, step_id: str, key: str, ctx: ActionContext, result: ItemResult) -> None:
    env.state.write_result(
        StoredResult(
            step=step_id,
            item_key=key,
            idempotency_key=ctx.idempotency_key,
            status=result.status,
            output=env.scrub(result.output),
            error=env.scrub(result.error),
            finished_at=iso(utcnow()),
        )
    )


def _attempt(env: RunEnv, step: Step, action: Action[Any, Any], planned: PlannedItem, ctx: ActionContext) -> Any:
    if not env.live:
        return {"dry_run": True, "mode": ctx.mode, "plan": planned.plan.model_dump(mode="json")}
    if step.timeout is not None:
        import time

        ctx.deadline = time.monotonic() + step.timeout
    result: ActionResult = run_with_timeout(
        lambda: action.apply(planned.params, ctx), step.timeout, ctx.cancel_event, f"step {step.id!r}"
    )
    if action.undoable():
        # Before the result is stored: a crash in between re-applies (a no-op) and logs it again,
        # which undo collapses by idempotency key; the other order could lose an undoable effect.
        env.state.append_saga(
            env.scrub(
                {
                    "step": step.id,
                    "item_key": planned.key,
                    "idempotency_key": ctx.idempotency_key,
                    "action": action.name,
                    "params": planned.params.model_dump(mode="json"),
                    "result": result.model_dump(mode="json"),
                }
            )
        )
    return result.model_dump(mode="json")


def apply_item(env: RunEnv, step: Step, planned: PlannedItem, *, fan_out: bool) -> ItemResult:
    """Apply one planned item with retries and timeout; persist its result before it counts as done."""
    action = env.registry.get(step.action)
    item = planned.item if fan_out else None
    policy = step.retries
    attempts = policy.attempts if policy else 1
    if fan_out:
        env.emit("step.started", step.id, item, {"item_key": planned.key})
    for attempt in range(1, attempts + 1):
        ctx = env.ctx.for_step(step.id, planned.item, planned.key, attempt)
        try:
            if env.live:
                env.state.write_intent(
                    step.id, planned.key, ctx.idempotency_key, env.scrub(planned.params.model_dump(mode="json"))
                )
            output = _attempt(env, step, action, planned, ctx)
        except Exception as e:
            status = TIMED_OUT if isinstance(e, StepTimeoutError) else FAILED
            if attempt < attempts and is_retryable(e) and policy is not None and not env.stop.is_set():
                delay = policy.delay(attempt)
                env.emit(
                    "step.retrying",
                    step.id,
                    item,
                    {"attempt": attempt, "error": _error_text(e), "error_type": type(e).__name__, "delay": delay},
                )
                env.notify(step.id, "retrying", {"attempt": attempt})
                if env.stop.wait(delay):
                    break
                continue
            result = ItemResult(status, None, _error_text(e), type(e).__name__)
            if fan_out:
                env.emit(
                    "step.failed",
                    step.id,
                    item,
                    {"status": status, "error": result.error, "error_type": result.error_type, "attempts": attempt},
                )
            return result
        result = ItemResult(SUCCEEDED, output)
        _store(env, step.id, planned.key, ctx, result)
        if fan_out:
            env.emit("step.succeeded", step.id, item, {"attempts": attempt, "output": output})
        return result
    return ItemResult(FAILED, None, "stopped before the step could finish", "RunError")


def await_approval(env: RunEnv, step: Step, rendered: dict[str, Any]) -> ItemResult:
    """Wait for an approval step's decision (granted at once, and recorded so, in dry-run)."""
    ctx = env.ctx.for_step(step.id)
    try:
        params = ApprovalParams.model_validate(rendered)
    except PydanticValidationError as e:
        return ItemResult(FAILED, None, f"approval: {e.errors()[0]['msg']}", "ActionError")

    def emit(type_: str, detail: dict[str, Any]) -> None:
        env.emit(type_, step.id, None, detail)

    if env.ctx.mode == "dry-run":
        output = dry_run_grant(params, emit, env.ctx.mode)
    else:
        env.notify(step.id, "waiting", {"approvers": params.approvers})
        env.state.write_request(step.id, params.model_dump(mode="json"))
        env.doc.set_waiting(step.id, True)
        wait = ApprovalWait(
            params, env.ctx.run_id, step.id, env.sources, env.directory, env.triggered_by, emit, cancel=env.stop
        )
        try:
            output = wait.run()
        finally:
            env.doc.set_waiting(step.id, False)
    output = {"changed": False, **output}
    if output["decision"] != "approved":
        result = ItemResult(REJECTED, output, output["summary"], "ApprovalRejected")
    else:
        result = ItemResult(SUCCEEDED, output)
    _store(env, step.id, "", ctx, result)
    return result


def run_handlers(env: RunEnv, step: Step, scope: dict[str, Any]) -> list[ItemResult]:
    """Run a failed step's ``on_failure`` handlers in order, with ``error`` in scope."""
    from flows.engine.templates import render_value

    results: list[ItemResult] = []
    for index, handler in enumerate(step.on_failure):
        key = f"on_failure-{index}"
        ctx = env.ctx.for_step(step.id, None, key)
        stored = env.state.result(step.id, key)
        if stored is not None and stored.status == SUCCEEDED:
            results.append(ItemResult(SUCCEEDED, stored.output, reused=True))
            continue
        detail: dict[str, Any] = {"handler": index, "action": handler.action}
        try:
            action = env.registry.get(handler.action)
            rendered = render_value(handler.with_, scope, where=f"steps[{step.id}].on_failure[{index}].with")
            params = build_params(action, rendered, ctx)
            plan = action.plan(params, ctx)
            if env.live:
                env.state.write_intent(step.id, key, ctx.idempotency_key, env.scrub(params.model_dump(mode="json")))
                output: Any = action.apply(params, ctx).model_dump(mode="json")
            else:
                output = {"dry_run": True, "mode": ctx.mode, "plan": plan.model_dump(mode="json")}
        except Exception as e:
            env.emit(
                "handler.failed", step.id, None, {**detail, "error": _error_text(e), "error_type": type(e).__name__}
            )
            results.append(ItemResult(FAILED, None, _error_text(e), type(e).__name__))
            continue
        result = ItemResult(SUCCEEDED, output)
        _store(env, step.id, key, ctx, result)
        env.emit("handler.succeeded", step.id, None, {**detail, "output": output})
        results.append(result)
    return results
