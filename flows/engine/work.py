"""The work the scheduler hands to a :class:`~flows.engine.executor.StepExecutor`, and the run it shares.

Each function here runs inside one executor job: apply one planned item of a unit (intent,
attempts with retries and timeout, the fence of an abandoned attempt, saga entry, durable result),
wait for an approval, run ``on_failure`` handlers (each one a unit planned, guarded and applied by
the same functions as a step; see :mod:`flows.engine.units`). They touch the run only through
:class:`RunEnv`, never global state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from flows.actions.context import ActionContext
from flows.actions.control import ApprovalParams
from flows.actions.registry import Action, ActionResult, Registry
from flows.engine import fence
from flows.engine.approval_wait import ApprovalWait, dry_run_grant
from flows.engine.approvals import AnswerSource, ApproverDirectory, Approvers
from flows.engine.executor import is_retryable
from flows.engine.fence import AbandonedAttempt, Attempt, AttemptRecord
from flows.engine.guards import Refusal
from flows.engine.outcomes import FAILED, REJECTED, SUCCEEDED, TIMED_OUT
from flows.engine.redact import Redactor
from flows.engine.runs import CRASHED
from flows.engine.state import RunState, StoredResult
from flows.engine.units import ItemResult, PlannedItem, Unit, error_text, plan_items, planned_targets
from flows.errors import StepTimeoutError
from flows.language.spec import Playbook, Step
from flows.record.store import RunRecord, iso, utcnow

Progress = Callable[[str, str, dict[str, Any]], None]


LINGER = 0.5  # seconds a step's outcome may wait in memory before run.json is rewritten


class RunDoc:
    """run.json held in memory and rewritten atomically, from any thread.

    :meth:`update` writes at once (status, outcome, the waiting list: what a reader acts on).
    :meth:`update_soon` lets a change linger up to :data:`LINGER` seconds so that step outcomes
    finishing together cost one write, not one each: the document holds every step, so a write
    per step made a run of *n* steps write O(n**2) bytes. The scheduler calls :meth:`flush` when
    :meth:`due_in` says so; any write carries the lingering changes with it.
    """

    def __init__(self, record: RunRecord, data: dict[str, Any]) -> None:
        self.record = record
        self.data = data
        self._lock = threading.Lock()
        self._waiting_kept = False
        self._due: float | None = None

    def update(self, **changes: Any) -> None:
        with self._lock:
            self.data.update(changes)
            self._write()

    def update_soon(self, **changes: Any) -> None:
        """Apply ``changes`` now, write them within :data:`LINGER` seconds."""
        with self._lock:
            self.data.update(changes)
            if self._due is None:
                self._due = time.monotonic() + LINGER

    def due_in(self) -> float | None:
        """Seconds until a lingering change must be written (0: now); None when nothing lingers."""
        with self._lock:
            return None if self._due is None else max(0.0, self._due - time.monotonic())

    def flush(self) -> None:
        """Write a lingering change now."""
        with self._lock:
            if self._due is not None:
                self._write()

    def _write(self) -> None:
        self._due = None
        self.record.write_run(self.data)

    def keep_waiting(self) -> None:
        """From now on leave ``waiting`` as it is: an interrupted run's approvals can still be answered."""
        with self._lock:
            self._waiting_kept = True

    def set_waiting(self, step_id: str, waiting: bool) -> None:
        self.set_waiting_many({step_id} if waiting else set(), set() if waiting else {step_id})

    def set_waiting_many(self, add: set[str], remove: set[str]) -> None:
        """Mark steps waiting or not in one write (a thousand approvals starting at once write once)."""
        with self._lock:
            if self._waiting_kept or not (add or remove):
                return
            current = (set(self.data.get("waiting", [])) | add) - remove
            self.data["waiting"] = sorted(current)
            self._write()


@dataclass
class RunEnv:
    """Everything the units of work of one run share."""

    playbook: Playbook
    registry: Registry
    ctx: ActionContext
    state: RunState
    doc: RunDoc
    sources: list[AnswerSource] = field(default_factory=list)
    directory: ApproverDirectory | Approvers = field(default_factory=ApproverDirectory)
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
        if self.progress is not None:  # the progress line is output too: secrets masked like the record
            self.progress(step, status, self.scrub(detail or {}))


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


def _log_effect(
    env: RunEnv, action: Action[Any, Any], planned: PlannedItem, ctx: ActionContext, result: Any, **extra: Any
) -> None:
    """Log an undoable effect to the saga (before its result is stored: a crash in between re-applies,
    a no-op, and logs it again, which undo collapses by idempotency key; the other order could lose it)."""
    if action.undoable():
        entry = {
            "step": ctx.step_id,
            "item_key": planned.key,
            "idempotency_key": ctx.idempotency_key,
            "action": action.name,
            "params": planned.params.model_dump(mode="json"),
            "result": result.model_dump(mode="json"),
            **extra,
        }
        env.state.append_saga(env.scrub(entry))


def _attempt(env: RunEnv, unit: Unit, action: Action[Any, Any], planned: PlannedItem, ctx: ActionContext) -> Any:
    if not env.live:
        return {"dry_run": True, "mode": ctx.mode, "plan": planned.plan.model_dump(mode="json")}
    if unit.timeout is None:
        result: ActionResult = action.apply(planned.params, ctx)
    else:
        ctx.deadline = time.monotonic() + unit.timeout
        record = ctx.record if isinstance(ctx.record, AttemptRecord) else None
        attempt = Attempt(lambda: action.apply(planned.params, ctx), f"{unit.where.removesuffix('.with')}", record)
        result = attempt.run(unit.timeout, ctx.cancel_event)
    _log_effect(env, action, planned, ctx, result)
    return result.model_dump(mode="json")


def _fence(
    env: RunEnv, action: Action[Any, Any], planned: PlannedItem, ctx: ActionContext, e: AbandonedAttempt, *, wait: bool
) -> bool:
    """Deal with an abandoned attempt; True when it has ended (so another attempt cannot overlap it).

    With ``wait`` (another attempt is due) wait for it to end; otherwise leave it and only keep the
    effect it may still complete undoable, once it ends.
    """

    def log_late() -> None:
        if isinstance(e.attempt.value, ActionResult):  # it did the thing after all: keep the effect undoable
            _log_effect(env, action, planned, ctx, e.attempt.value, late=True, attempt=ctx.attempt)

    if not wait:
        e.attempt.when_done(log_late)
        return False
    if not e.attempt.wait_end(fence.GRACE_SECONDS):
        e.attempt.when_done(log_late)
        return False
    log_late()
    return True


def _emit_item(env: RunEnv, unit: Unit, type_: str, item: Any, detail: dict[str, Any]) -> None:
    """The per-item events: step.<x> for the items of a fan-out, handler.<x> for handlers."""
    if unit.handler is not None:
        env.emit(f"handler.{type_}", unit.step_id, None, {"handler": unit.handler, "action": unit.action, **detail})
    elif unit.fan_out:
        env.emit(f"step.{type_}", unit.step_id, item, detail)


def apply_item(env: RunEnv, unit: Unit, planned: PlannedItem) -> ItemResult:
    """Apply one planned item of a unit with retries and timeout; persist its result before it counts as done.

    This is the only place where ``apply()`` is called for a step, an item or a handler.
    """
    action = env.registry.get(unit.action)
    item = planned.item if unit.fan_out else None
    policy = unit.retries
    attempts = policy.attempts if policy else 1
    if unit.fan_out or unit.handler is not None:
        _emit_item(env, unit, "started", item, {"item_key": planned.key})
    for attempt in range(1, attempts + 1):
        ctx = env.ctx.for_step(unit.step_id, planned.item, planned.key, attempt)
        ctx.record = AttemptRecord(env.ctx.record, attempt)
        try:
            if env.live:
                env.state.write_intent(
                    unit.step_id, planned.key, ctx.idempotency_key, env.scrub(planned.params.model_dump(mode="json"))
                )
            output = _attempt(env, unit, action, planned, ctx)
        except Exception as e:
            status = TIMED_OUT if isinstance(e, StepTimeoutError) else FAILED
            error = error_text(e)
            retry = attempt < attempts and is_retryable(e) and policy is not None and not env.stop.is_set()
            if isinstance(e, AbandonedAttempt) and not _fence(env, action, planned, ctx, e, wait=retry) and retry:
                error += f"; the attempt was still running {fence.GRACE_SECONDS:g}s later, so it was not retried"
                retry = False  # another attempt could overlap it
            if retry and policy is not None:
                delay = policy.delay(attempt)
                env.emit(
                    "step.retrying",
                    unit.step_id,
                    item,
                    {"attempt": attempt, "error": error, "error_type": type(e).__name__, "delay": delay},
                )
                env.notify(unit.step_id, "retrying", {"attempt": attempt})
                if env.stop.wait(delay):
                    break
                continue
            result = ItemResult(status, None, error, type(e).__name__)
            detail = {"status": status, "error": result.error, "error_type": result.error_type, "attempts": attempt}
            _emit_item(env, unit, "failed", item, detail)
            return result
        result = ItemResult(SUCCEEDED, output)
        _store(env, unit.step_id, planned.key, ctx, result)
        _emit_item(env, unit, "succeeded", item, {"attempts": attempt, "output": output})
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


def run_handlers(env: RunEnv, step: Step, scope: dict[str, Any], touched: Collection[str] = ()) -> list[ItemResult]:
    """Run a failed step's ``on_failure`` handlers in order, with ``error`` in scope.

    Each handler is a :class:`Unit` planned, guarded and applied exactly like a step: ``max_targets``
    counts the step's own targets (``touched``) and the earlier handlers' together.
    """
    from flows.engine.templates import render_value

    results: list[ItemResult] = []
    seen = set(touched)
    for index, handler in enumerate(step.on_failure):
        unit = Unit.of_handler(step, index, handler)
        key = unit.key("")
        stored = env.state.result(step.id, key)
        if stored is not None and stored.status == SUCCEEDED:
            results.append(ItemResult(SUCCEEDED, stored.output, reused=True))
            continue
        try:
            rendered = render_value(handler.with_, scope, where=unit.where)
            planned = plan_items(env, unit, [(None, key, rendered)], touched=seen)
        except Exception as e:
            detail = {
                "handler": index,
                "action": handler.action,
                "error": error_text(e),
                "error_type": type(e).__name__,
            }
            env.emit("handler.failed", step.id, None, detail)
            results.append(ItemResult(FAILED, None, error_text(e), type(e).__name__))
            continue
        if planned and not isinstance(planned[0], PlannedItem):
            message = "guard refused: " + "; ".join(r.message for r in planned if isinstance(r, Refusal))
            env.emit(
                "handler.failed",
                step.id,
                None,
                {"handler": index, "action": handler.action, "error": message, "error_type": "GuardError"},
            )
            results.append(ItemResult(FAILED, None, message, "GuardError"))
            continue
        items = [p for p in planned if isinstance(p, PlannedItem)]
        seen |= planned_targets(items)
        results.append(apply_item(env, unit, items[0]))
    return results


def record_interruption(env: RunEnv, in_flight: list[str]) -> None:
    """Ctrl-C: record ``run.interrupted``, mark the run crashed (resumable) and keep its approvals waiting.

    Called before the worker threads are woken, so no wait clears ``waiting`` on its way out.
    """
    env.doc.keep_waiting()
    waiting = list(env.doc.data.get("waiting", []))
    detail = {"waiting": waiting, "in_flight": in_flight, "resume": f"fireline resume {env.ctx.run_id}"}
    env.emit("run.interrupted", None, None, detail)
    env.doc.update(status=CRASHED, outcome="interrupted")
