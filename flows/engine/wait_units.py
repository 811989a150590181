"""Steps that wait for people, as conditions for the run's waiter thread (no executor thread).

- :func:`approval_unit`: an ``approval`` step. Before anyone is asked, the steps that need the
  approval are planned and the guards checked on their targets: the request shows that plan
  (``PageMessage.plan_summary`` and the ``approval.requested`` event), and in live mode a guard
  that would refuse fails the approval at once, so nobody approves what the guard then refuses.
- :func:`page_unit`: a ``contacts.page`` step (any action with ``wait_condition``).

Each condition's result is an :class:`~flows.engine.units.ItemResult`, persisted like any other
step result before the step counts as done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from flows.actions.control import ApprovalParams
from flows.engine.approval_wait import ApprovalWait, dry_run_grant
from flows.engine.outcomes import FAILED, REJECTED, SUCCEEDED
from flows.engine.state import StoredResult
from flows.engine.units import ItemResult, PlannedItem, Unit, build_params, error_text
from flows.language.spec import Step
from flows.record.store import iso, utcnow

if TYPE_CHECKING:
    from flows.engine.work import RunEnv


class WaitingMarks:
    """Which approval steps are waiting, written to run.json once per waiter pass instead of once a step."""

    def __init__(self, env: RunEnv) -> None:
        self.env = env
        self._add: set[str] = set()
        self._remove: set[str] = set()
        self._lock = threading.Lock()

    def mark(self, step_id: str, waiting: bool) -> None:
        with self._lock:
            (self._add if waiting else self._remove).add(step_id)
            (self._remove if waiting else self._add).discard(step_id)

    def flush(self) -> None:
        with self._lock:
            add, remove, self._add, self._remove = self._add, self._remove, set(), set()
        self.env.doc.set_waiting_many(add, remove)


def waiting_marks(env: RunEnv) -> WaitingMarks:
    """The run's :class:`WaitingMarks` (one per run)."""
    found: WaitingMarks = env.ctx.services.get_or_create("waiting-marks", lambda: WaitingMarks(env))
    return found


def store(env: RunEnv, step_id: str, key: str, result: ItemResult) -> ItemResult:
    """Persist a waited step's result before it counts as done."""
    ctx = env.ctx.for_step(step_id, None, key)
    env.state.write_result(
        StoredResult(step=step_id, item_key=key, idempotency_key=ctx.idempotency_key, status=result.status,
                     output=env.scrub(result.output), error=env.scrub(result.error), finished_at=iso(utcnow()))
    )  # fmt: skip
    return result


@dataclass
class _Deferred:
    """A condition whose real start waits for some preparation done off the waiter thread."""

    prepare: Callable[[], Any]
    then: Callable[[Any, float], Any]  # (prepared, now) -> condition or an ItemResult
    _done: threading.Event = field(default_factory=threading.Event)
    _box: dict[str, Any] = field(default_factory=dict)
    _inner: Any = None
    _wake: Callable[[], None] | None = None
    _inner_polled: bool = False

    def on_prepared(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def ready(self) -> bool:
        return self._inner is not None and (isinstance(self._inner, ItemResult) or self._inner_polled)

    def start(self, now: float) -> None:
        def work() -> None:
            try:
                self._box["value"] = self.prepare()
            except Exception as e:  # a failed preparation fails the step
                self._box["error"] = e
            self._done.set()
            if self._wake is not None:
                self._wake()

        threading.Thread(target=work, name="fireline-wait-prepare", daemon=True).start()

    def next_due(self) -> float | None:
        return self._inner.next_due() if self._inner is not None and not isinstance(self._inner, ItemResult) else None

    def poll(self, now: float) -> Any:
        if self._inner is None:
            if not self._done.is_set():
                return None
            if "error" in self._box:
                raise self._box["error"]
            self._inner = self.then(self._box["value"], now)
            if isinstance(self._inner, ItemResult):
                return self._inner
            self._inner.start(now)
            return None  # first polled on the next pass, after this pass's waiting marks are written
        if isinstance(self._inner, ItemResult):
            return self._inner
        self._inner_polled = True
        return self._inner.poll(now)


def approval_unit(env: RunEnv, step: Step, rendered: dict[str, Any], scope: dict[str, Any]) -> Any:
    """An approval step as an ItemResult (dry-run, bad parameters) or a wait condition."""
    from flows.people.approval_plan import preview

    try:
        params = ApprovalParams.model_validate(rendered)
    except PydanticValidationError as e:
        return store(env, step.id, "", ItemResult(FAILED, None, f"approval: {e.errors()[0]['msg']}", "ActionError"))

    def emit(type_: str, detail: dict[str, Any]) -> None:
        env.emit(type_, step.id, None, detail)

    if env.ctx.mode == "dry-run":
        return _decided(env, step, dry_run_grant(params, emit, env.ctx.mode))

    def then(prepared: Any, now: float) -> Any:
        summary, refusals = prepared
        if refusals and env.live:
            for detail in refusals:
                env.emit("guard.refused", detail.pop("step"), None, {**detail, "before_approval": step.id})
            message = "not asked: the guard would refuse what it approves: " + "; ".join(r["message"] for r in refusals)
            emit("approval.rejected", {"by": None, "how": "guard", "reason": message, "plan": summary})
            return store(env, step.id, "", ItemResult(FAILED, None, message, "GuardError"))
        env.notify(step.id, "waiting", {"approvers": params.approvers})
        env.state.write_request(step.id, params.model_dump(mode="json"))
        waiting_marks(env).mark(step.id, True)
        wait = ApprovalWait(
            params, env.ctx.run_id, step.id, env.sources, env.directory, env.triggered_by, emit, cancel=env.stop,
            state_file=env.state.dir / "waits" / f"{step.id}.json", plan_summary=summary,
            on_request=lambda p: _page_approvers(env, step.id, p, summary),
        )  # fmt: skip
        return _Finishing(wait, lambda output: _decided(env, step, output))

    return _Deferred(lambda: preview(env, step.id, scope), then)


@dataclass
class _Finishing:
    """Runs ``finish`` on a condition's result (and clears the step's waiting mark)."""

    inner: Any
    finish: Callable[[Any], ItemResult]

    def start(self, now: float) -> None:
        self.inner.start(now)

    def next_due(self) -> float | None:
        due: float | None = self.inner.next_due()
        return due

    def poll(self, now: float) -> ItemResult | None:
        done = self.inner.poll(now)
        return None if done is None else self.finish(done)


def _decided(env: RunEnv, step: Step, output: dict[str, Any]) -> ItemResult:
    # Unmarked in the waiter's after-pass flush, one run.json write for every approval decided in
    # the pass (a write each made timing out n approvals write O(n**2)). The flush runs before the
    # waiter sleeps and before it shuts down, so the run's final run.json never lists it.
    waiting_marks(env).mark(step.id, False)
    output = {"changed": False, **output}
    if output["decision"] != "approved":
        result = ItemResult(REJECTED, output, output["summary"], "ApprovalRejected")
    else:
        result = ItemResult(SUCCEEDED, output)
    return store(env, step.id, "", result)


def _page_approvers(env: RunEnv, step_id: str, params: ApprovalParams, summary: str | None) -> None:
    """Ask the approvers through the chat notifier, when one is loaded (the CLI needs no message)."""
    from flows.people.approval_plan import ask_approvers

    ask_approvers(env, step_id, params, summary)


def page_unit(env: RunEnv, unit: Unit, planned: PlannedItem) -> Any:
    """A ``contacts.page`` item as a wait condition whose result is an ItemResult."""
    from flows.people.page import AckPoller, to_result

    action = env.registry.get(unit.action)
    ctx = env.ctx.for_step(unit.step_id, planned.item, planned.key)
    condition = getattr(action, "wait_condition")(planned.params, ctx, AckPoller(ctx, list(env.sources)))  # noqa: B009

    def finish(done: dict[str, Any]) -> ItemResult:
        try:
            output = to_result(done).model_dump(mode="json")
        except Exception as e:
            return ItemResult(FAILED, done, error_text(e), type(e).__name__)
        return store(env, unit.step_id, planned.key, ItemResult(SUCCEEDED, output))

    return _Finishing(condition, finish)


def waits(env: RunEnv, unit: Unit) -> bool:
    """Whether a unit's items are waited on by the waiter instead of applied on an executor thread."""
    return unit.handler is None and hasattr(env.registry.get(unit.action), "wait_condition")


__all__ = ["approval_unit", "build_params", "page_unit", "store", "waits"]
